"""`lamina store check|repair`, `lamina backup` and `lamina restore` from the command line."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from lamina.cli import main
from lamina.retrieval.collection import Database


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _make(data, n=200):
    vectors = np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)
    with Database(data) as db:
        coll = db.create_collection("c", 4, metric="l2", index="flat", encoder=None, sparse=False)
        coll.upsert([{"id": f"p{i}", "vector": v, "metadata": {"i": i}} for i, v in enumerate(vectors)], wait=True)
    return vectors


def _flip_docs_table(data):
    """Flip a byte inside the first data block of the table file holding the documents."""
    for sst in sorted((data / "store").glob("*.sst")):
        if b"metadata" in sst.read_bytes():
            raw = bytearray(sst.read_bytes())
            raw[200] ^= 0xFF
            sst.write_bytes(bytes(raw))
            return sst
    raise AssertionError("no table file holds the documents")


def test_check_then_repair_a_damaged_table(tmp_path):
    data = tmp_path / "data"
    _make(data)
    ok = run("store", "check", "--data-dir", data)
    assert ok.exit_code == 0 and ok.output.strip().endswith("OK") and "collection c: 200 documents" in ok.output
    _flip_docs_table(data)
    bad = run("store", "check", "--data-dir", data)
    assert bad.exit_code == 1 and "DAMAGE" in bad.output and "checksum" in bad.output

    repaired = run("store", "repair", "--data-dir", data)
    assert repaired.exit_code == 0 and "indexes rebuilt" in repaired.output
    assert run("store", "check", "--data-dir", data).exit_code == 0
    with Database(data) as db:  # what survived is whole, and the counter agrees with it
        coll = db.collection("c")
        docs = [d for d in coll.get([f"p{i}" for i in range(200)]) if d is not None]
        assert coll.count() == len(docs)
        lost = 200 - len(docs)
    assert lost > 0 and f"its counter said 200: {lost} lost" in repaired.output  # a block of documents is gone


def test_backup_and_restore_commands(tmp_path):
    data, dest, restored = tmp_path / "data", tmp_path / "bk", tmp_path / "restored"
    vectors = _make(data)
    out = run("backup", data, dest)
    assert out.exit_code == 0 and "at seq 1" in out.output
    assert run("restore", dest, restored).exit_code == 0
    again = run("restore", dest, restored)
    assert again.exit_code != 0 and "not empty" in again.output
    with Database(restored) as db:
        coll = db.collection("c")
        assert coll.count() == 200
        hits = coll.search(vectors[17], k=1)
        assert hits[0].id == "p17" and hits[0].metadata == {"i": 17}
