"""The query planner of filtered and multi-tenant search: which index answers, and how.

A query may carry a metadata `Filter` and a tenant. The planner first learns the exact set of
ids the query may return, the *matching* ids, from the bitmaps: `PayloadIndex.evaluate` for the
filter, `TenantIndex.tenant_ids` for the tenant (their intersection for both). Its length is
the exact cardinality, and it chooses a plan (after Qdrant's and Weaviate's planners, with
Curator's tenant tree as the tenant path):

- `empty`: nothing matches; padded rows, no search.
- `brute_force`: at most `brute_force_threshold` ids match (default 20,000). The vectors of
  the matching ids are scored exactly: cheaper than any traversal that must skip the others,
  and exact.
- `quantized_scan`: when the collection keeps scan codes (`lamina.index.scan`), brute force over
  more than `exact_threshold` matching ids (default 4,096), and a filter without tenant up to
  `scan_threshold` ids (default 250,000): every matching id is scored from its PQ code and the
  best `scan_candidates` (default 256) are rescored exactly. Scattered rows are read at memory
  latency, so reading 256 of them instead of all is most of the gain; the codes are 1/16 of
  the vectors. Approximate (recall@10 >= 0.99 at 0.5-10% of 1M vectors in bench/RESULTS.md),
  and still complete.
- `clustered_scan`: `quantized_scan` for a filter that is one range over the clustering key,
  when the planner has codes laid out in that field's order (`lamina.index.scan.ClusteredCodes`)
  and they are current: the range is a contiguous run of codes, found by binary search (the
  filter is not evaluated) and ranked by faiss's fast-scan kernel; the best `scan_candidates`
  are rescored exactly. Runs of up to `clustered_threshold` codes (default 500,000) are scanned,
  shorter ones than the exact threshold scored exactly. Any other filter, or codes left behind by
  a write, plans as above.
- `tenant_tree`: a tenant query (filtered or not) above the threshold goes to the tenant's
  sub-tree of the shared clustering tree, with the filter's ids as its allow-list; the walk
  widens until it has enough allowed candidates or has seen the whole sub-tree, so it is
  complete. A tenant-only query always takes the tree: it scores a tenant with at most
  `nprobe` vectors exhaustively (exact), and beats brute force above that.
- `index_filtered`: a filter-only query above the threshold searches the approximate index
  with the matching ids as its selector. When a row comes back with fewer than min(k, matching)
  results, the search is repeated for those rows only, widening the index's knob (`nprobe`
  for IVF, `ef_search` for HNSW; k itself for an index without one) by `widen_factor` up to
  `max_widenings` times; rows still short are answered by brute force. So it always returns
  min(k, matching) results.
- `index`: neither filter nor tenant; the approximate index as it is.

Every search returns scores (nq, k) float32 (larger is better: inner product or minus the
squared L2 distance), ids (nq, k) int64 padded with -inf / -1, and a `Plan`: the record the
service renders for `explain` (plan name, cardinality, widening steps).

The planner is pure: it holds references to the indexes and a function giving the vectors of
ids, and keeps no state between queries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, NamedTuple, Protocol

import numpy as np
from lamina.index.errors import InvalidArgument
from lamina.index.filters import Filter, Range
from lamina.index.payload import MetadataLookup, PayloadIndex, range_interval
from lamina.index.scan import ClusteredCodes
from lamina.index.tenants import TenantIndex
from lamina.index.topk import exact_topk as brute_force_topk
from lamina.index.topk import padded as _padded
from lamina.index.topk import rows_topk
from lamina.index.types import METRICS

PLANS: tuple[str, ...] = ("empty", "brute_force", "quantized_scan", "clustered_scan", "tenant_tree", "index_filtered",
                          "index")
VectorsOf = Callable[[np.ndarray], np.ndarray]
ExactTopK = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]

_BRUTE_FORCE_BLOCK = 1 << 24  # scores a brute-force block may hold (64 MiB of float32)
_KERNEL_QUERIES = 8  # up to this many queries, brute force runs the numba kernel (no BLAS threads)


class CodeScan(Protocol):
    """What the planner needs of scan codes (`lamina.index.scan.ScanCodes` has it)."""

    def candidates(self, query: np.ndarray, ids: np.ndarray, m: int) -> np.ndarray: ...


class FilterableIndex(Protocol):
    """What the planner needs of an approximate index (`lamina.index.base.VectorIndex` has it)."""

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class PlannerConfig:
    """brute_force_threshold: at most this many matching ids are answered by brute force.
    exact_threshold / scan_candidates: brute force over more matching ids than exact_threshold
    scores their scan codes first and rescores the best max(scan_candidates, k) exactly (when the
    planner has scan codes; else it scores them all exactly). scan_threshold: with scan codes, a
    filter (without tenant) of up to this many ids is scanned rather than searched through the
    approximate index with a selector. clustered_threshold: the same bound for a run of clustered
    codes, which fast-scan ranks far faster: a run of 500k codes of 1M x 192 in ~3-4 ms (recall@10
    1.000 after rescoring), as fast as IVF + selector at nprobe 16 and 3x faster than the widened IVF.
    widen_factor / max_widenings: how an `index_filtered` search that came back short is
    repeated (knob times the factor, at most that many times) before brute force finishes it.
    scale_nprobe: an IVF's nprobe starts at nprobe * (1 / selectivity) ** nprobe_exponent
    (capped by knob_max): a filter uncorrelated with position leaves ~selectivity of each list,
    and recall would fall with it. Exponent 1 (the default) scans as many matching vectors as an
    unfiltered search does. Less can be enough, because the k nearest matching vectors are about
    the k / selectivity nearest of all and one IVF list holds many of those: 0.5 halves the
    latency at 5-50% selectivity on the 1M x 192 filter sweep with recall >= 0.977 (bench/RESULTS.md),
    but where few matching vectors are scanned (a base nprobe of 1 of 64 lists at 4%) recall drops
    to ~0.89. (HNSW's ef_search is scaled by `DenseIndex` itself.)
    """

    brute_force_threshold: int = 20_000
    exact_threshold: int = 4096
    scan_candidates: int = 256
    scan_threshold: int = 250_000
    clustered_threshold: int = 500_000
    widen_factor: int = 4
    max_widenings: int = 4
    scale_nprobe: bool = True
    nprobe_exponent: float = 1.0

    def __post_init__(self) -> None:
        for name in ("brute_force_threshold", "max_widenings", "exact_threshold", "scan_candidates",
                     "scan_threshold", "clustered_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"planner parameter {name} must be a non-negative integer, got {value!r}")
        if isinstance(self.widen_factor, bool) or not isinstance(self.widen_factor, int) or self.widen_factor < 2:
            raise InvalidArgument(f"planner parameter widen_factor must be an integer >= 2, got {self.widen_factor!r}")
        if not 0 < self.nprobe_exponent <= 1:
            raise InvalidArgument(f"planner parameter nprobe_exponent must be in (0, 1], got {self.nprobe_exponent!r}")


@dataclass(frozen=True)
class WideningStep:
    """One call of the approximate index: the rows asked, with which k and params, and how many
    of those rows came back complete (min(k, matching) results)."""

    rows: int
    k: int
    params: dict[str, int]
    complete: int


@dataclass
class Plan:
    """What ran, for `explain`.

    name: one of PLANS. cardinality: the exact number of ids the query may return (tenant ∩
    filter); None for an unrestricted query. tenant / filtered: the restriction asked for.
    k: as asked; results: min(k, cardinality) rows' worth of results, each row holding that many.
    steps: the approximate-index calls of `index_filtered` (one for `index`). fallback_rows:
    rows that `index_filtered` finished by brute force after the widenings.
    """

    name: str
    cardinality: int | None
    k: int
    results: int | None
    tenant: str | None = None
    filtered: bool = False
    steps: list[WideningStep] = field(default_factory=list)
    fallback_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PlannedSearch(NamedTuple):
    scores: np.ndarray
    ids: np.ndarray
    plan: Plan


def index_knob(index: Any) -> tuple[str | None, int]:
    """The widening knob of an index and its default: ("nprobe", n) for a trained IVF
    `DenseIndex`, ("ef_search", n) for an HNSW one, ("max_postings", n) for a `SpannIndex`,
    (None, 0) otherwise (flat is exact, and an index the planner does not know widens through k)."""
    config = getattr(index, "config", None)
    if hasattr(config, "max_postings"):
        return "max_postings", int(config.max_postings)
    if getattr(index, "trained_ivf", False) and config is not None:
        return "nprobe", int(config.nprobe)
    if getattr(config, "kind", None) == "hnsw":
        return "ef_search", int(config.ef_search)
    return None, 0


class QueryPlanner:
    """Plans and runs filtered and tenant searches over one collection's indexes.

    payload: the collection's payload index (the filter's bitmaps). index: the approximate
    index (anything with `search(queries, k, allowed=, params=)`). vectors_of(ids (n,) int64)
    -> (n, d) float32: the vectors of ids, for brute force. tenant_index: needed for tenant
    queries. metric: "ip" or "l2", the index's. knob / knob_max: the index's widening knob (by
    default `index_knob(index)`; knob_max caps it, e.g. at an IVF's nlist). fallback: fetches
    metadata by id for filter conditions on fields without a payload index (slow path).
    exact_topk(queries (nq, d), ids (n,) int64, k) -> (scores, ids) (nq, k): replaces the
    gather-and-score brute force, e.g. with a kernel reading the rows in place. scan: scan codes
    of the vectors (the `quantized_scan` plan); None scores every matching id exactly.
    clustered: codes in the order of one numeric field (the `clustered_scan` plan).
    """

    def __init__(
        self,
        payload: PayloadIndex,
        index: FilterableIndex | None,
        vectors_of: VectorsOf,
        *,
        tenant_index: TenantIndex | None = None,
        metric: str = "ip",
        config: PlannerConfig | None = None,
        knob: str | None = None,
        knob_max: int | None = None,
        fallback: MetadataLookup | None = None,
        exact_topk: ExactTopK | None = None,
        scan: CodeScan | None = None,
        clustered: ClusteredCodes | None = None,
    ) -> None:
        if metric not in METRICS:
            raise InvalidArgument(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        self.payload = payload
        self.index = index
        self.vectors_of = vectors_of
        self.tenant_index = tenant_index
        self.metric = metric
        self.config = config or PlannerConfig()
        self.knob, self._knob_default = (knob, 0) if knob is not None else index_knob(index)
        self.knob_max = knob_max
        self.fallback = fallback
        self.exact_topk = exact_topk
        self.scan = scan
        self.clustered = clustered

    # ------------------------------------------------------------------ planning
    def matching(self, flt: Filter | None, tenant: str | None) -> np.ndarray | None:
        """The ids a query may return, sorted unique int64; None when it is unrestricted."""
        restricted = flt is not None and not flt.is_empty
        if tenant is None:
            return self.payload.evaluate(flt, fallback=self.fallback) if restricted else None
        tenant_ids = self._tenants().tenant_ids(tenant)
        if not restricted or not len(tenant_ids):
            return tenant_ids
        return self.payload.evaluate(flt, tenant_ids, fallback=self.fallback)

    def _restriction(self, flt: Filter | None, tenant: str | None) -> tuple[np.ndarray | None, int | None]:
        """(matching ids or None, cardinality or None): a tenant-only query needs only the
        tenant's count, which costs nothing, so its ids are not materialised."""
        if tenant is not None and (flt is None or flt.is_empty):
            return None, self._tenants().tenant_size(tenant)
        ids = self.matching(flt, tenant)
        return ids, None if ids is None else len(ids)

    def clustered_span(self, flt: Filter | None, tenant: str | None) -> tuple[int, int] | None:
        """The run [start, stop) of the clustered codes a filter-only query reads, when its
        filter is one range over the clustering key and the codes are current; else None."""
        codes = self.clustered
        if codes is None or tenant is not None or flt is None or flt.should or flt.must_not or len(flt.must) != 1:
            return None
        condition = flt.must[0]
        if not isinstance(condition, Range) or condition.key != codes.field:
            return None
        if not codes.current(self.payload.value_order(codes.field)):
            return None
        return codes.span(*range_interval(condition))

    def choose(self, cardinality: int | None, *, tenant: str | None, filtered: bool,
               scan: bool | None = None) -> str:
        """The plan for a query restricted to `cardinality` ids (None: unrestricted). scan:
        whether codes can be scanned (default: whether the planner has scan codes)."""
        scan = self.scan is not None if scan is None else scan
        if cardinality is None:
            return "index"
        if cardinality == 0:
            return "empty"
        scannable = cardinality <= self.config.brute_force_threshold
        if tenant is not None:  # the tree walks a tenant's own clusters: it beats scanning them all
            return self._brute_force_plan(cardinality) if filtered and scannable else "tenant_tree"
        if scannable or self.index is None or (scan and cardinality <= self.config.scan_threshold):
            return self._brute_force_plan(cardinality, scan)
        return "index_filtered"

    def _brute_force_plan(self, cardinality: int, scan: bool | None = None) -> str:
        scan = self.scan is not None if scan is None else scan
        if scan and cardinality > max(self.config.exact_threshold, self.config.scan_candidates):
            return "quantized_scan"
        return "brute_force"

    def explain(self, flt: Filter | None = None, tenant: str | None = None, k: int = 10) -> Plan:
        """The plan a search would run, without running it."""
        filtered = flt is not None and not flt.is_empty
        span = self.clustered_span(flt, tenant)
        if span is not None:
            return self._clustered_plan(span, k)
        _, cardinality = self._restriction(flt, tenant)
        name = self.choose(cardinality, tenant=tenant, filtered=filtered)
        return Plan(name, cardinality, k, None if cardinality is None else min(k, cardinality), tenant, filtered)

    def _clustered_plan(self, span: tuple[int, int], k: int) -> Plan:
        """A run of clustered codes: brute force when short, scanned up to clustered_threshold,
        else the index with its ids as selector."""
        cardinality = span[1] - span[0]
        name = self.choose(cardinality, tenant=None, filtered=True, scan=True)
        if name in ("quantized_scan", "index_filtered") and cardinality <= self.config.clustered_threshold:
            name = "clustered_scan"
        return Plan(name, cardinality, k, min(k, cardinality), None, True)

    # ------------------------------------------------------------------ search
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        flt: Filter | None = None,
        tenant: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> PlannedSearch:
        """Top-k of each query (nq, d) or (d,) among the ids `flt` and `tenant` allow.

        Every row holds min(k, matching) results (all of them when nothing restricts the query
        and the index is complete). params: the index's search knobs (nprobe, ef_search) as
        the caller would pass them; `tenant_tree` takes {"nprobe"} (candidates scored);
        "scan_candidates" (positive int) overrides the config's for a `quantized_scan` and is
        ignored by the other plans.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2:
            raise InvalidArgument(f"queries must be (nq, d), got shape {queries.shape}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise InvalidArgument(f"k must be a positive integer, got {k!r}")
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise InvalidArgument(f"tenant must be a non-empty string, got {tenant!r}")
        k = int(k)
        params, scan_candidates = self._split_params(params)
        filtered = flt is not None and not flt.is_empty
        span = self.clustered_span(flt, tenant)
        if span is not None:
            return self._search_span(queries, k, span, params, scan_candidates)
        ids, cardinality = self._restriction(flt, tenant)
        name = self.choose(cardinality, tenant=tenant, filtered=filtered)
        plan = Plan(name, cardinality, k, None if cardinality is None else min(k, cardinality), tenant, filtered)
        if name == "empty":
            return PlannedSearch(*_padded(len(queries), k), plan)
        if name in ("brute_force", "quantized_scan", "index_filtered"):
            return PlannedSearch(*self._within(queries, k, ids, params, plan, scan_candidates), plan)
        if name == "tenant_tree":
            scores, found = self._tenants().search(queries, k, tenant, allowed=ids if filtered else None,
                                                   params=params)
            return PlannedSearch(scores, found, plan)
        if self.index is None:
            raise InvalidArgument("an unfiltered search needs an approximate index")
        scores, found = self.index.search(queries, k, params=params)
        plan.steps.append(WideningStep(len(queries), k, dict(params), len(queries)))
        return PlannedSearch(scores, found, plan)

    def search_span(self, queries: np.ndarray, k: int, span: tuple[int, int], *,
                    params: Mapping[str, Any] | None = None) -> PlannedSearch:
        """Top-k of each query (nq, d) within a run [start, stop) of the clustered codes that the
        caller found with `clustered_span` (so that a request looks the run up once), planned as
        `search` plans that filter."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, np.shape(queries)[-1])
        params, scan_candidates = self._split_params(params)
        return self._search_span(queries, k, span, params, scan_candidates)

    def _search_span(self, queries: np.ndarray, k: int, span: tuple[int, int], params: dict[str, Any],
                     scan_candidates: int) -> PlannedSearch:
        """A filter that is a run of the clustered codes: scanned there, or, when the run is
        small enough for exact brute force or too large for any scan, its ids as any filter's."""
        assert self.clustered is not None
        plan = self._clustered_plan(span, k)
        if plan.name == "empty":
            return PlannedSearch(*_padded(len(queries), k), plan)
        if plan.name == "clustered_scan":
            m = max(scan_candidates, k)
            pick = partial(self.clustered.candidates, start=span[0], stop=span[1], m=m)
            return PlannedSearch(*self._rescored(queries, k, pick), plan)
        ids = np.sort(self.clustered.ids[span[0]:span[1]])
        return PlannedSearch(*self._within(queries, k, ids, params, plan, scan_candidates), plan)

    def search_within(self, queries: np.ndarray, k: int, ids: np.ndarray, *,
                      params: Mapping[str, Any] | None = None) -> PlannedSearch:
        """Top-k of each query (nq, d) among `ids`, a restriction the caller computed (sorted
        unique int64, e.g. a filter's ids intersected with a tenant's): `empty`, `brute_force`,
        `quantized_scan` or `index_filtered` by its cardinality, exactly as `search` plans a filter."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, np.shape(queries)[-1])
        ids = np.asarray(ids, dtype=np.int64)
        params, scan_candidates = self._split_params(params)
        name = self.choose(len(ids), tenant=None, filtered=True)
        plan = Plan(name, len(ids), k, min(k, len(ids)), None, True)
        if name == "empty":
            return PlannedSearch(*_padded(len(queries), k), plan)
        return PlannedSearch(*self._within(queries, k, ids, params, plan, scan_candidates), plan)

    def _split_params(self, params: Mapping[str, Any] | None) -> tuple[dict[str, Any], int]:
        """(the index's params, scan candidates, the config's unless the call sets them)."""
        params, scan_candidates = split_planner_params(params)
        return params, self.config.scan_candidates if scan_candidates is None else scan_candidates

    def _within(self, queries: np.ndarray, k: int, ids: np.ndarray, params: dict[str, Any],
                plan: Plan, scan_candidates: int) -> tuple[np.ndarray, np.ndarray]:
        if plan.name == "brute_force":
            return self._brute_force(queries, k, ids)
        if plan.name == "quantized_scan":
            return self._quantized_scan(queries, k, ids, scan_candidates)
        return self._index_filtered(queries, k, ids, params, plan)

    def _tenants(self) -> TenantIndex:
        if self.tenant_index is None:
            raise InvalidArgument("a tenant query needs a tenant index, and this collection has none")
        return self.tenant_index

    def _brute_force(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among `ids`: a numba kernel for a few queries (single-threaded, as a
        request should be), BLAS in query blocks that keep the score matrix bounded for many."""
        if self.exact_topk is not None:
            return self.exact_topk(queries, ids, k)
        vectors = np.ascontiguousarray(self.vectors_of(ids), dtype=np.float32)
        if vectors.shape != (len(ids), queries.shape[1]):
            raise InvalidArgument(f"vectors_of returned shape {vectors.shape}, expected ({len(ids)}, {queries.shape[1]})")
        if len(queries) <= _KERNEL_QUERIES:
            return rows_topk(queries, vectors, np.arange(len(ids), dtype=np.int32), ids, k, self.metric)
        if len(queries) * len(ids) <= _BRUTE_FORCE_BLOCK:
            return brute_force_topk(queries, vectors, ids, k, self.metric)
        block = max(1, _BRUTE_FORCE_BLOCK // len(ids))
        parts = [brute_force_topk(queries[i:i + block], vectors, ids, k, self.metric)
                 for i in range(0, len(queries), block)]  # a loop over query blocks
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _quantized_scan(self, queries: np.ndarray, k: int, ids: np.ndarray,
                        scan_candidates: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query's best max(scan_candidates, k) of `ids` by scan code, rescored exactly."""
        assert self.scan is not None
        return self._rescored(queries, k, partial(self.scan.candidates, ids=ids, m=max(scan_candidates, k)))

    def _rescored(self, queries: np.ndarray, k: int,
                  pick: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of each query among the candidate ids pick(query) chooses for it."""
        scores, found = _padded(len(queries), k)
        for i, query in enumerate(queries):  # a loop over queries: each has its own candidates
            row_scores, row_ids = self._brute_force(query[None], k, pick(query))
            scores[i], found[i] = row_scores[0], row_ids[0]
        return scores, found

    def _index_filtered(self, queries: np.ndarray, k: int, ids: np.ndarray, params: dict[str, Any],
                        plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        """The approximate index with `ids` as selector, widened for the rows that came back short."""
        assert self.index is not None
        need = min(k, len(ids))
        scores, found = _padded(len(queries), k)
        rows = np.arange(len(queries))
        ask_k = k
        knob_value = int(params.get(self.knob, self._knob_default)) if self.knob else 0
        universe = len(self.payload)
        if self.knob == "nprobe" and self.config.scale_nprobe and universe > len(ids):
            knob_value = int(np.ceil(knob_value * (universe / len(ids)) ** self.config.nprobe_exponent))
            if self.knob_max is not None:
                knob_value = min(knob_value, self.knob_max)
        for step in range(self.config.max_widenings + 1):
            call = dict(params)
            if self.knob:
                call[self.knob] = knob_value
            got_scores, got_ids = self.index.search(queries[rows], ask_k, allowed=ids, params=call)
            complete = (got_ids >= 0).sum(1) >= need
            done = rows[complete]
            scores[done] = got_scores[complete, :k]
            found[done] = got_ids[complete, :k]
            plan.steps.append(WideningStep(len(rows), ask_k, call, int(complete.sum())))
            rows = rows[~complete]
            if not len(rows) or step == self.config.max_widenings:
                break
            if self.knob:
                if self.knob_max is not None and knob_value >= self.knob_max:
                    break
                knob_value *= self.config.widen_factor
                if self.knob_max is not None:
                    knob_value = min(knob_value, self.knob_max)
            else:  # a post-filtering index needs k beyond |ids|: the others take places too
                ask_k *= self.config.widen_factor
        if len(rows):
            plan.fallback_rows = len(rows)
            scores[rows], found[rows] = self._brute_force(queries[rows], k, ids)
        return scores, found


def split_planner_params(params: Mapping[str, Any] | None) -> tuple[dict[str, Any], int | None]:
    """(the index's search params, the call's scan_candidates or None): the planner's own knob
    taken out of a call's params and checked, so that no index sees a knob it does not know."""
    params = dict(params or {})
    scan_candidates = params.pop("scan_candidates", None)
    if scan_candidates is None:
        return params, None
    if isinstance(scan_candidates, bool) or not isinstance(scan_candidates, (int, np.integer)) or scan_candidates <= 0:
        raise InvalidArgument(f"search parameter scan_candidates must be a positive integer, got {scan_candidates!r}")
    return params, int(scan_candidates)
