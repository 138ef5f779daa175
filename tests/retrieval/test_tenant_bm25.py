"""Per-tenant BM25 statistics (issue #23, "tenant-blind statistics"): a tenant's scores, and what a
search bound to it reports, depend on its own documents only.

Property: for any interleaving of writes and deletes by two tenants (and unbound writes), tenant
acme's bound searches (sparse and hybrid: hits, scores, explain, counts, facets) are those of a
collection that saw acme's operations alone, and its sparse scores are BM25 computed by brute force
over acme's live documents: idf from their document frequencies and count, each document's length
normalised by acme's average length when it was written (the statistics of its write).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lamina.retrieval.collection import Database
from lamina.retrieval.encoders.sparse import BM25Encoder, bm25_idf

from tests.conftest import HashingEncoder

WORDS = "shock wave boundary layer heat flux plate nozzle vortex wake drag lift cone jet".split()
QUERIES = ("shock wave", "heat flux plate", "vortex", "drag lift cone jet wake")
_TOKENIZER = BM25Encoder()  # tokenisation only (the reference's lengths and term counts)


def open_db(path):
    dense = HashingEncoder()
    return Database(path, encoder_loader=lambda name: dense,
                    sparse_loader=lambda name: BM25Encoder(idf_side="query"))


def make_collection(db):
    return db.create_collection("c", encoder="hashing", payload={"topic": "keyword"})


class Reference:
    """acme's live documents with the average length each was normalised by at its write."""

    def __init__(self) -> None:
        self.live: dict[str, tuple[str, float]] = {}

    def write(self, docs: list[dict]) -> None:
        lengths = [self.length(d["text"]) for d in docs]
        old = [self.length(t) for t, _ in self.live.values()]
        average = (sum(old) + sum(lengths)) / (len(old) + len(docs))  # the batch counted in, old versions too
        for d in docs:
            self.live[d["id"]] = (d["text"], average)

    def delete(self, ids: list[str]) -> None:
        for i in ids:
            self.live.pop(i, None)

    @staticmethod
    def length(text: str) -> int:
        return int(_TOKENIZER.counts([text])[1][0])

    def scores(self, query: str, k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
        ids = list(self.live)
        counts, lengths = _TOKENIZER.counts([self.live[i][0] for i in ids])
        matrix = counts.to_scipy(_TOKENIZER.vocab_size).toarray()
        q, _ = _TOKENIZER.counts([query])
        df = (matrix[:, q.indices] > 0).sum(0)
        idf = bm25_idf(df, len(ids))
        tf = matrix[:, q.indices].astype(np.float64)
        avg = np.array([self.live[i][1] for i in ids])[:, None]
        w = tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[:, None] / avg))
        s = (w * idf * q.values).sum(1)
        return {i: float(v) for i, v in zip(ids, s) if v > 0}


texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)
ops = st.lists(st.tuples(st.sampled_from(["acme", "globex", None]), st.sampled_from(["upsert", "delete"]),
                         st.lists(st.tuples(st.integers(0, 12), texts), min_size=1, max_size=6)),
               min_size=1, max_size=8)


def apply(coll, op, ref: Reference | None = None) -> None:
    tenant, kind, rows = op
    prefix = {"acme": "a", "globex": "g", None: "n"}[tenant]
    ids = [f"{prefix}{n}" for n, _ in rows]
    if tenant == "globex":  # globex also aims at the ids acme holds: refused rows change nothing of acme's
        held = coll.get([f"a{n}" for n, _ in rows], tenant="acme")
        ids = [f"a{n}" if doc is not None and n % 2 == 0 else i for (n, _), i, doc in zip(rows, ids, held)]
    if kind == "delete":
        gone = coll.delete(ids, tenant=tenant) if tenant else coll.delete([i for i in ids if i[0] == "n"])
        if ref is not None and tenant == "acme":
            ref.delete(gone)
        return
    docs = list({i: {"id": i, "text": t, "metadata": {"topic": t.split()[0]}} for i, (_, t) in zip(ids, rows)}.values())
    results = coll.upsert(docs, tenant=tenant) if tenant else coll.upsert([d for d in docs if d["id"][0] == "n"])
    if ref is not None and tenant == "acme":
        assert all(r.ok for r in results)
        ref.write(docs)


def acme_view(coll):
    out = {}
    for query in QUERIES:
        for mode in ("sparse", "hybrid"):
            result = coll.query(_request(query, mode))
            explain = {k: v for k, v in result.explain.items() if k != "ms"}
            explain["stages"] = [{k: v for k, v in s.items() if k != "ms"} for s in explain["stages"]]
            out[query, mode] = ({h.id: h.score for h in result.hits}, explain)
    facets = coll.facet("topic", tenant="acme", limit=50)
    facets = facets.to_dict()
    facets.pop("time_ms", None)
    return out, coll.count(tenant="acme"), facets


def _request(query, mode):
    from lamina.retrieval.query import SearchRequest

    return SearchRequest.simple(query, 100, mode=mode, tenant="acme", explain=True)


@settings(max_examples=12, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),  # shrinking: minutes
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_a_tenants_scores_ignore_other_tenants_and_equal_brute_force_bm25(tmp_path_factory, sequence):
    root = tmp_path_factory.mktemp("bm25")
    ref = Reference()
    with open_db(root / "mixed") as mixed_db, open_db(root / "alone") as alone_db:
        mixed, alone = make_collection(mixed_db), make_collection(alone_db)
        for op in sequence:
            apply(mixed, op, ref)
            if op[0] == "acme":
                apply(alone, op)
        assert acme_view(mixed) == acme_view(alone)
        for query in QUERIES:
            hits = {h.id: h.score for h in mixed.search(query, 100, mode="sparse", tenant="acme")}
            expected = ref.scores(query)
            assert set(hits) == set(expected)
            for i, score in hits.items():  # document weights are stored as float16
                assert score == pytest.approx(expected[i], rel=2e-3)


def test_the_issue_scenario_scores_stay_put(tmp_path):
    with open_db(tmp_path) as db:
        coll = make_collection(db)
        coll.upsert([{"id": f"a{i}", "text": f"shock wave {WORDS[i]} plate"} for i in range(5)], tenant="acme")
        before = [(h.id, h.score) for h in coll.search("shock wave", 5, mode="sparse", tenant="acme")]
        coll.upsert([{"id": f"g{i}", "text": "shock wave shock wave drag " * (i % 3 + 1)} for i in range(30)],
                    tenant="globex")
        coll.delete(["g1", "g2"], tenant="globex")
        after = [(h.id, h.score) for h in coll.search("shock wave", 5, mode="sparse", tenant="acme")]
        assert after == before and before[0][1] > 0
        unbound = {h.id: h.score for h in coll.search("shock wave", 40, mode="sparse")}
        assert unbound["a0"] < before[0][1]  # the collection-wide idf counts globex's documents


def test_statistics_survive_snapshot_crash_replay_and_rebuild(tmp_path):
    def recount(coll):
        stats = coll.indexes.bm25_tenants
        docs = [d for d in coll.store.iter_documents("c") if d.tenant and d.text]
        out = {}
        for tenant in {d.tenant for d in docs}:
            counts, lengths = _TOKENIZER.counts([d.text for d in docs if d.tenant == tenant])
            df = np.bincount(counts.indices, minlength=_TOKENIZER.vocab_size)
            terms = np.flatnonzero(df)
            out[tenant] = (len(lengths), int(lengths.sum()), terms.tolist(), df[terms].tolist())
            assert stats.corpus(tenant) == out[tenant][:2]
            assert stats.df(tenant, terms).tolist() == out[tenant][3]
        assert len(stats) == sum(v[0] for v in out.values())
        return out

    docs = [{"id": f"d{i}", "text": " ".join(WORDS[j % len(WORDS)] for j in range(i, i + 3 + i % 5)),
             "tenant": ("acme", "globex")[i % 2]} for i in range(60)]
    db = open_db(tmp_path)
    coll = make_collection(db)
    coll.upsert(docs[:40])
    coll.snapshot()
    coll.upsert(docs[40:])
    coll.upsert([{"id": "d1", "text": "vortex"}], tenant="globex")  # a replacement
    coll.delete(["d2", "d45", "d3"])  # one counted in the snapshot, one in the replayed window
    expected = recount(coll)
    query = {t: [(h.id, h.score) for h in coll.search("shock wave vortex", 10, mode="sparse", tenant=t)]
             for t in ("acme", "globex")}
    db.store.close()  # a crash: the last writes are replayed from the store's log
    db = open_db(tmp_path)
    coll = db.collection("c")
    assert recount(coll) == expected
    assert {t: [(h.id, h.score) for h in coll.search("shock wave vortex", 10, mode="sparse", tenant=t)]
            for t in query} == query
    coll.rebuild()
    assert recount(coll) == expected
    db.close()
    with open_db(tmp_path) as db:
        assert recount(db.collection("c")) == expected
