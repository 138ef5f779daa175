"""The query pipeline of a Collection: sparse, hybrid, filters, tenants, rerank, and their persistence.

Every result is compared with a plain reference computed from the documents themselves:
BM25 by scipy over freshly fitted statistics, fusion by `retrieval.fusion`, filters by the
reference evaluator `filters.matches`, reranking by MaxSim over the stored token matrices.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.index.filters import Filter, matches
from lamina.index.sparse import SparseBatch
from lamina.retrieval.collection import Database
from lamina.retrieval.encoders.sparse import BM25Encoder
from lamina.retrieval.fusion import adaptive_fusion, reciprocal_rank_fusion, rocchio
from lamina.retrieval.query import Fusion, Rerank, SearchRequest, Stage
from lamina.retrieval.rerank import maxsim_reference

from tests.conftest import HashingEncoder

WORDS = ("wing flow shock boundary layer heat transfer pressure supersonic laminar turbulent plate "
         "cylinder nozzle jet mach number drag lift blade vortex wake cone body theory").split()
TENANTS = ("acme", "globex", "initech")


class HashingTokenEncoder:
    """One unit vector per word (hash-seeded): late interaction without a model."""

    name = "hashing-tokens"
    dim = 8

    def _encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        out = []
        for text in texts:
            rows = []
            for word in re.findall(r"\w+", text.lower()) or ["empty"]:
                seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
                rows.append(v / np.linalg.norm(v))
            out.append(np.stack(rows))
        return out

    encode_documents = _encode
    encode_queries = _encode


def make_corpus(n: int = 300, seed: int = 5) -> list[dict]:
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(4, 14))))
        docs.append({"id": f"d{i}", "text": text, "tenant": TENANTS[i % 3],
                     "metadata": {"year": int(1950 + i % 40), "topic": str(rng.choice(["aero", "heat", "flow"]))}})
    return docs


def open_db(path):
    dense, tokens = HashingEncoder(), HashingTokenEncoder()
    return Database(path, encoder_loader=lambda name: dense, token_loader=lambda name: tokens)


@pytest.fixture
def corpus():
    return make_corpus()


@pytest.fixture
def coll(tmp_path, corpus):
    db = open_db(tmp_path)
    c = db.create_collection("c", encoder="hashing", multivector=True,
                             payload={"year": "numeric", "topic": "keyword"})
    c.upsert(corpus)
    yield c
    db.close()


def bm25_reference(texts: list[str], ids: list[str], query: str, k: int,
                   tenants: list[str] | None = None) -> list[tuple[str, float]]:
    """BM25 by scipy over statistics fitted on exactly these texts (idf on the document side); with
    `tenants`, each document's length is normalised by its tenant's average length (what a collection
    stores for a tenant's document, `lamina.retrieval.tenant_bm25`) while the idf stays the whole corpus's."""
    enc = BM25Encoder().fit(texts)
    docs = enc.encode_documents(texts).to_scipy(enc.vocab_size)
    if tenants is not None:
        counts, lengths = enc.counts(texts)
        owners = np.asarray(tenants, dtype=object)
        average = np.array([lengths[owners == t].mean() for t in owners])
        dl = np.repeat(lengths / average, counts.row_lengths())
        tf = counts.values.astype(np.float64)
        weights = enc.stats.idf()[counts.indices] * tf * (enc.k1 + 1) / (tf + enc.k1 * (1 - enc.b + enc.b * dl))
        docs = SparseBatch(counts.indptr, counts.indices, weights).to_scipy(enc.vocab_size)
    scores = (docs @ enc.encode_queries([query]).to_scipy(enc.vocab_size).T).toarray().ravel()
    order = np.lexsort((np.arange(len(ids)), -scores))
    return [(ids[i], float(scores[i])) for i in order[:k] if scores[i] > 0]


def test_sparse_mode_is_bm25(coll, corpus):
    for query in ("shock boundary layer", "heat transfer cylinder", "vortex"):
        hits = coll.search(query, k=10, mode="sparse", params={"heap_factor": float("inf"), "query_cut": 50})
        expected = bm25_reference([d["text"] for d in corpus], [d["id"] for d in corpus], query, 10,
                                  [d["tenant"] for d in corpus])
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=2e-3)
        # ids agree up to ties in score
        assert {h.id for h in hits if h.score > expected[-1][1] + 1e-3} <= {i for i, _ in expected}


def test_hybrid_rrf_is_rrf_of_the_two_stages(coll):
    query = "supersonic nozzle jet"
    dense = coll.search(query, k=100, mode="dense", with_payload=False)
    sparse = coll.search(query, k=100, mode="sparse", with_payload=False)
    names = sorted({h.id for h in dense + sparse})  # fusion breaks ties by internal id: use the store's
    index = {d.id: d.iid for d in coll.store.get_documents("c", names)}
    lists = [(np.array([index[h.id] for h in hits]), np.array([h.score for h in hits])) for hits in (dense, sparse)]
    ids, scores = reciprocal_rank_fusion(lists, limit=10)
    back = {v: k for k, v in index.items()}
    hybrid = coll.search(query, k=10, mode="hybrid", fusion="rrf", with_payload=False)
    assert [h.id for h in hybrid] == [back[int(i)] for i in ids]
    np.testing.assert_allclose([h.score for h in hybrid], scores, rtol=1e-6)
    weighted = coll.search(query, k=10, mode="hybrid", fusion="weighted")
    assert len(weighted) == 10 and weighted[0].score <= 2.0 + 1e-6  # two lists, each normalised to [0, 1]


def test_a_prefixed_param_reaches_its_stage_only(coll):
    request = SearchRequest.simple("wing", 10, mode="hybrid", params={"sparse.query_cut": 3, "dense.nprobe": 4,
                                                                      "scan_candidates": 64})
    assert [(s.kind, s.params) for s in request.stages] == [
        ("dense", {"nprobe": 4, "scan_candidates": 64}), ("sparse", {"query_cut": 3, "scan_candidates": 64})]
    # unprefixed, a sparse knob goes to the dense stage too, which refuses it; prefixed it works
    with pytest.raises(InvalidArgument, match="exact_postings"):
        coll.search("supersonic nozzle jet", mode="hybrid", params={"exact_postings": 0})
    wide = {"sparse.query_cut": 50, "sparse.heap_factor": float("inf"), "sparse.exact_postings": 0}
    assert [h.id for h in coll.search("supersonic nozzle jet", mode="hybrid", params=wide)] == \
        [h.id for h in coll.search("supersonic nozzle jet", mode="hybrid")]  # both exact on this corpus
    with pytest.raises(InvalidArgument, match="runs dense only"):
        SearchRequest.simple("wing", mode="dense", params={"sparse.query_cut": 3})
    with pytest.raises(InvalidArgument, match="names a stage"):
        SearchRequest.simple("wing", mode="hybrid", params={"hnsw.ef_search": 3})


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_filter_and_tenant_restrict_every_stage(coll, corpus, mode):
    flt = {"must": [{"key": "year", "range": {"gte": 1960, "lt": 1975}}],
           "must_not": [{"key": "topic", "match": {"value": "heat"}}]}
    parsed = Filter.from_dict(flt)
    allowed = {d["id"] for d in corpus if matches(parsed, d["metadata"]) and d["tenant"] == "globex"}
    hits = coll.search("wing flow drag", k=50, mode=mode, filter=flt, tenant="globex")
    assert hits and {h.id for h in hits} <= allowed
    if mode == "dense":  # exact plan: the best of the allowed documents, all of them when fewer than k
        enc = HashingEncoder()
        q = enc.encode_queries(["wing flow drag"])[0]
        by_id = {d["id"]: d for d in corpus}
        scores = {i: float(enc.encode_documents([by_id[i]["text"]])[0] @ q) for i in allowed}
        best = sorted(scores.values(), reverse=True)[:50]
        np.testing.assert_allclose([h.score for h in hits], best, rtol=1e-5, atol=1e-6)
        assert len(hits) == min(50, len(allowed))
    assert coll.count(tenant="globex", filter=flt) == len(allowed)


def test_tenant_cannot_reach_other_tenants(coll, corpus):
    acme = [d["id"] for d in corpus if d["tenant"] == "acme"]
    other = [d["id"] for d in corpus if d["tenant"] != "acme"]
    assert all(d is None for d in coll.get(other[:20], tenant="acme"))
    assert all(d is not None for d in coll.get(acme[:20], tenant="acme"))
    assert coll.delete(other[:5], tenant="acme") == []
    assert all(d is not None for d in coll.get(other[:5]))
    assert coll.tenants() == {t: sum(d["tenant"] == t for d in corpus) for t in TENANTS}
    assert coll.delete_tenant("initech") == 100
    assert coll.count(tenant="initech") == 0 and coll.count() == 200
    assert coll.tenants() == {t: sum(d["tenant"] == t for d in corpus) for t in TENANTS if t != "initech"}
    assert not any(h.tenant == "initech" for h in coll.search("wing", k=300, mode="hybrid"))


def test_hybrid_default_is_adaptive_fusion_after_one_rocchio_round(coll):
    """The default hybrid, recomputed from its parts: adaptive fusion of the two stages, the dense
    query moved towards the best fused document's stored vector, a second dense search, fused again."""
    query = "supersonic nozzle jet"
    result = coll.query(SearchRequest.simple(query, 10, mode="hybrid", explain=True))
    assert result.explain["fusion"] == "adaptive"
    detail = result.explain["fusion_detail"]
    assert detail["feedback"] == {"documents": 1, "weight": 0.5, "stages": [0]}
    assert len(detail["weights"]) == 2 and len(detail["decisiveness"]) == 2

    def ranked(hits):
        found = coll.store.get_documents("c", [h.id for h in hits])
        return np.array([d.iid for d in found]), np.array([h.score for h in hits])

    q = coll.embed_query(query)
    dense = ranked(coll.search(q, k=100, mode="dense", with_payload=False))
    sparse = ranked(coll.search(query, k=100, mode="sparse", with_payload=False))
    first, _, _, _ = adaptive_fusion([dense, sparse], limit=100)
    top = coll.get([coll.store.doc_ids("c", first[:1])[0]], with_vectors=True)[0].vector
    again = ranked(coll.search(rocchio(q, top[None, :], 0.5), k=100, mode="dense", with_payload=False))
    ids, scores, weights, signals = adaptive_fusion([again, sparse], limit=10)
    assert [h.id for h in result.hits] == coll.store.doc_ids("c", ids)
    np.testing.assert_allclose([h.score for h in result.hits], scores, rtol=1e-5)
    np.testing.assert_allclose(detail["weights"], weights, atol=1e-4)
    off = coll.query(SearchRequest.simple(query, 10, mode="hybrid", fusion=Fusion("adaptive", feedback=0)))
    plain, _, _, _ = adaptive_fusion([dense, sparse], limit=10)
    assert [h.id for h in off.hits] == coll.store.doc_ids("c", plain)


def test_rerank_is_maxsim_over_the_fused_candidates(coll, corpus):
    query = "laminar boundary layer heat"
    request = SearchRequest(query, k=5, stages=(Stage("dense"), Stage("sparse")), fusion=Fusion("rrf"),
                            rerank=Rerank(kappa=30), explain=True)
    result = coll.query(request)
    candidates = coll.query(SearchRequest(query, k=30, stages=request.stages, fusion=request.fusion))
    tokens = HashingTokenEncoder()
    q = tokens.encode_queries([query])[0]
    by_id = {d["id"]: d["text"] for d in corpus}
    ref = maxsim_reference(q, [tokens.encode_documents([by_id[h.id]])[0] for h in candidates.hits])
    order = np.argsort(-ref, kind="stable")[:5]
    np.testing.assert_allclose([h.score for h in result.hits], ref[order], rtol=2e-3)  # float16 tokens
    assert result.explain["rerank"]["scored"] == 30 and result.explain["fusion"] == "rrf"
    pruned = coll.search(query, k=5, mode="hybrid", rerank=Rerank(kappa=30, alpha=0.5, beta=5))
    assert len(pruned) == 5


def test_everything_survives_reopen_and_crash(tmp_path, corpus):
    db = open_db(tmp_path)
    c = db.create_collection("c", encoder="hashing", multivector=True, payload={"year": "numeric"})
    c.upsert(corpus[:200])
    c.snapshot()
    c.upsert(corpus[200:])  # after the snapshot: replayed from the store's log
    c.delete(["d3", "d250"])
    flt = {"must": [{"key": "year", "range": {"lt": 1970}}]}
    before = {mode: c.search("shock wave drag", k=10, mode=mode, filter=flt, tenant="acme",
                             rerank=10 if mode == "hybrid" else None)
              for mode in ("dense", "sparse", "hybrid")}
    stats = c.sparse_encoder.stats.to_dict()
    db.store.close()  # a crash: no close(), no snapshot of the last writes
    db = open_db(tmp_path)
    c = db.collection("c")
    for mode, hits in before.items():
        again = c.search("shock wave drag", k=10, mode=mode, filter=flt, tenant="acme",
                         rerank=10 if mode == "hybrid" else None)
        assert [h.id for h in again] == [h.id for h in hits]
    # the deletes of the replayed window are not subtracted from the BM25 counts (documented)
    assert c.sparse_encoder.stats.n_docs >= stats["n_docs"] - 2
    db.close()
    db = open_db(tmp_path)
    c = db.collection("c")
    assert c.count() == 298 and c.get(["d3"]) == [None]
    db.close()


def test_bad_requests_name_what_is_wrong(tmp_path, coll):
    db = Database(tmp_path / "v", encoder_loader=lambda name: HashingEncoder())
    plain = db.create_collection("v", 32, encoder=None)
    plain.upsert([{"id": "a", "vector": np.ones(32)}])
    with pytest.raises(InvalidArgument, match="no sparse field"):
        plain.search(np.ones(32), mode="sparse")
    with pytest.raises(InvalidArgument, match="keeps no token vectors"):
        plain.search(np.ones(32), rerank=20)
    with pytest.raises(InvalidArgument, match="needs a text query"):
        coll.search(np.ones(32), rerank=20)
    with pytest.raises(InvalidArgument, match="'colour'"):
        coll.search("wing", filter={"must": [{"key": "colour", "match": {"value": "red"}}]})
    with pytest.raises(InvalidArgument, match="no terms"):
        coll.search("\u200b\u200b", mode="sparse")  # text that tokenises to nothing
    with pytest.raises(InvalidArgument, match="kappa"):
        coll.search("wing", k=10, rerank=Rerank(kappa=5))
    with pytest.raises(InvalidArgument, match="alpha"):
        coll.search("wing", rerank=Rerank(kappa=20, alpha=1.0))
    with pytest.raises(InvalidArgument, match="mode"):
        coll.search("wing", mode="fuzzy")
    db.close()


def test_tenant_tree_collection_answers_like_the_exact_path(tmp_path, corpus):
    db = open_db(tmp_path)
    tree = db.create_collection("tree", encoder="hashing", tenant_tree=True, payload={"year": "numeric"})
    plain = db.create_collection("plain", encoder="hashing", payload={"year": "numeric"})
    for c in (tree, plain):
        c.upsert(corpus)
        c.delete(["d0", "d4"])
    flt = {"must": [{"key": "year", "range": {"gte": 1970}}]}
    for tenant in TENANTS:
        for f in (None, flt):
            request = SearchRequest("wing flow drag", 20, filter=f, tenant=tenant, explain=True)
            got, want = tree.query(request), plain.query(request)
            np.testing.assert_allclose([h.score for h in got.hits], [h.score for h in want.hits], rtol=1e-5)
            assert {h.tenant for h in got.hits} == {tenant}
            assert got.explain["stages"][0]["plan"] == ("tenant-tree" if f is None else "brute-force")
    before = [h.id for h in tree.search("heat", 10, tenant="acme")]
    db.close()
    db = open_db(tmp_path)
    assert [h.id for h in db.collection("tree").search("heat", 10, tenant="acme")] == before
    db.close()
