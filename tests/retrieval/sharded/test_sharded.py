"""A sharded collection on Ray answers as one node does: 1 and 4 shards against a single `Collection`.

Every collection here holds the same points (random vectors, texts of a small vocabulary, payload,
tenants), written in the same batches. Flat dense index, so answers are exact and comparable:
dense, sparse (BM25 scores to 1e-6), hybrid (RRF and weighted), filtered and tenant searches, plus
Count, Get and facets; an approximate index's recall against brute force; a shard actor killed
mid-stream (Unavailable naming it, partial answers when allowed, nothing acknowledged lost, full
answers after Ray restarts it).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from lamina.index.errors import Unavailable
from lamina.retrieval.collection import Database
from lamina.retrieval.query import Fusion, SearchRequest, Stage

ray = pytest.importorskip("ray", reason="the dist extra (ray) is not installed")
from lamina.retrieval.sharded import ShardedCollection  # noqa: E402

pytestmark = pytest.mark.slow

DIM, N, BATCH = 16, 400, 100
WORDS = ("wing lift drag heat transfer boundary layer flow shock pressure supersonic laminar turbulent "
         "nozzle jet plate cylinder cone blade stream").split()
PAYLOAD = {"cat": "keyword", "year": "numeric"}


class _Dim:
    name, dim = "fixed", DIM

    def encode_queries(self, texts):
        raise AssertionError("these tests send vectors")

    encode_documents = encode_queries


def _loader(name):
    return _Dim()


def _points(seed: int = 0, n: int = N, start: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    points = []
    for i in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(3, 12)))
        points.append({"id": f"p{start + i:04d}", "vector": vectors[i], "text": " ".join(words),
                       "metadata": {"cat": "abc"[i % 3], "year": int(1990 + i % 30)}, "tenant": f"t{i % 3}"})
    return points


@pytest.fixture(scope="module")
def cluster():
    from lamina.retrieval.sharded import ensure_ray

    ensure_ray(num_cpus=2)  # a local cluster, token auth on (~/.ray/auth_token, generated if absent)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def colls(cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    db = Database(root / "plain", encoder_loader=_loader)
    plain = db.create_collection("c", encoder="fixed", index="flat", payload=PAYLOAD)
    s1 = ShardedCollection.create(root / "s1", "c", 1, encoder="fixed", encoder_loader=_loader, index="flat",
                                  payload=PAYLOAD)
    s4 = ShardedCollection.create(root / "s4", "c", 4, encoder="fixed", encoder_loader=_loader, index="flat",
                                  payload=PAYLOAD)
    t4 = ShardedCollection.create(root / "t4", "c", 4, route="tenant", encoder="fixed", encoder_loader=_loader,
                                  index="flat", payload=PAYLOAD)
    points = _points()
    for start in range(0, N, BATCH):  # the same batches everywhere: BM25 statistics evolve alike
        for coll in (plain, s1, s4, t4):
            assert all(r.ok for r in coll.upsert(points[start:start + BATCH]))
    for coll in (plain, s1, s4, t4):
        coll.delete(["p0007", "p0100"])
    updates = _points(seed=1, n=20, start=10)  # new texts for p0010..p0029, each keeping its tenant
    for i, p in enumerate(updates):
        p["tenant"] = f"t{(10 + i) % 3}"
    for coll in (plain, s1, s4, t4):  # written after the deletes and over old versions: the tenants'
        assert all(r.ok for r in coll.upsert(updates))  # averages must be gathered afresh, not cached
    yield {"plain": plain, "s1": s1, "s4": s4, "t4": t4}
    for coll in (s1, s4, t4):
        coll.close()
    db.close()


def _same(a, b, *, exact: bool) -> None:
    """Same top-k: scores equal (to 1e-6 unless exact); ids equal except inside a run of tied scores."""
    sa = np.array([h.score for h in a]); sb = np.array([h.score for h in b])
    assert len(a) == len(b)
    if exact:
        np.testing.assert_array_equal(sa, sb)
    else:
        np.testing.assert_allclose(sa, sb, rtol=1e-6, atol=1e-6)
    for i, (x, y) in enumerate(zip(a, b)):
        tied = np.sum(np.isclose(sa, sa[i], rtol=1e-6, atol=1e-7)) > 1
        if not tied:
            assert x.id == y.id, f"rank {i}: {x.id} != {y.id}"
    assert {h.id for h in a if np.sum(np.isclose(sa, h.score, rtol=1e-6, atol=1e-7)) == 1} == \
           {h.id for h in b if np.sum(np.isclose(sb, h.score, rtol=1e-6, atol=1e-7)) == 1}


def _requests():
    rng = np.random.default_rng(7)
    flt = {"must": [{"key": "cat", "match": {"value": "b"}}, {"key": "year", "range": {"gte": 1995}}]}
    out = []
    for q in range(4):
        vec = rng.standard_normal(DIM).astype(np.float32)
        text = " ".join(rng.choice(WORDS, size=3))
        out += [
            SearchRequest(vec, 10),
            SearchRequest(text, 10, (Stage("sparse"),)),
            SearchRequest(vec, 10, (Stage("dense"), Stage("sparse", query=text))),
            SearchRequest(vec, 10, (Stage("dense"), Stage("sparse", query=text)), Fusion("weighted", (0.7, 0.3))),
            SearchRequest(vec, 10, (Stage("dense"), Stage("sparse", query=text)), filter=flt),
            SearchRequest(text, 10, (Stage("sparse"),), filter=flt),
            SearchRequest(vec, 10, (Stage("dense"), Stage("sparse", query=text)), tenant=f"t{q % 3}"),
            SearchRequest(text, 10, (Stage("sparse"),), tenant=f"t{q % 3}"),
        ]
    return out


def test_shards_answer_as_one_node(colls):
    for request in _requests():
        one = colls["plain"].query(request).hits
        s1, s4 = colls["s1"].query(request).hits, colls["s4"].query(request).hits
        assert one, request
        _same(s1, s4, exact=True)  # the same router at 1 and 4 shards: bit for bit
        _same(one, s4, exact=False)  # against one node: BM25 and fused scores to 1e-6
        if request.tenant is not None:
            _same(one, colls["t4"].query(request).hits, exact=False)
        assert [h.text for h in s4] == [h.text for h in colls["s1"].query(request).hits]


def test_passed_deadline_stops_the_search(colls):
    from lamina.index.deadline import Deadline
    from lamina.index.errors import DeadlineExceeded

    request = SearchRequest(np.ones(DIM, np.float32), 5)
    with pytest.raises(DeadlineExceeded, match="encoding the query"):
        colls["s4"].query(request, deadline=Deadline(0))
    assert len(colls["s4"].query(request, deadline=Deadline(60)).hits) == 5


def test_bm25_statistics_add_up_to_one_nodes(colls):
    one = colls["plain"].sparse_encoder.stats
    merged = colls["s4"].global_stats()
    assert (merged.n_docs, merged.total_length) == (one.n_docs, one.total_length)
    np.testing.assert_array_equal(merged.df, one.df)


def test_tenant_bm25_statistics_add_up_to_one_nodes(colls):
    one = colls["plain"].indexes.bm25_tenants
    terms = np.append(colls["plain"].sparse_encoder.counts([" ".join(WORDS)])[0].indices, 0)  # 0: a term no text has
    tenants = ["t0", "t1", "t2", "nobody"]
    for coll in (colls["s4"], colls["t4"]):
        merged = coll.tenant_stats(tenants, terms)
        for t in tenants:
            assert merged.corpus(t) == one.corpus(t), t
            np.testing.assert_array_equal(merged.df(t, np.sort(terms)), one.df(t, np.sort(terms)))
    assert one.corpus("t1")[0] > 100


def test_count_get_facets_tenants_merge(colls):
    plain, s4, t4 = colls["plain"], colls["s4"], colls["t4"]
    flt = {"must": [{"key": "cat", "match": {"value": "a"}}]}
    for coll in (s4, t4):
        assert coll.count() == plain.count() == N - 2
        assert coll.count(filter=flt, tenant="t1") == plain.count(filter=flt, tenant="t1")
        ids = ["p0001", "p0007", "p0399", "nope", "p0200"]
        assert [d and (d.id, d.text) for d in coll.get(ids)] == [d and (d.id, d.text) for d in plain.get(ids)]
        assert coll.facet("cat", limit=2) == plain.facet("cat", limit=2)
        assert coll.facet("year", bins=4, tenant="t2").stats == plain.facet("year", bins=4, tenant="t2").stats
        assert coll.tenants() == plain.tenants()


def test_approximate_index_recall_within_noise(colls, tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, DIM)).astype(np.float32)
    points = [{"id": f"v{i}", "vector": v} for i, v in enumerate(vectors)]
    queries = rng.standard_normal((40, DIM)).astype(np.float32)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    db = Database(tmp_path / "plain", encoder_loader=_loader)
    options = {"encoder": None, "dim": DIM, "index": {"kind": "hnsw", "hnsw_m": 8, "ef_construction": 40},
               "sparse": None}
    plain = db.create_collection("a", **options)
    sharded = ShardedCollection.create(tmp_path / "s", "a", 4, **options)
    try:
        for coll in (plain, sharded):
            for start in range(0, len(points), 1000):
                coll.upsert(points[start:start + 1000])

        def recall(coll):
            hits = [coll.search(q, 10, params={"ef_search": 16}, with_payload=False) for q in queries]
            return np.mean([len({int(h.id[1:]) for h in row} & set(t)) / 10 for row, t in zip(hits, truth)])

        one, four = recall(plain), recall(sharded)
        assert one > 0.5
        assert four >= one - 0.05, (one, four)  # 4 graphs of 750 probe at least as well as one of 3000
    finally:
        sharded.close()
        db.close()


def test_killed_shard_is_unavailable_then_recovers(cluster, tmp_path):
    coll = ShardedCollection.create(tmp_path / "k", "k", 2, encoder=None, dim=DIM, sparse=None, timeout_s=1.0)
    try:
        acked: list[str] = []
        for start in range(0, 300, 50):
            batch = _points(seed=start, n=50, start=start)
            for p in batch:
                p.pop("text"), p.pop("tenant")
            assert all(r.ok for r in coll.upsert(batch, wait=True))
            acked += [p["id"] for p in batch]
            if start == 150:
                ray.kill(coll.handles[1], no_restart=False)  # mid-stream: Ray restarts it
                time.sleep(0.3)  # the kill lands (it is asynchronous); a restart takes seconds
                with ThreadPoolExecutor(2) as pool:  # both while it is down
                    strict = pool.submit(coll.search, np.ones(DIM, np.float32), 5)
                    partial = pool.submit(coll.query, SearchRequest(np.ones(DIM, np.float32), 5), allow_partial=True)
                    with pytest.raises(Unavailable, match="shard 1 "):
                        strict.result()
                    partial = partial.result()
                assert partial.explain["partial"] and partial.explain["unavailable_shards"] == [1]
                assert partial.hits and all(coll._owners([h.id])[0] == 0 for h in partial.hits)
                _wait_up(coll)
        assert coll.count() == len(acked)
        assert all(d is not None for d in coll.get(acked))
        assert len(coll.search(np.ones(DIM, np.float32), 20)) == 20
    finally:
        coll.close()


def _wait_up(coll, limit_s: float = 90.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            coll.count()
            return
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_distributed_build_matches_one_node_and_reruns(cluster, tmp_path, tiny_model_dir):
    from lamina.retrieval.sharded.build import build_sharded

    words = "wing lift drag heat transfer boundary layer flow shock pressure".split()
    rng = np.random.default_rng(5)
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"_id": f"d{i}", "title": "", "text": " ".join(rng.choice(words, size=6)),
                         "metadata": {"n": i}}) for i in range(120)]
    corpus.write_text("\n".join(lines[:60] + ["not json"] + lines[60:]) + "\n")
    seen: list[int] = []
    report = build_sharded(corpus, tmp_path / "s", "b", 2, encoder=str(tiny_model_dir), actors=2, num_cpus=0.5,
                           batch_size=32, progress=seen.append)
    assert (report["written"], report["bad"], report["documents"], sum(seen)) == (120, 1, 120, 121)
    again = build_sharded(corpus, tmp_path / "s", "b", 2, encoder=str(tiny_model_dir), actors=1, num_cpus=0.5)
    assert (again["written"], again["skipped"], again["documents"]) == (0, 120, 120)  # idempotent
    db = Database(tmp_path / "one")
    one = db.create_collection("b", encoder=str(tiny_model_dir))
    one.upsert([json.loads(line) | {"id": json.loads(line)["_id"]} for line in lines])
    sharded = ShardedCollection.open(tmp_path / "s")
    try:
        # not hybrid: these 6-word texts of 10 words tie BM25 scores often, and a stage's tied candidates
        # rank by insertion on one node, by document id on the router, which moves RRF ranks
        for mode in ("dense", "sparse"):
            _same(one.search("wing shock pressure", 10, mode=mode), sharded.search("wing shock pressure", 10, mode=mode),
                  exact=False)
    finally:
        sharded.close()
        db.close()


def test_served_over_grpc_with_tenant_keys(colls, tmp_path):
    """`ShardedDatabase` behind the unchanged servicers: a tenant-bound key sees only its tenant."""
    import asyncio
    import threading

    from lamina.retrieval.sharded.database import ShardedDatabase
    from lamina.service.auth import KeyStore
    from lamina.service.client import Client
    from lamina.service.server import serve_database

    database = ShardedDatabase(Database(tmp_path / "front", encoder_loader=_loader), {"c": colls["s4"]})
    keys = KeyStore(database.store)
    _, t1 = keys.create(tenant="t1", rights={"c": {"read", "write"}})
    state: dict = {}
    ready = threading.Event()

    async def main() -> None:
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await serve_database(database, "127.0.0.1", 0, ready=lambda port: (state.update(port=port), ready.set()),
                             stop=state["stop"], grace=1.0, auth="on")

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(20)
    try:
        vec = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
        with Client(f"127.0.0.1:{state['port']}", api_key=t1, timeout=20) as client:
            remote = client.search("c", vec, 10)
            assert remote and all(h.tenant == "t1" for h in remote)
            local = colls["s4"].search(vec, 10, tenant="t1")
            assert [h.id for h in remote] == [h.id for h in local]
            assert client.count("c") == colls["plain"].count(tenant="t1")
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(15)
        database._database.close()


def test_tenant_bound_writes_score_as_one_node(cluster, tmp_path):
    """Writes bound to a tenant (`upsert(tenant=...)`), a delete and a replacement between them, on a
    2-shard collection routed by id: the tenants' documents are spread over both shards, and their
    tenant-bound and unbound BM25 scores still equal one node's."""
    db = Database(tmp_path / "plain", encoder_loader=_loader)
    plain = db.create_collection("w", encoder="fixed", index="flat")
    sharded = ShardedCollection.create(tmp_path / "s", "w", 2, encoder="fixed", encoder_loader=_loader, index="flat")
    try:
        acme, globex = _points(seed=11, n=60), _points(seed=12, n=60, start=100)
        for p in acme + globex:
            p.pop("metadata"), p.pop("tenant")
        for coll in (plain, sharded):
            assert all(r.ok for r in coll.upsert(acme[:30], tenant="acme"))
            assert all(r.ok for r in coll.upsert([p | {"tenant": "globex"} for p in globex[:40]]))
            assert coll.delete(["p0003", "p0105"]) == ["p0003", "p0105"]
            assert all(r.ok for r in coll.upsert(acme[25:], tenant="acme"))  # p0025..p0029 replaced
            assert all(r.ok for r in coll.upsert(globex[40:]))  # no tenant: the collection's average length
        for tenant in ("acme", "globex"):
            assert sharded.tenant_stats([tenant]).corpus(tenant) == plain.indexes.bm25_tenants.corpus(tenant)
        assert plain.indexes.bm25_tenants.corpus("acme")[0] == 59
        rng = np.random.default_rng(13)
        for _ in range(6):
            text = " ".join(rng.choice(WORDS, size=3))
            for tenant in ("acme", "globex", None):
                request = SearchRequest(text, 10, (Stage("sparse"),), tenant=tenant)
                _same(plain.query(request).hits, sharded.query(request).hits, exact=False)
    finally:
        sharded.close()
        db.close()
