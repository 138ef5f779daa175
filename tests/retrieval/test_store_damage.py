"""Store damage is never silent (issue #20, part 3): after a SIGKILL with 3,000 acknowledged points,
a damaged WAL or MANIFEST either opens with every acknowledged point or refuses with StoreCorrupted;
it never opens with fewer points or as an empty database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lamina.index.errors import StoreCorrupted, StoreLocked
from lamina.retrieval.collection import Database

N, BATCH, DIM = 3000, 10, 8
WRITER = f"""
import os, signal, sys
import numpy as np
from lamina.retrieval.collection import Database
db = Database(sys.argv[1])
c = db.create_collection("c", {DIM}, metric="l2", index="flat", encoder=None, sparse=False)
vectors = np.random.default_rng(0).standard_normal(({N}, {DIM})).astype(np.float32)
for i in range(0, {N}, {BATCH}):
    c.upsert([{{"id": f"p{{j}}", "vector": vectors[j], "metadata": {{"j": j}}}} for j in range(i, i + {BATCH})],
             wait=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture(scope="module")
def killed_writer(tmp_path_factory) -> Path:
    """A data directory whose writer was SIGKILLed right after its 3,000th acknowledged point."""
    data = tmp_path_factory.mktemp("killed") / "data"
    proc = subprocess.run([sys.executable, "-c", WRITER, str(data)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    return data


def _damaged(src: Path, dest: Path, mutate) -> Path:
    shutil.copytree(src, dest)
    mutate(dest / "store")
    return dest


def _wal(store: Path) -> Path:
    (wal,) = sorted(store.glob("*.log"))
    return wal


def _flip_first_quarter(store: Path) -> None:
    wal = _wal(store)
    data = bytearray(wal.read_bytes())
    data[len(data) // 8] ^= 0x10
    wal.write_bytes(bytes(data))


def _truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


CASES = {
    "wal-flip-first-quarter": _flip_first_quarter,
    "wal-truncated-to-half": lambda s: _truncate_half(_wal(s)),
    "wal-torn-last-record": lambda s: os.truncate(_wal(s), _wal(s).stat().st_size - 5),
    "manifest-truncated-to-half": lambda s: _truncate_half(next(s.glob("MANIFEST-*"))),
    "manifest-deleted": lambda s: [p.unlink() for p in s.glob("MANIFEST-*")],
    "current-deleted": lambda s: (s / "CURRENT").unlink(),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_store_opens_whole_or_refuses(killed_writer, tmp_path, case):
    data = _damaged(killed_writer, tmp_path / case, CASES[case])
    vectors = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    try:
        db = Database(data)
    except StoreCorrupted as exc:
        message = str(exc)
        assert "lamina store repair" in message and "restore" in message
        return
    with db:  # it opened: then it must hold every acknowledged point
        coll = db.collection("c")
        assert coll.count() == N
        docs = coll.get([f"p{j}" for j in range(N)], with_vectors=True)
        assert all(d is not None for d in docs)
        np.testing.assert_array_equal(np.stack([d.vector for d in docs]), vectors)


@pytest.mark.slow
def test_the_undamaged_store_opens_whole(killed_writer, tmp_path):
    shutil.copytree(killed_writer, tmp_path / "d")
    with Database(tmp_path / "d") as db:
        assert db.collection("c").count() == N


@pytest.mark.slow
def test_a_store_behind_the_high_water_mark_names_the_gap(killed_writer, tmp_path):
    data = _damaged(killed_writer, tmp_path / "d", lambda s: _truncate_half(_wal(s)))
    with pytest.raises(StoreCorrupted, match=r"is at sequence \d+, but catalog.seq covers 300: \d+ acknowledged"):
        Database(data)
    with pytest.raises(StoreCorrupted):  # the refusal left the witness as it was: it refuses again
        Database(data)


def test_a_replaced_store_is_refused(tmp_path):
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 4, index="flat", encoder=None, sparse=False)
        coll.upsert([{"id": "a", "vector": [1, 0, 0, 0]}], wait=True)
    shutil.rmtree(tmp_path / "store")  # e.g. a volume mounted empty
    with pytest.raises(StoreCorrupted, match="sequence 0"):
        Database(tmp_path)


def test_a_second_process_gets_a_named_lock_error(tmp_path):
    with Database(tmp_path):
        with pytest.raises(StoreLocked, match=str(tmp_path / "store")):
            Database(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["wal-flip-first-quarter", "wal-truncated-to-half", "current-deleted",
                                  "manifest-truncated-to-half"])
def test_repair_keeps_what_survives_and_reports_the_loss(killed_writer, tmp_path, case):
    from click.testing import CliRunner

    from lamina.cli import main

    data = _damaged(killed_writer, tmp_path / case, CASES[case])
    with pytest.raises(StoreCorrupted):
        Database(data)
    out = CliRunner().invoke(main, ["store", "repair", "--data-dir", str(data)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert CliRunner().invoke(main, ["store", "check", "--data-dir", str(data)]).exit_code == 0
    with Database(data) as db:
        coll = db.collection("c")
        docs = coll.get([f"p{j}" for j in range(N)])
        kept = sum(d is not None for d in docs)
        assert coll.count() == kept  # whole documents only, and the counter agrees
        seq = db.store.last_seq
    if seq < N // BATCH:
        assert f"{N // BATCH - seq} acknowledged write(s) lost" in out.output
    if kept < N and seq == N // BATCH:  # the last write survived: its counter tells the loss
        assert f"{N - kept} lost" in out.output
    if case in ("current-deleted", "manifest-truncated-to-half"):  # the WAL is whole: nothing is lost
        assert kept == N
