import shutil

import numpy as np
import pytest

from lamina.index.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from lamina.index.snapshot import read_manifest
from lamina.retrieval import collection as collection_module
from lamina.retrieval.collection import Database


@pytest.fixture
def vectors():
    rng = np.random.default_rng(3)
    return rng.standard_normal((500, 16)).astype(np.float32)


def brute_force_ids(coll, vectors_by_id, query, k, metric="l2"):
    ids = list(vectors_by_id)
    base = np.stack([vectors_by_id[i] for i in ids])
    scores = base @ query if metric == "ip" else -((base - query) ** 2).sum(1)
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_upsert_delete_search_reopen(tmp_path, vectors, kind):
    live = {str(i): vectors[i] for i in range(len(vectors))}
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 16, metric="l2", encoder=None, index={"kind": kind, "nlist": 8, "nprobe": 8},
                                    payload={"n": "numeric"})
        coll.index.train_size = 200  # make the IVF collection train during the test
        results = coll.upsert([{"id": i, "vector": v, "metadata": {"n": int(i)}} for i, v in live.items()])
        assert all(r.ok for r in results)
        deleted = coll.delete([str(i) for i in range(0, 500, 5)] + ["nope"])
        assert "nope" not in deleted and len(deleted) == 100
        for i in deleted:
            del live[i]
        coll.upsert([{"id": "1", "vector": vectors[0] + 0.01}])  # replace
        live["1"] = vectors[0] + 0.01
        assert coll.count() == len(live) == len(coll.index)
        query = vectors[0]
        params = {"ef_search": 200} if kind == "hnsw" else {}
        before = [h.id for h in coll.search(query, 10, params=params)]
        assert before == brute_force_ids(coll, live, query, 10)
        # a filter of ~200 ids is answered by brute force over vectors read from the dense index:
        # deleted and replaced points must be seen as the store has them
        low = {"must": [{"key": "n", "range": {"lt": 250}}]}
        matching = {i: v for i, v in live.items() if i != "1" and int(i) < 250}  # "1" lost its metadata
        filtered = [h.id for h in coll.search(query, 10, filter=low)]
        assert filtered == brute_force_ids(coll, matching, query, 10)

    with Database(tmp_path) as db:  # snapshot was written at close: nothing to replay
        coll = db.collection("c")
        assert [h.id for h in coll.search(query, 10, params=params)] == before
        assert [h.id for h in coll.search(query, 10, filter=low)] == filtered
        hit = coll.search(query, 1)[0]
        assert hit.id == "1" and hit.metadata == {}  # an upsert replaces the whole point
        assert coll.search(vectors[2], 1)[0].metadata == {"n": 2}


def test_reopen_without_snapshot_replays_the_log(tmp_path, vectors):
    db = Database(tmp_path)
    coll = db.create_collection("c", 16, metric="ip", encoder=None)
    coll.upsert([{"id": str(i), "vector": v} for i, v in enumerate(vectors[:100])])
    coll.snapshot()
    coll.upsert([{"id": str(i), "vector": v} for i, v in enumerate(vectors[100:200], start=100)])
    coll.delete(["0", "150"])
    expected = [h.id for h in coll.search(vectors[7], 20)]
    db.store.close()  # a crash: no close(), no final snapshot

    with Database(tmp_path) as db:
        coll = db.collection("c")
        assert coll.count() == 198 and len(coll.index) == 198
        assert [h.id for h in coll.search(vectors[7], 20)] == expected


def test_corrupt_or_missing_snapshot_is_rebuilt_from_the_store(tmp_path, vectors):
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 16, encoder=None)
        coll.upsert([{"id": str(i), "vector": v} for i, v in enumerate(vectors)])
        expected = [h.id for h in coll.search(vectors[3], 10)]
    root = tmp_path / "indexes" / "c"
    snap = root / read_manifest(root)["dir"] / "index.faiss"
    snap.write_bytes(b"garbage")
    with Database(tmp_path) as db:
        assert [h.id for h in db.collection("c").search(vectors[3], 10)] == expected
    shutil.rmtree(root)
    with Database(tmp_path) as db:
        assert [h.id for h in db.collection("c").search(vectors[3], 10)] == expected


def test_text_upsert_and_search_use_the_encoder(tmp_path, fake_encoder_loader):
    with Database(tmp_path, encoder_loader=fake_encoder_loader) as db:
        coll = db.create_collection("docs")  # dimension comes from the encoder
        assert coll.config.dim == 32
        coll.upsert([
            {"id": "a", "title": "Wings", "text": "lift and drag of a wing"},
            {"id": "b", "text": "boundary layer heat transfer"},
            {"id": "c", "text": "propeller slipstream", "vector": np.ones(32, np.float32) / np.sqrt(32)},
        ])
        top = coll.search("heat transfer in the boundary layer", 1)[0]
        assert top.id == "b" and top.text == "boundary layer heat transfer"
        assert coll.get(["a"])[0].text == "Wings lift and drag of a wing"


def test_bad_rows_are_reported_and_not_written(tmp_path, vectors):
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 16, encoder=None)
        results = coll.upsert([
            {"id": "ok", "vector": vectors[0]},
            {"id": "short", "vector": vectors[0][:3]},
            {"vector": vectors[1]},
            {"id": "nan", "vector": np.full(16, np.nan)},
            {"id": "meta", "vector": vectors[2], "metadata": {"x": float("inf")}},
            {"id": "meta2", "vector": vectors[2], "metadata": ["not", "a", "dict"]},
            {"id": "text-only", "text": "no encoder here"},
            {"id": "extra", "vector": vectors[3], "colour": "red"},
        ])
        assert [r.ok for r in results] == [True] + [False] * 7
        assert "dimension 3" in results[1].error and "id" in results[2].error
        assert "NaN" in results[3].error and "'x'" in results[4].error and "JSON object" in results[5].error
        assert "no encoder" in results[6].error and "colour" in results[7].error
        assert coll.count() == 1 and coll.get(["short", "ok"])[0] is None


def test_search_argument_errors(tmp_path, vectors, fake_encoder_loader):
    with Database(tmp_path, encoder_loader=fake_encoder_loader) as db:
        coll = db.create_collection("c")
        coll.upsert([{"id": "a", "text": "hello"}])
        with pytest.raises(InvalidArgument, match="empty"):
            coll.search("   ", 3)
        with pytest.raises(InvalidArgument, match="k must be"):
            coll.search("hello", 0)
        with pytest.raises(InvalidArgument, match="dimension 16"):
            coll.search(vectors[0], 3)
        with pytest.raises(InvalidArgument, match="limit"):
            coll.search("hello", 10**6)
        vec_only = db.create_collection("v", 16, encoder=None)
        with pytest.raises(InvalidArgument, match="no encoder"):
            vec_only.search("hello", 3)


def test_collection_lifecycle(tmp_path, monkeypatch):
    with Database(tmp_path) as db:
        db.create_collection("a", 4, encoder=None)
        with pytest.raises(AlreadyExists):
            db.create_collection("a", 4, encoder=None)
        with pytest.raises(NotFound):
            db.collection("zzz")
        with pytest.raises(InvalidArgument):
            db.create_collection("a b", 4, encoder=None)
        with pytest.raises(InvalidArgument, match="metric"):
            db.create_collection("m", 4, metric="cosine", encoder=None)
        db.collection("a").upsert([{"id": "x", "vector": [1, 2, 3, 4]}])
        db.drop_collection("a")
        assert db.list_collections() == []
        again = db.create_collection("a", 4, encoder=None)
        assert again.count() == 0 and again.search([1, 2, 3, 4], 5) == []
        monkeypatch.setattr(collection_module, "MAX_BATCH", 3)
        with pytest.raises(ResourceExhausted):
            again.upsert([{"id": str(i), "vector": [0, 0, 0, 1]} for i in range(4)])


def test_periodic_snapshots_trim_the_log(tmp_path, vectors, monkeypatch):
    monkeypatch.setattr(collection_module, "SNAPSHOT_EVERY", 50)
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 16, encoder=None)
        for start in range(0, 200, 25):
            coll.upsert([{"id": str(i), "vector": vectors[i]} for i in range(start, start + 25)])
        assert coll.wait_for_maintenance(60)  # snapshots are written by the maintenance worker
        seq = read_manifest(tmp_path / "indexes" / "c")["seq"]
        assert seq > 0
        assert len(db.store.changes_since("c", 0).added) < 200  # trimmed up to the snapshot


def test_a_large_filter_scans_codes_first_and_keeps_them_across_reopen(tmp_path):
    """Above the planner's exact threshold (4,096 matching ids) a filtered search ranks the ids by
    scan code and rescores the best exactly; the codes are snapshotted with the dense index."""
    from lamina.retrieval.query import SearchRequest

    rng = np.random.default_rng(4)
    centers = rng.standard_normal((30, 16)).astype(np.float32) * 3
    vectors = (centers[rng.integers(0, 30, 6_000)] + rng.standard_normal((6_000, 16))).astype(np.float32)
    flt = {"must": [{"key": "n", "range": {"lt": 5_000}}]}
    matching = {str(i): vectors[i] for i in range(5_000)}
    queries = vectors[rng.choice(6_000, 10, replace=False)] + 0.1

    def run(coll):
        found = []
        for query in queries:
            got = coll.query(SearchRequest(query, 10, filter=flt, explain=True))
            assert got.explain["stages"][0]["plan"] == "quantized-scan"
            found.append([h.id for h in got.hits])
        return found

    with Database(tmp_path) as db:
        coll = db.create_collection("c", 16, metric="l2", encoder=None, index={"kind": "ivf", "nlist": 16},
                                    payload={"n": "numeric"})
        coll.index.train_size = 1_000
        coll.upsert([{"id": str(i), "vector": v, "metadata": {"n": i}} for i, v in enumerate(vectors)])
        assert coll.wait_for_maintenance(60)  # the codes are trained in the background
        assert coll.index.codes is not None and len(coll.index.codes) == 6_000
        before = run(coll)
    hits = sum(len(set(f) & set(brute_force_ids(None, matching, q, 10))) for f, q in zip(before, queries))
    assert hits >= 0.95 * 10 * len(queries)
    with Database(tmp_path) as db:
        coll = db.collection("c")
        assert run(coll) == before
        # scan_candidates per request: all 5,000 matching ids rescored is exact brute force; an
        # unrestricted search ignores it
        exact = coll.search(queries[0], 10, filter=flt, params={"scan_candidates": 5_000})
        assert [h.id for h in exact] == brute_force_ids(None, matching, queries[0], 10)
        assert len(coll.search(queries[0], 10, params={"scan_candidates": 64})) == 10
        with pytest.raises(InvalidArgument, match="scan_candidates"):  # checked on either path
            coll.search(queries[0], 10, params={"scan_candidates": 0})


def test_a_range_over_the_clustering_key_scans_its_run_of_codes(tmp_path, monkeypatch):
    """With a clustering key, a filter that is one range over it scans the codes laid out in its
    order; a write leaves them behind until the next snapshot, and the plan falls back meanwhile."""
    from lamina.index.scan import ClusteredCodes
    from lamina.retrieval.query import SearchRequest

    rng = np.random.default_rng(6)
    centers = rng.standard_normal((30, 16)).astype(np.float32) * 3
    vectors = (centers[rng.integers(0, 30, 6_000)] + rng.standard_normal((6_000, 16))).astype(np.float32)
    day = rng.permutation(6_000)  # uncorrelated with the vectors
    flt = {"must": [{"key": "day", "range": {"gte": 500, "lt": 5_500}}]}
    matching = {str(i): vectors[i] for i in range(6_000) if 500 <= day[i] < 5_500}
    queries = vectors[rng.choice(6_000, 8, replace=False)] + 0.1

    def plans_and_hits(coll):
        got = [coll.query(SearchRequest(q, 10, filter=flt, explain=True)) for q in queries]
        assert all(g.explain["cardinality"] == len(matching) for g in got)
        return {g.explain["stages"][0]["plan"] for g in got}, [[h.id for h in g.hits] for g in got]

    with pytest.raises(InvalidArgument, match="clustering key 'kind' must be a numeric payload field"):
        with Database(tmp_path / "bad") as db:
            db.create_collection("c", 16, encoder=None, payload={"kind": "keyword"}, clustering_key="kind")
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 16, metric="l2", encoder=None, index="flat",
                                    payload={"day": "numeric"}, clustering_key="day")
        coll.index.train_size = 1_000
        coll.upsert([{"id": str(i), "vector": v, "metadata": {"day": int(day[i])}} for i, v in enumerate(vectors)])
        assert coll.wait_for_maintenance(60)  # the scan codes are trained in the background
        assert plans_and_hits(coll)[0] == {"quantized-scan"}  # not laid out before a snapshot
        coll.snapshot()
        plans, found = plans_and_hits(coll)
        assert plans == {"clustered-scan"}
        hits = sum(len(set(f) & set(brute_force_ids(None, matching, q, 10))) for f, q in zip(found, queries))
        assert hits >= 0.95 * 10 * len(queries)
        coll.upsert([{"id": "new", "vector": vectors[0], "metadata": {"day": 600}}])
        matching["new"] = vectors[0]
        assert plans_and_hits(coll)[0] == {"quantized-scan"}
        assert "new" in [h.id for h in coll.search(vectors[0], 2, filter=flt)]  # seen meanwhile (ties with "0")
    with Database(tmp_path) as db:  # reopened: laid out again from the snapshot and the replayed write
        coll = db.collection("c")
        assert coll.config.clustering_key == "day"
        assert plans_and_hits(coll)[0] == {"clustered-scan"}
        assert coll.stats()["memory_bytes"]["clustered"] >= 6_001 * 16 // 4
        coll.snapshot()  # holds the codes now
        expected = plans_and_hits(coll)[1]

    def no_build(*args, **kwargs):
        raise AssertionError("the snapshot's clustered codes should have been loaded, not built")

    monkeypatch.setattr(ClusteredCodes, "build", no_build)
    with Database(tmp_path) as db:
        assert plans_and_hits(db.collection("c")) == ({"clustered-scan"}, expected)


def test_upsert_with_delete_is_one_atomic_write(tmp_path, vectors):
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 16, metric="l2", encoder=None, payload={"parent": "keyword"})
        coll.upsert([{"id": f"d#{i}", "vector": vectors[i], "metadata": {"parent": "d"}} for i in range(5)])
        seq = db.store.last_seq
        results = coll.upsert([{"id": f"d#{i}", "vector": vectors[10 + i], "metadata": {"parent": "d"}}
                               for i in range(2)], delete=["d#2", "d#3", "d#4", "never-stored"])
        assert [r.ok for r in results] == [True, True]
        assert db.store.last_seq == seq + 1  # replacement and deletes under one sequence number
        assert coll.count() == 2 == coll.count(filter={"must": [{"key": "parent", "match": {"value": "d"}}]})
        assert [d is not None for d in coll.get([f"d#{i}" for i in range(5)])] == [True, True, False, False, False]
        assert {h.id for h in coll.search(vectors[3], 5)} == {"d#0", "d#1"}
        # deletes alone are a write too; an id both written and deleted, or a string, is refused
        assert coll.upsert([], delete=["d#1"]) == [] and coll.count() == 1
        with pytest.raises(InvalidArgument, match="both written and deleted"):
            coll.upsert([{"id": "d#0", "vector": vectors[0]}], delete=["d#0"])
        with pytest.raises(InvalidArgument, match="sequence of ids"):
            coll.upsert([], delete="d#0")
        with pytest.raises(ResourceExhausted):
            coll.upsert([{"id": "x", "vector": vectors[0]}], delete=[str(i) for i in range(collection_module.MAX_BATCH)])
        # when every point fails, nothing is written: the deletes neither
        failed = coll.upsert([{"id": "bad", "vector": [1.0]}], delete=["d#0"])
        assert not failed[0].ok and coll.get(["d#0"])[0] is not None
    with Database(tmp_path) as db:  # and the write replays as it was
        assert sorted(d.id for d in db.collection("c").get(["d#0", "d#1", "d#2"]) if d) == ["d#0"]


def test_upsert_delete_keeps_tenant_rules(tmp_path, vectors):
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 16, encoder=None)
        coll.upsert([{"id": "a1", "vector": vectors[0], "tenant": "acme"},
                     {"id": "g1", "vector": vectors[1], "tenant": "globex"}])
        coll.upsert([{"id": "a2", "vector": vectors[2]}], tenant="acme", delete=["a1", "g1"])
        assert [d and d.id for d in coll.get(["a1", "g1", "a2"])] == [None, "g1", "a2"]
        assert coll.get(["a2"])[0].tenant == "acme"
