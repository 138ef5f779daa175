"""A collection whose dense index is SPANN: built, updated, filtered, reopened and crashed.

Recall is measured against brute force over the live vectors; after a reopen (snapshot) or a
crash (replay of the store's log) the answers must be exactly the same as before.
"""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index.spann import SpannIndex
from lamina.retrieval.collection import Database
from lamina.service import convert

SPANN = {"kind": "spann", "spann": {"build_size": 1000, "head_ratio": 0.1, "max_postings": 16}}
EXACT = {"max_postings": 1000}  # every list read: the answer of any sound build (brute force)


def clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, dim)).astype(np.float32) * 4
    return (centres[rng.integers(0, 32, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def recall(coll, live: dict[str, np.ndarray], queries: np.ndarray, k: int = 10, **options) -> float:
    ids = list(live)
    base = np.stack([live[i] for i in ids])
    hits = 0
    for q in queries:
        truth = {ids[j] for j in np.argsort(((base - q) ** 2).sum(1))[:k]}
        hits += len(truth & {h.id for h in coll.search(q, k, with_payload=False, **options)})
    return hits / (k * len(queries))


def spann_files(tmp_path):
    """The SPANN directory of collection "s" (a background build writes `spann.<seq>`, and the
    snapshot that names it removes the old one)."""
    (found,) = [p for p in (tmp_path / "indexes" / "s").glob("spann*") if p.is_dir()]
    return found


def test_spann_collection_end_to_end(tmp_path):
    vectors = clustered(3000)
    live = {f"v{i}": vectors[i] for i in range(len(vectors))}
    queries = clustered(30, seed=9)
    db = Database(tmp_path)
    coll = db.create_collection("s", 16, metric="l2", encoder=None, index=SPANN, payload={"odd": "keyword"})
    coll.upsert([{"id": i, "vector": v, "metadata": {"odd": int(i[1:]) % 2 == 1}} for i, v in live.items()])
    assert coll.wait_for_maintenance(60)  # built in the background, swapped in
    assert isinstance(coll.index, SpannIndex) and coll.index.built
    assert recall(coll, live, queries) >= 0.9
    gone = [f"v{i}" for i in range(0, 3000, 7)]
    coll.delete(gone)
    for i in gone:
        del live[i]
    assert recall(coll, live, queries) >= 0.9
    odd = {i: v for i, v in live.items() if int(i[1:]) % 2}
    flt = {"must": [{"key": "odd", "match": {"value": True}}]}
    assert recall(coll, odd, queries, filter=flt) == 1.0  # 1,286 matching: the exact plan
    before = [[h.id for h in coll.search(q, 10, with_payload=False)] for q in queries]
    db.close()  # snapshot: SPANN compacted into its directory, stamped with the sequence number

    db = Database(tmp_path)
    coll = db.collection("s")
    assert [[h.id for h in coll.search(q, 10, with_payload=False)] for q in queries] == before
    extra = clustered(500, seed=3)
    coll.upsert([{"id": f"x{i}", "vector": v} for i, v in enumerate(extra)])  # after the snapshot
    live.update({f"x{i}": v for i, v in enumerate(extra)})
    after = [[h.id for h in coll.search(q, 10, with_payload=False)] for q in queries]
    db.store.close()  # crash: the 500 inserts are replayed from the log on the next open

    db = Database(tmp_path)
    coll = db.collection("s")
    assert coll.count() == len(live)
    assert [[h.id for h in coll.search(q, 10, with_payload=False)] for q in queries] == after
    assert recall(coll, live, queries, params={"max_postings": 64}) >= 0.95
    coll.rebuild()
    assert recall(coll, live, queries) >= 0.9
    db.close()


def test_spann_config_travels_and_is_validated():
    from lamina.index.errors import InvalidArgument
    from lamina.index.types import IndexConfig

    config = IndexConfig(**SPANN)
    assert convert.index_config_from_proto(convert.index_config_to_proto(config)) == config
    with pytest.raises(InvalidArgument, match="replicaz"):
        IndexConfig(kind="spann", spann={"replicaz": 3})


def test_damaged_posting_bytes_are_rebuilt_from_the_store(tmp_path, caplog):
    """Issue 20: bits flipped in postings-*.bin. Every answer equals the undamaged one, the damage
    and the repair are logged, and the rewritten file verifies."""
    import logging

    from lamina.index.spann import files
    from lamina.index.spann.admin import verify_index
    from lamina.index.spann.postings import COUNT, OFFSET

    vectors = clustered(1500)
    queries = clustered(30, seed=5)
    db = Database(tmp_path)
    coll = db.create_collection("s", 16, metric="l2", encoder=None, index=SPANN)
    coll.upsert([{"id": f"v{i}", "vector": v} for i, v in enumerate(vectors)], wait=True)
    db.close()
    db = Database(tmp_path)
    coll = db.collection("s")
    want = [[(h.id, h.score) for h in coll.search(q, 10, with_payload=False)] for q in queries]
    spann = spann_files(tmp_path)
    manifest = files.read_manifest(spann)
    lists = np.load(spann / manifest["files"]["lists"]["name"])
    with open(spann / manifest["files"]["postings"]["name"], "r+b") as fh:  # 16 bits, in 16 lists
        for h in np.flatnonzero(lists[:, COUNT] > 0)[::3][:16].tolist():
            at = int(lists[h, OFFSET] + 8 * lists[h, COUNT] + 5)
            fh.seek(at)
            byte = fh.read(1)[0]
            fh.seek(at)
            fh.write(bytes([byte ^ 0x10]))
    with caplog.at_level(logging.WARNING):
        got = [[(h.id, h.score) for h in coll.search(q, 10, with_payload=False)] for q in queries]
    assert got == want
    assert "fail their CRC32C" in caplog.text and "rebuilt posting list(s)" in caplog.text
    assert coll.index.repairs
    assert verify_index(spann, store=db.store).ok
    db.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postings", "lists", "heads", "head_ids", "head_index", "ids", "manifest"])
@pytest.mark.parametrize("mutation", ["flip", "truncate"])
def test_every_spann_file_damaged_at_rest_is_repaired_or_rebuilt(tmp_path, kind, mutation):
    """The corruption sweep of bench/RESULTS.md (SPANN files of a closed collection): the reopened
    collection answers exactly as before, whatever file was hit and however."""
    from lamina.index.spann import files

    vectors = clustered(1200)
    queries = clustered(10, seed=6)
    db = Database(tmp_path)
    coll = db.create_collection("s", 16, metric="l2", encoder=None, index=SPANN)
    coll.upsert([{"id": f"v{i}", "vector": v} for i, v in enumerate(vectors)], wait=True)
    db.close()
    db = Database(tmp_path)
    want = [[(h.id, h.score) for h in db.collection("s").search(q, 10, with_payload=False, params=EXACT)] for q in queries]
    db.close()
    spann = spann_files(tmp_path)
    manifest = files.read_manifest(spann)
    path = spann / (files.MANIFEST if kind == "manifest" else manifest["files"][kind]["name"])
    data = bytearray(path.read_bytes())
    if mutation == "truncate":
        data = data[: len(data) // 2]
    else:
        for bit in range(0, 16 * 997, 997):  # 16 bits spread over the file
            data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))
    db = Database(tmp_path)
    coll = db.collection("s")
    got = [[(h.id, h.score) for h in coll.search(q, 10, with_payload=False, params=EXACT)] for q in queries]
    assert got == want
    db.close()
