"""Crashes between snapshots while an index crosses its build threshold (issue 20, part 1).

A SPANN collection built in place by `add` (crossing `build_size`) publishes a generation of its
files before the next snapshot; an IVF collection trains when it crosses `train_size`. A crash
after that (the store closed, the collection never closed: no snapshot) must reopen to the same
answers as before the crash, and the files must carry the sequence number of what they hold.
"""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index.spann import SpannIndex, files
from lamina.index.spann.admin import verify_index
from lamina.retrieval.collection import Database


def vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def answers(coll, queries: np.ndarray, k: int = 10) -> list[list[str]]:
    return [[h.id for h in coll.search(q, k, with_payload=False)] for q in queries]


def brute(live: dict[str, np.ndarray], queries: np.ndarray, k: int = 10) -> list[list[str]]:
    ids = list(live)
    base = np.stack([live[i] for i in ids])
    return [[ids[j] for j in np.argsort(((base - q) ** 2).sum(1), kind="stable")[:k]] for q in queries]


def crash(db: Database) -> None:
    """What a SIGKILL leaves: the store's acknowledged writes, and no collection closed."""
    db.store.close()


@pytest.mark.parametrize("index, first, total", [
    ({"kind": "spann", "spann": {"build_size": 100, "head_ratio": 0.1, "max_postings": 64}}, 50, 110),
    pytest.param({"kind": "ivf", "nlist": 4, "nprobe": 4}, 5000, 10500,  # a collection's IVF trains at 10,000
                 marks=pytest.mark.slow),
], ids=["spann", "ivf"])
def test_crossing_the_build_threshold_between_snapshots_survives_a_crash(tmp_path, index, first, total):
    data = vectors(total)
    live = {f"p{i}": data[i] for i in range(total)}
    queries = vectors(20, seed=1)
    db = Database(tmp_path)
    coll = db.create_collection("c", 8, metric="l2", encoder=None, sparse=False, index=index,
                                payload={"n": "numeric"})
    coll.upsert([{"id": f"p{i}", "vector": data[i], "metadata": {"n": i}} for i in range(first)], wait=True)
    db.close()  # the snapshot holds the exact buffer

    db = Database(tmp_path)
    coll = db.collection("c")
    coll.upsert([{"id": f"p{i}", "vector": data[i], "metadata": {"n": i}} for i in range(first, total)], wait=True)
    assert coll.wait_for_maintenance(60)  # the IVF trains in the background and is swapped in
    before = answers(coll, queries)
    assert before == brute(live, queries)  # every list probed: exact
    if index["kind"] == "ivf":
        assert coll.index.trained_ivf
    if index["kind"] == "spann":
        assert coll.index.built
        seq = files.read_manifest(coll.index.path)["seq"]  # built in the background, beside the old files
        assert seq == db.store.last_seq  # the generation carries the sequence number of what it holds
    crash(db)

    for _ in range(2):  # and again: a reopen that replayed must not have damaged anything
        db = Database(tmp_path)
        coll = db.collection("c")
        assert coll.count() == total
        assert answers(coll, queries) == before
        got = coll.search(data[70], 1, filter={"must": [{"key": "n", "range": {"gte": 60}}]})
        assert got[0].id == "p70"
        if index["kind"] == "spann":
            assert verify_index(coll.index.path, store=db.store).ok
        crash(db)


def test_verify_catches_a_generation_stamped_older_than_what_it_holds_and_open_recovers(tmp_path):
    """The state the bug left behind: a generation built in place by `add` but stamped with the
    snapshot's sequence number. `lamina index verify` names it; the idempotent replay opens it."""
    import json

    from click.testing import CliRunner

    from lamina.cli import main

    data = vectors(110)
    db = Database(tmp_path)
    coll = db.create_collection("c", 8, metric="l2", encoder=None, sparse=False,
                                index={"kind": "spann", "spann": {"build_size": 100, "head_ratio": 0.1}})
    coll.upsert([{"id": f"p{i}", "vector": data[i]} for i in range(50)], wait=True)
    db.close()
    snapshot_seq = db.store.last_seq
    db = Database(tmp_path)
    coll = db.collection("c")
    coll.upsert([{"id": f"p{i}", "vector": data[i]} for i in range(50, 110)], wait=True)
    assert coll.wait_for_maintenance(60)
    queries = vectors(5, seed=2)
    before = answers(coll, queries)
    last_seq = db.store.last_seq
    crash(db)
    # the collection builds in the background now, into a directory of its own; build the
    # snapshot's directory in place the way `add` used to (iids 50..109 are the second write's)
    spann = tmp_path / "indexes" / "c" / "spann"
    with SpannIndex.load(spann, dim=8, metric="l2") as index:
        index.add(np.arange(50, 110), data[50:110], seq=last_seq)
    assert files.read_manifest(spann)["built"]
    manifest = json.loads((spann / files.MANIFEST).read_text())
    manifest["seq"] = snapshot_seq  # what the old `_build_from` wrote
    (spann / files.MANIFEST).write_text(json.dumps(manifest))

    result = verify_index(spann)
    assert not result.ok
    assert any("holds 60 id(s) the log adds after it" in p for p in result.problems)
    run = CliRunner().invoke(main, ["index", "verify", str(spann)])
    assert run.exit_code == 1 and "does not match what it holds" in run.output

    db = Database(tmp_path)
    coll = db.collection("c")  # replay skips the 60 ids the generation holds
    assert coll.count() == 110 and answers(coll, queries) == before
    db.close()
    assert verify_index(spann).ok
