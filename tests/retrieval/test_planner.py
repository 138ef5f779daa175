"""The query planner against brute-force ground truth: plan choices at the threshold, complete
results (min(k, matching) in every row), exact plans exact, approximate plans with recall."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lamina.index.dense import DenseIndex
from lamina.index.errors import InvalidArgument
from lamina.index.filters import Filter, Match, MatchAny, Range
from lamina.index.payload import PayloadIndex
from lamina.index.scan import ClusteredCodes
from lamina.index.tenants import TenantIndex, TenantIndexConfig, brute_force_topk
from lamina.index.types import IndexConfig
from lamina.retrieval.planner import (
    PLANS,
    Plan,
    PlannerConfig,
    QueryPlanner,
    index_knob,
)

DIM = 16
N = 6_000
COLORS = ("red", "green", "blue", "black", "white")


class Corpus:
    """Gaussian-mixture vectors with metadata (color, year, rank) and Zipfian tenants."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        centers = rng.standard_normal((24, DIM)).astype(np.float32) * 3
        self.vectors = (centers[rng.integers(0, len(centers), N)] + rng.standard_normal((N, DIM))).astype(np.float32)
        self.ids = np.arange(N, dtype=np.int64) * 3 + 11  # sparse iids, as the store's
        color = rng.choice(len(COLORS), N, p=[0.5, 0.3, 0.15, 0.04, 0.01])
        year = rng.integers(1900, 2025, N)
        self.metadata = [{"color": COLORS[c], "year": int(y), "rank": i}
                         for i, (c, y) in enumerate(zip(color.tolist(), year.tolist()))]
        weights = 1 / np.arange(1, 21)
        self.owner = rng.choice(20, N, p=weights / weights.sum())
        self.access = {f"t{t}": set(self.ids[self.owner == t].tolist()) for t in range(20)}
        for row in rng.choice(N, 300, replace=False).tolist():  # shared with a second tenant
            self.access[f"t{rng.integers(20)}"].add(int(self.ids[row]))
        self.queries = (centers[rng.integers(0, len(centers), 8)] + rng.standard_normal((8, DIM))).astype(np.float32)

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        return self.vectors[(np.asarray(ids) - 11) // 3]

    def matching(self, flt: Filter | None, tenant: str | None) -> np.ndarray:
        from lamina.index.filters import matches

        keep = [iid for iid, md in zip(self.ids.tolist(), self.metadata) if matches(flt, md)]
        if tenant is not None:
            keep = [iid for iid in keep if iid in self.access[tenant]]
        return np.array(sorted(keep), dtype=np.int64)

    def truth(self, queries: np.ndarray, k: int, ids: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
        return brute_force_topk(queries, self.vectors_of(ids), ids, k, metric)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus()


@pytest.fixture(scope="module")
def payload(corpus) -> PayloadIndex:
    return PayloadIndex.build({"color": "keyword", "year": "numeric", "rank": "numeric"}, corpus.ids, corpus.metadata)


@pytest.fixture(scope="module")
def tenants(corpus) -> TenantIndex:
    index = TenantIndex(DIM, "l2", TenantIndexConfig(train_size=2_000, nprobe=256))
    index.add(corpus.ids, corpus.vectors, [f"t{o}" for o in corpus.owner])
    for tenant, members in corpus.access.items():
        own = set(corpus.ids[corpus.owner == int(tenant[1:])].tolist())
        for iid in sorted(members - own):
            index.grant(iid, tenant)
    return index


def dense(corpus, kind: str, metric: str = "l2", **config) -> DenseIndex:
    index = DenseIndex(DIM, metric, IndexConfig(kind=kind, gpu=False, **config), train_size=2_000)
    index.add(corpus.ids, corpus.vectors)
    return index


@pytest.fixture(scope="module")
def ivf(corpus) -> DenseIndex:
    return dense(corpus, "ivf", nlist=64, nprobe=1)


def planner(corpus, payload, index, tenants=None, threshold=500, metric="l2", scale=True, **kwargs) -> QueryPlanner:
    return QueryPlanner(payload, index, corpus.vectors_of, tenant_index=tenants, metric=metric,
                        config=PlannerConfig(brute_force_threshold=threshold, scale_nprobe=scale), **kwargs)


def rank_below(n: int) -> Filter:
    """A filter matching exactly n documents (ranks are 0..N-1)."""
    return Filter(must=(Range("rank", lt=n),))


def assert_complete(found: np.ndarray, allowed: np.ndarray, k: int) -> None:
    """Every row holds min(k, |allowed|) distinct allowed ids, then -1 padding."""
    need = min(k, len(allowed))
    assert ((found >= 0).sum(1) == need).all()
    assert (found[:, need:] == -1).all()
    for row in found:
        hits = row[:need]
        assert len(set(hits.tolist())) == need
        assert np.isin(hits, allowed).all()


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth))
    return hits / max(int((truth >= 0).sum()), 1)


# --------------------------------------------------------------------------- plan choices
def test_plan_choices_at_the_threshold(corpus, payload, ivf, tenants):
    p = planner(corpus, payload, ivf, tenants, threshold=500)
    q = corpus.queries[:2]
    assert p.search(q, 10, flt=rank_below(500)).plan.name == "brute_force"
    assert p.search(q, 10, flt=rank_below(501)).plan.name == "index_filtered"
    assert p.search(q, 10).plan.name == "index"
    assert p.search(q, 10, flt=Filter()).plan.name == "index"  # an empty filter restricts nothing
    assert p.search(q, 10, flt=Filter(must=(Match("color", "purple"),))).plan.name == "empty"
    assert p.search(q, 10, tenant="t0").plan.name == "tenant_tree"
    assert p.search(q, 10, tenant="t19").plan.name == "tenant_tree"  # tenant-only: always the tree
    assert p.search(q, 10, tenant="nobody").plan.name == "empty"
    # tenant + filter: the cardinality is that of the intersection
    t0 = np.array(sorted(corpus.access["t0"]), dtype=np.int64)
    rank_of_t0 = (t0 - 11) // 3
    at = int(rank_of_t0[499]) + 1  # ranks below `at` hold exactly 500 of t0's ids
    assert p.explain(rank_below(at), "t0").cardinality == 500
    assert p.search(q, 10, flt=rank_below(at), tenant="t0").plan.name == "brute_force"
    at = int(rank_of_t0[500]) + 1
    plan = p.search(q, 10, flt=rank_below(at), tenant="t0").plan
    assert (plan.name, plan.cardinality) == ("tenant_tree", 501)


def test_explain_reports_plan_and_cardinality_without_searching(corpus, payload, ivf):
    p = planner(corpus, payload, ivf)
    flt = Filter(must=(Match("color", "blue"),))
    plan = p.explain(flt, k=7)
    expected = len(corpus.matching(flt, None))
    assert plan == Plan("index_filtered", expected, 7, 7, None, True)
    assert plan.name in PLANS
    ran = p.search(corpus.queries, 7, flt=flt).plan
    assert (ran.name, ran.cardinality, ran.results) == ("index_filtered", expected, 7)
    json.dumps(ran.to_dict())  # what the service sends back


def test_default_threshold_and_knobs(corpus, payload, ivf):
    assert PlannerConfig().brute_force_threshold == 20_000
    assert index_knob(ivf) == ("nprobe", 1)
    assert index_knob(dense(corpus, "hnsw")) == ("ef_search", 64)
    assert index_knob(dense(corpus, "flat")) == (None, 0)
    p = QueryPlanner(payload, ivf, corpus.vectors_of, metric="l2")
    assert p.search(corpus.queries, 10, flt=rank_below(N)).plan.name == "brute_force"  # 6,000 < 20,000


# --------------------------------------------------------------------------- exact plans
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_brute_force_equals_ground_truth(corpus, payload, metric):
    index = dense(corpus, "flat", metric)
    p = planner(corpus, payload, index, threshold=2_000, metric=metric)
    flt = Filter(must=(Range("year", gte=1950, lt=1990),), must_not=(Match("color", "red"),))
    allowed = corpus.matching(flt, None)
    assert 0 < len(allowed) <= 2_000
    scores, found, plan = p.search(corpus.queries, 10, flt=flt)
    assert plan.name == "brute_force"
    true_scores, truth = corpus.truth(corpus.queries, 10, allowed, metric)
    np.testing.assert_array_equal(found, truth)
    np.testing.assert_allclose(scores, true_scores, rtol=1e-5, atol=1e-4)


def test_brute_force_with_fewer_matches_than_k(corpus, payload, ivf):
    p = planner(corpus, payload, ivf)
    flt = rank_below(3)
    scores, found, plan = p.search(corpus.queries, 10, flt=flt)
    assert plan.results == 3
    assert_complete(found, corpus.matching(flt, None), 10)
    assert np.isneginf(scores[:, 3:]).all()


# --------------------------------------------------------------------------- quantized scan
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_quantized_scan_above_the_exact_threshold(corpus, payload, tenants, metric):
    index = dense(corpus, "flat", metric)
    assert index.codes is not None  # trained at the index's train_size
    config = PlannerConfig(brute_force_threshold=1_500, exact_threshold=500, scan_candidates=300,
                           scan_threshold=5_000)
    p = QueryPlanner(payload, index, corpus.vectors_of, tenant_index=tenants, metric=metric, config=config,
                     scan=index.codes)
    assert p.explain(rank_below(500)).name == "brute_force"
    assert p.explain(rank_below(501)).name == "quantized_scan"
    assert p.explain(rank_below(5_000)).name == "quantized_scan"  # above brute_force_threshold, a filter scans
    assert p.explain(rank_below(5_001)).name == "index_filtered"
    assert p.explain(rank_below(N), "t1").name == "quantized_scan"  # 842 ids
    assert p.explain(rank_below(N), "t0").name == "tenant_tree"  # 1,669 > 1,500: the tree beats a scan
    for flt, tenant in ((rank_below(4_000), None), (rank_below(N), "t1")):
        allowed = corpus.matching(flt, tenant)
        scores, found, plan = p.search(corpus.queries, 10, flt=flt, tenant=tenant)
        assert plan.name == "quantized_scan" and plan.cardinality == len(allowed) > 500
        assert_complete(found, allowed, 10)
        truth = corpus.truth(corpus.queries, 10, allowed, metric)[1]
        assert recall(found, truth) >= 0.95  # 300 of 842 or 4,000 ids rescored
        # the scores are exact: those of the vectors themselves, best first
        rows = corpus.vectors_of(found.ravel()).reshape(*found.shape, DIM)
        q = corpus.queries[:, None, :]
        exact = (rows * q).sum(-1) if metric == "ip" else -((rows - q) ** 2).sum(-1)
        np.testing.assert_allclose(scores, exact, rtol=1e-4, atol=1e-3)
        assert (scores[:, :-1] >= scores[:, 1:]).all()
    # scan_candidates per call: as many candidates as ids makes the scan exact; k of them is
    # complete still; anything but a positive integer is refused
    flt = rank_below(4_000)
    allowed = corpus.matching(flt, None)
    truth = corpus.truth(corpus.queries, 10, allowed, metric)[1]
    all_ids = p.search(corpus.queries, 10, flt=flt, params={"scan_candidates": 4_000})
    np.testing.assert_array_equal(all_ids.ids, truth)
    few = p.search(corpus.queries, 10, flt=flt, params={"scan_candidates": 10})
    assert_complete(few.ids, allowed, 10)
    assert recall(few.ids, truth) < recall(p.search(corpus.queries, 10, flt=flt).ids, truth)
    for bad in (0, -3, 2.5, True, "many"):
        with pytest.raises(InvalidArgument, match="scan_candidates"):
            p.search(corpus.queries, 10, flt=flt, params={"scan_candidates": bad})
    # other plans ignore it (the IVF and the tree do not see it)
    assert p.search(corpus.queries, 10, flt=rank_below(N), params={"scan_candidates": 50}).plan.name == "index_filtered"
    # without scan codes the same query is exact brute force
    plain = QueryPlanner(payload, index, corpus.vectors_of, metric=metric, config=config)
    assert plain.search(corpus.queries, 10, flt=rank_below(1_500)).plan.name == "brute_force"
    assert plain.search(corpus.queries, 10, flt=rank_below(4_000)).plan.name == "index_filtered"


def test_flat_index_filtered_is_exact(corpus, payload):
    p = planner(corpus, payload, dense(corpus, "flat"), threshold=100)
    flt = Filter(must=(MatchAny("color", ("black", "white")),))
    _, found, plan = p.search(corpus.queries, 10, flt=flt)
    assert plan.name == "index_filtered" and len(plan.steps) == 1
    np.testing.assert_array_equal(found, corpus.truth(corpus.queries, 10, corpus.matching(flt, None), "l2")[1])


# --------------------------------------------------------------------------- approximate plans
def test_index_filtered_widens_nprobe_until_complete(corpus, payload, ivf):
    p = planner(corpus, payload, ivf, threshold=50, scale=False)
    flt = Filter(must=(Match("color", "white"),))  # ~1%: nprobe=1 rarely finds 10
    allowed = corpus.matching(flt, None)
    assert len(allowed) > 50
    _, found, plan = p.search(corpus.queries, 10, flt=flt)
    assert_complete(found, allowed, 10)
    assert len(plan.steps) > 1
    assert [s.params["nprobe"] for s in plan.steps] == [1 * 4 ** i for i in range(len(plan.steps))]
    assert plan.steps[0].rows == len(corpus.queries) and plan.steps[-1].complete + plan.fallback_rows > 0
    assert recall(found, corpus.truth(corpus.queries, 10, allowed, "l2")[1]) >= 0.9


def test_index_filtered_scales_nprobe_by_selectivity(corpus, payload, ivf):
    flt = Filter(must=(Match("color", "black"),))  # ~4%
    allowed = corpus.matching(flt, None)
    _, found, plan = planner(corpus, payload, ivf, threshold=50).search(corpus.queries, 10, flt=flt)
    assert plan.steps[0].params["nprobe"] == int(np.ceil(1 * N / len(allowed)))
    assert_complete(found, allowed, 10)
    assert recall(found, corpus.truth(corpus.queries, 10, allowed, "l2")[1]) >= 0.95
    capped = planner(corpus, payload, ivf, threshold=50, knob_max=8).search(corpus.queries, 10, flt=flt).plan
    assert capped.steps[0].params["nprobe"] == 8 and all(s.params["nprobe"] == 8 for s in capped.steps)
    gentle = QueryPlanner(payload, ivf, corpus.vectors_of, metric="l2",
                          config=PlannerConfig(brute_force_threshold=50, nprobe_exponent=0.5))
    _, found, plan = gentle.search(corpus.queries, 10, flt=flt)
    assert plan.steps[0].params["nprobe"] == int(np.ceil(1 * (N / len(allowed)) ** 0.5))
    assert_complete(found, allowed, 10)
    with pytest.raises(InvalidArgument, match="nprobe_exponent"):
        PlannerConfig(nprobe_exponent=0)


def test_index_filtered_hnsw_is_complete_with_recall(corpus, payload):
    p = planner(corpus, payload, dense(corpus, "hnsw"), threshold=50)
    for color in ("green", "black"):
        flt = Filter(must=(Match("color", color),))
        allowed = corpus.matching(flt, None)
        _, found, plan = p.search(corpus.queries, 10, flt=flt)
        assert plan.name == "index_filtered"
        assert_complete(found, allowed, 10)
        assert recall(found, corpus.truth(corpus.queries, 10, allowed, "l2")[1]) >= 0.9


class PostFilterIndex:
    """An index without a knob that post-filters its top-k: it misses allowed ids beyond k."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.calls: list[int] = []

    def search(self, queries, k, *, allowed=None, params=None):
        self.calls.append(k)
        scores, ids = brute_force_topk(queries, self.corpus.vectors, self.corpus.ids, k, "l2")
        if allowed is not None:
            keep = np.isin(ids, allowed)
            scores, ids = np.where(keep, scores, -np.inf), np.where(keep, ids, -1)
            order = np.argsort(~keep, axis=1, kind="stable")  # the kept ones first, in order
            scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        return scores, ids


def test_index_without_knob_widens_k_then_falls_back(corpus, payload):
    index = PostFilterIndex(corpus)
    p = QueryPlanner(payload, index, corpus.vectors_of, metric="l2",
                     config=PlannerConfig(brute_force_threshold=10, max_widenings=2))
    flt = Filter(must=(Match("color", "white"),))  # ~60 of 6,000: top-10 of all rarely holds 10
    allowed = corpus.matching(flt, None)
    _, found, plan = p.search(corpus.queries, 10, flt=flt)
    assert index.calls[:3] == [10, 40, 160][: len(index.calls)]
    assert [s.k for s in plan.steps] == index.calls
    assert plan.fallback_rows > 0  # k=160 of 6,000 cannot reach every white document
    np.testing.assert_array_equal(found, corpus.truth(corpus.queries, 10, allowed, "l2")[1])


# --------------------------------------------------------------------------- tenants
def test_tenant_tree_results_stay_in_the_tenant(corpus, payload, ivf, tenants):
    p = planner(corpus, payload, ivf, tenants)
    for tenant in ("t0", "t3", "t19"):
        allowed = corpus.matching(None, tenant)
        _, found, plan = p.search(corpus.queries, 10, tenant=tenant)
        assert plan.name == "tenant_tree" and plan.cardinality == len(allowed)
        assert_complete(found, allowed, 10)
        assert recall(found, corpus.truth(corpus.queries, 10, allowed, "l2")[1]) >= 0.9


@pytest.mark.parametrize("threshold", [0, 100_000])
def test_tenant_with_filter_both_plans(corpus, payload, ivf, tenants, threshold):
    p = planner(corpus, payload, ivf, tenants, threshold=threshold)
    flt = Filter(should=(Match("color", "green"), Range("year", lt=1930)))
    for tenant in ("t0", "t1", "t7"):
        allowed = corpus.matching(flt, tenant)
        _, found, plan = p.search(corpus.queries, 10, flt=flt, tenant=tenant)
        assert plan.name == ("tenant_tree" if threshold == 0 else "brute_force")
        assert plan.cardinality == len(allowed)
        assert_complete(found, allowed, 10)
        truth = corpus.truth(corpus.queries, 10, allowed, "l2")[1]
        if threshold:
            np.testing.assert_array_equal(found, truth)
        else:
            assert recall(found, truth) >= 0.9


def test_tenant_ids_follow_grants_and_revokes(corpus, tenants):
    np.testing.assert_array_equal(tenants.tenant_ids("t4"), np.array(sorted(corpus.access["t4"])))
    assert tenants.tenant_size("t4") == len(corpus.access["t4"]) and tenants.tenant_size("nobody") == 0
    outsider = int(corpus.ids[corpus.owner == 0][0])
    assert tenants.grant(outsider, "t4")
    assert outsider in tenants.tenant_ids("t4").tolist()
    assert tenants.revoke(outsider, "t4")
    np.testing.assert_array_equal(tenants.tenant_ids("t4"), np.array(sorted(corpus.access["t4"])))
    assert len(tenants.tenant_ids("nobody")) == 0


# --------------------------------------------------------------------------- properties
conditions = st.one_of(
    st.builds(lambda c: Match("color", c), st.sampled_from(COLORS + ("purple",))),
    st.builds(lambda a, w: Range("year", gte=a, lt=a + w), st.integers(1890, 2030), st.integers(0, 150)),
    st.builds(lambda n: Range("rank", lt=n), st.integers(0, N)),
    st.builds(lambda cs: MatchAny("color", tuple(cs)), st.lists(st.sampled_from(COLORS), min_size=1, max_size=3)),
)
filters = st.one_of(
    st.none(),
    st.builds(lambda m, s, n: Filter(must=tuple(m), should=tuple(s), must_not=tuple(n)),
              st.lists(conditions, max_size=2), st.lists(conditions, max_size=2), st.lists(conditions, max_size=1)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filters, tenant=st.one_of(st.none(), st.sampled_from(["t0", "t2", "t11", "t19", "nobody"])),
       k=st.integers(1, 40), threshold=st.sampled_from([0, 30, 400, 10_000]))
def test_any_query_returns_min_k_matching_results(corpus, payload, ivf, tenants, flt, tenant, k, threshold):
    p = planner(corpus, payload, ivf, tenants, threshold=threshold)
    queries = corpus.queries[:3]
    scores, found, plan = p.search(queries, k, flt=flt, tenant=tenant)
    if (flt is None or flt.is_empty) and tenant is None:
        assert plan.name == "index"
        return
    allowed = np.empty(0, dtype=np.int64) if tenant == "nobody" else corpus.matching(flt, tenant)
    assert plan.cardinality == len(allowed)
    assert_complete(found, allowed, k)
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    if plan.name == "brute_force":
        np.testing.assert_array_equal(found, corpus.truth(queries, k, allowed, "l2")[1])


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_invalid_argument(corpus, payload, ivf):
    p = planner(corpus, payload, ivf)
    with pytest.raises(InvalidArgument, match="k must be"):
        p.search(corpus.queries, 0)
    with pytest.raises(InvalidArgument, match="tenant index"):
        p.search(corpus.queries, 5, tenant="t0")
    with pytest.raises(InvalidArgument, match="'price'"):
        p.search(corpus.queries, 5, flt=Filter(must=(Range("price", lt=3),)))
    with pytest.raises(InvalidArgument, match="tenant must be"):
        p.search(corpus.queries, 5, tenant="")
    with pytest.raises(InvalidArgument, match="metric"):
        QueryPlanner(payload, ivf, corpus.vectors_of, metric="cosine")
    with pytest.raises(InvalidArgument, match="widen_factor"):
        PlannerConfig(widen_factor=1)
    with pytest.raises(InvalidArgument, match="brute_force_threshold"):
        PlannerConfig(brute_force_threshold=-1)
    with pytest.raises(InvalidArgument, match="scan_candidates"):
        PlannerConfig(scan_candidates=-5)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_clustered_scan_for_a_range_over_the_clustering_key(corpus, tenants, metric):
    """A filter that is one range over the clustering key reads its run of clustered codes, with
    the recall and exact scores of the scattered scan; any other filter, or codes a write left
    behind, plans as before."""
    payload = PayloadIndex.build({"color": "keyword", "year": "numeric", "rank": "numeric"}, corpus.ids,
                                 corpus.metadata)  # its own: this test writes to it
    index = dense(corpus, "flat", metric)
    codes = ClusteredCodes("rank", DIM, metric)
    codes.build(*payload.value_order("rank"), corpus.vectors_of)
    config = PlannerConfig(brute_force_threshold=1_500, exact_threshold=500, scan_candidates=300, scan_threshold=3_000,
                           clustered_threshold=5_000)
    p = QueryPlanner(payload, index, corpus.vectors_of, tenant_index=tenants, metric=metric, config=config,
                     scan=index.codes, clustered=codes)
    assert p.explain(rank_below(500)).name == "brute_force"
    assert p.explain(rank_below(4_000)) == Plan("clustered_scan", 4_000, 10, 10, None, True)  # > scan_threshold
    assert p.explain(rank_below(5_001)).name == "index_filtered"
    assert p.explain(rank_below(0)).name == "empty"
    for other in (Filter(must=(Range("year", lt=2020),)), Filter(must=(Range("rank", lt=4_000), Match("color", "red"))),
                  Filter(should=(Range("rank", lt=4_000),))):
        assert p.explain(other).name != "clustered_scan"
    assert p.explain(rank_below(4_000), "t1").name != "clustered_scan"  # a tenant's query takes its own plans
    for flt in (rank_below(4_000), Filter(must=(Range("rank", gte=1_000, lt=3_500),)), rank_below(300)):
        allowed = corpus.matching(flt, None)
        scores, found, plan = p.search(corpus.queries, 10, flt=flt)
        assert plan.cardinality == len(allowed)
        assert plan.name == ("brute_force" if len(allowed) <= 500 else "clustered_scan")
        assert_complete(found, allowed, 10)
        truth = corpus.truth(corpus.queries, 10, allowed, metric)[1]
        assert recall(found, truth) >= (1.0 if plan.name == "brute_force" else 0.95)
        rows = corpus.vectors_of(found.ravel()).reshape(*found.shape, DIM)
        q = corpus.queries[:, None, :]
        exact = (rows * q).sum(-1) if metric == "ip" else -((rows - q) ** 2).sum(-1)
        np.testing.assert_allclose(scores, exact, rtol=1e-4, atol=1e-3)
    # every candidate rescored is exact brute force
    allowed = corpus.matching(rank_below(4_000), None)
    exact_ids = p.search(corpus.queries, 10, flt=rank_below(4_000), params={"scan_candidates": 4_000}).ids
    np.testing.assert_array_equal(exact_ids, corpus.truth(corpus.queries, 10, allowed, metric)[1])
    # a write to the field replaces its pairs: the codes no longer answer, the scattered scan does
    iid, metadata = int(corpus.ids[5]), corpus.metadata[5]
    payload.remove(iid, metadata)
    payload.add(iid, metadata)
    assert not codes.current(payload.value_order("rank"))
    assert p.search(corpus.queries, 10, flt=rank_below(2_500)).plan.name == "quantized_scan"
    assert p.search(corpus.queries, 10, flt=rank_below(4_000)).plan.name == "index_filtered"
