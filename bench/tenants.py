"""`lamina bench tenants`: multi-tenant and filtered search, after Curator's protocol.

Curator (Jin et al., 2024, section 6) measures multi-tenant indexes on synthetic data: vectors
from a Gaussian mixture, tenants with Zipfian sizes, each tenant drawing from a few mixture
components of its own, each vector owned by one tenant and shared with a few others. Queries
are drawn from a tenant's own distribution; the ground truth is the exact top-k among the
vectors that tenant can access.

Systems, side by side in one run, all single-threaded (one query at a time, one OpenMP thread):

- `lamina-tenants`: `TenantIndex` (one shared clustering tree, per-tenant sub-trees) behind
  `QueryPlanner`;
- `faiss-ivf-selector`: one shared faiss IVF-Flat, the tenant's ids as an `IDSelectorBitmap`
  (the per-tenant bitmaps are built before timing: the most favourable case for it);
- `faiss-per-tenant`: one faiss index per tenant (flat up to `per_tenant_flat` vectors, IVF-Flat
  above), shared vectors copied into each tenant's index.

Measured: recall@10 (|result ∩ truth| / min(k, tenant size)) and single-query p50/p99 per
tenant-size bucket, memory of each system, and the latency of one insert plus one grant. Then a
metadata-filter selectivity sweep (0.1% .. 50%, a numeric Range filter): `lamina-planner`
(`QueryPlanner` over the same shared IVF, with its exact filter bitmaps and scan codes: brute
force below its threshold, by scan code and exact rescoring above 4,096 matching ids, widening
the IVF above the threshold) against `faiss-ivf-selector` at fixed nprobe. The planner's time
includes evaluating the filter; faiss gets its bitmap precomputed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from lamina.bench.report import make_report, write_report
from lamina.index.filters import Filter, Range
from lamina.index.payload import PayloadIndex
from lamina.index.scan import ClusteredCodes, ScanCodes
from lamina.index.tenants import TenantIndex, TenantIndexConfig, brute_force_topk
from lamina.retrieval.planner import PlannerConfig, QueryPlanner, rows_topk

BUCKET_EDGES: tuple[int, ...] = (1_000, 10_000, 100_000)  # tenant sizes: <1k, 1k-10k, 10k-100k, >=100k
SELECTIVITIES: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5)
FILTER_RANGE = 1_000_000  # the sweep's numeric field is uniform in [0, FILTER_RANGE)
QUERY_ARGS: dict[str, list[dict[str, int]]] = {
    "lamina-tenants": [{"nprobe": 1024}, {"nprobe": 2048}, {"nprobe": 3072}, {"nprobe": 4096}],
    "faiss-ivf-selector": [{"nprobe": 16}, {"nprobe": 64}, {"nprobe": 256}],
    "faiss-per-tenant": [{"nprobe": 4}, {"nprobe": 16}, {"nprobe": 64}],
}
# the planner's variants of the filter sweep: (nprobe_exponent, scan codes, search params beyond
# nprobe 16, the plan it is run for; None: every plan). Scan codes: "scattered" (ScanCodes by
# id, the default), "clustered" (ClusteredCodes in the filtered field's order: the field as
# clustering key), "none". The default first (PlannerConfig); the others where they change
# something: a quantized scan also runs with fewer candidates rescored, as IVF + selector runs
# at several nprobe.
PLANNER_VARIANTS: tuple[tuple[float, str, dict[str, int], str | None], ...] = (
    (1.0, "scattered", {}, None),
    (0.5, "scattered", {}, "index_filtered"),
    (1.0, "none", {}, "quantized_scan"),
    (1.0, "scattered", {"scan_candidates": 128}, "quantized_scan"),
    (1.0, "scattered", {"scan_candidates": 1024}, "quantized_scan"),
    (1.0, "clustered", {}, None),
)
FILTER_NPROBES: tuple[int, ...] = (16, 64, 256, 1024)  # IVF + selector needs wide probes at <= 1%


def _stderr(message: str) -> None:
    print(f"[bench tenants] {message}", file=sys.stderr, flush=True)


@contextmanager
def _one_thread() -> Iterator[None]:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


# --------------------------------------------------------------------------- workload
@dataclass
class Workload:
    """Curator's synthetic multi-tenant data. Ids are row numbers (int64).

    access[t]: the sorted ids tenant t can access (owned and shared); preferred[t]: its mixture
    components; filter_values: the sweep's numeric field, uniform in [0, FILTER_RANGE).
    """

    vectors: np.ndarray
    component: np.ndarray  # (n,) int64: each vector's mixture component
    owner: np.ndarray
    shares: np.ndarray  # (m, 2) int64: (id, tenant) grants beyond the owner
    access: list[np.ndarray]
    centers: np.ndarray
    preferred: np.ndarray
    noise: float
    filter_values: np.ndarray

    @property
    def n(self) -> int:
        return len(self.vectors)

    @property
    def n_tenants(self) -> int:
        return len(self.access)

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        return self.vectors[ids]


def make_workload(n: int, dim: int, n_tenants: int, *, component_size: int = 200, tenant_spread: int = 250,
                  share_fraction: float = 0.1, max_shares: int = 3, center_scale: float = 1.5,
                  noise: float = 1.0, seed: int = 0) -> Workload:
    """Gaussian mixture (one component per `component_size` vectors on average); Zipfian tenant
    sizes (weight 1/rank); tenant t draws its vectors from max(4, expected size / tenant_spread)
    components of its own choosing (so a big tenant spans many topics, and components are
    shared by a few tenants); a `share_fraction` of the vectors shared with 1..`max_shares`
    further tenants, drawn with the same Zipfian weights.

    The components are small on purpose: inside one isotropic 192-d Gaussian every point is
    about equally far from every other, and a component of thousands of points has no
    neighbourhood structure any index could use (real embeddings cluster at many scales).
    """
    if n <= 0 or dim <= 0 or n_tenants <= 0:
        raise ValueError(f"n, dim and tenants must be positive, got {n}, {dim}, {n_tenants}")
    rng = np.random.default_rng(seed)
    components = max(16, n // component_size)
    centers = (rng.standard_normal((components, dim)) * center_scale).astype(np.float32)
    weights = 1.0 / np.arange(1, n_tenants + 1)
    weights /= weights.sum()
    owner = rng.choice(n_tenants, n, p=weights)
    spread = np.maximum(4, (weights * n / tenant_spread).astype(np.int64))  # components per tenant
    preferred = np.full((n_tenants, int(spread.max())), -1, dtype=np.int64)
    for t, count in enumerate(spread.tolist()):  # a loop over tenants
        preferred[t, :count] = rng.choice(components, count, replace=count > components)
    pick = (rng.random(n) * spread[owner]).astype(np.int64)
    component = preferred[owner, pick]
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # blocks bound the float64 temporaries
        stop = min(n, start + 100_000)
        vectors[start:stop] = centers[component[start:stop]] + rng.standard_normal((stop - start, dim)) * noise
    shared_rows = rng.choice(n, int(share_fraction * n), replace=False)
    extra = rng.integers(1, max_shares + 1, len(shared_rows))
    pairs = np.stack([np.repeat(shared_rows, extra), rng.choice(n_tenants, int(extra.sum()), p=weights)], 1)
    pairs = pairs[pairs[:, 1] != owner[pairs[:, 0]]]
    pairs = np.unique(pairs, axis=0).astype(np.int64)
    all_pairs = np.concatenate([np.stack([np.arange(n), owner], 1), pairs])
    order = np.lexsort((all_pairs[:, 0], all_pairs[:, 1]))
    all_pairs = all_pairs[order]
    bounds = np.searchsorted(all_pairs[:, 1], np.arange(n_tenants + 1))
    access = [all_pairs[bounds[t]:bounds[t + 1], 0].astype(np.int64) for t in range(n_tenants)]
    filter_values = rng.integers(0, FILTER_RANGE, n)
    return Workload(vectors, component, owner.astype(np.int64), pairs, access, centers, preferred, noise, filter_values)


def size_bucket(size: int) -> str:
    """The tenant-size bucket label of a tenant with `size` vectors."""
    labels = ("<1k", "1k-10k", "10k-100k", ">=100k")
    return labels[int(np.searchsorted(BUCKET_EDGES, size, side="right"))]


def tenant_queries(workload: Workload, per_bucket: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Queries drawn from tenants' own distributions, `per_bucket` per non-empty size bucket.

    Returns tenants (q,) int64 and queries (q, d) float32.
    """
    rng = np.random.default_rng(seed)
    sizes = np.array([len(a) for a in workload.access])
    labels = np.array([size_bucket(int(s)) if s else "" for s in sizes])
    tenants = []
    for label in ("<1k", "1k-10k", "10k-100k", ">=100k"):
        members = np.flatnonzero(labels == label)
        if len(members):
            tenants.append(rng.choice(members, per_bucket))
    chosen = np.concatenate(tenants)
    spread = (workload.preferred >= 0).sum(1)
    comps = workload.preferred[chosen, (rng.random(len(chosen)) * spread[chosen]).astype(np.int64)]
    dim = workload.vectors.shape[1]
    queries = (workload.centers[comps] + rng.standard_normal((len(chosen), dim)) * workload.noise).astype(np.float32)
    return chosen.astype(np.int64), queries


def tenant_ground_truth(workload: Workload, tenants: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids (q, k) int64 among each query's tenant's accessible vectors (-1 padded)."""
    truth = np.full((len(queries), k), -1, dtype=np.int64)
    for tenant in np.unique(tenants).tolist():  # a loop over tenants, vectorised per tenant
        rows = np.flatnonzero(tenants == tenant)
        ids = workload.access[tenant]
        truth[rows] = brute_force_topk(queries[rows], workload.vectors[ids], ids, k, "l2")[1]
    return truth


def recall_rows(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per row: |found ∩ truth| / |truth| (the truth holds min(k, accessible) ids)."""
    out = np.empty(len(found))
    for i, (f, t) in enumerate(zip(found, truth)):  # a loop over queries, not vectors
        t = t[t >= 0]
        out[i] = len(np.intersect1d(f[f >= 0], t)) / max(len(t), 1)
    return out


# --------------------------------------------------------------------------- systems
def _ivf(vectors: np.ndarray, ids: np.ndarray, nlist: int, seed: int = 1234) -> faiss.IndexIVFFlat:
    """IVF-Flat (L2) over vectors with ids; k-means on at most 64 points a list, 10 iterations."""
    dim = vectors.shape[1]
    kmeans = faiss.Kmeans(dim, nlist, niter=10, seed=seed, max_points_per_centroid=64, verbose=False)
    kmeans.train(vectors)
    quantizer = faiss.IndexFlatL2(dim)
    quantizer.add(kmeans.centroids)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
    index.own_fields = True
    quantizer.this.disown()
    index.is_trained = True
    index.add_with_ids(vectors, ids)
    return index


def _bitmap(ids: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[ids] = True
    return np.packbits(mask, bitorder="little")


class SharedIVF:
    """One faiss IVF-Flat over every vector; restriction by a selector (the `faiss-ivf-selector`
    system, and the approximate index the planner widens in the filter sweep)."""

    def __init__(self, vectors: np.ndarray, nlist: int) -> None:
        self.n = len(vectors)
        self.nlist = nlist
        self.index = _ivf(vectors, np.arange(self.n, dtype=np.int64), nlist)

    def search_bitmap(self, query: np.ndarray, k: int, bitmap: np.ndarray, nprobe: int) -> np.ndarray:
        sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # its length in bytes
        params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        return self.index.search(query, k, params=params)[1]

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The planner's `FilterableIndex`: scores larger-is-better (minus squared L2)."""
        nprobe = int((params or {}).get("nprobe", 16))
        bitmap = None
        if allowed is None:
            sel = None
        elif len(allowed) * 64 > self.n:  # many ids: a bitmap is cheaper to build than a hash set
            bitmap = _bitmap(allowed, self.n)
            sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        else:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        distances, ids = self.index.search(queries, k, params=faiss.SearchParametersIVF(sel=sel, nprobe=nprobe))
        del bitmap  # the selector points into it: keep it alive until here
        return np.where(ids >= 0, -distances, -np.inf).astype(np.float32), ids

    def memory_bytes(self) -> int:
        return int(faiss.serialize_index(self.index).nbytes)


class PerTenant:
    """`faiss-per-tenant`: one index per tenant (flat when small, IVF-Flat with sqrt(size) lists above)."""

    def __init__(self, workload: Workload, flat_up_to: int) -> None:
        self.indexes: list[faiss.Index] = []
        for ids in workload.access:  # a loop over tenants
            vectors = workload.vectors[ids]
            if len(ids) <= flat_up_to:
                index = faiss.IndexIDMap2(faiss.IndexFlatL2(vectors.shape[1]))
                index.add_with_ids(vectors, ids)
            else:
                index = _ivf(vectors, ids, int(np.sqrt(len(ids))))
            self.indexes.append(index)
        self._params: dict[int, faiss.SearchParametersIVF] = {}

    def search(self, query: np.ndarray, k: int, tenant: int, nprobe: int) -> np.ndarray:
        index = self.indexes[tenant]
        if isinstance(index, faiss.IndexIVFFlat):
            params = self._params.get(nprobe)
            if params is None:
                params = self._params[nprobe] = faiss.SearchParametersIVF(nprobe=nprobe)
            return index.search(query, k, params=params)[1]
        return index.search(query, k)[1]

    def memory_bytes(self) -> int:
        return int(sum(faiss.serialize_index(index).nbytes for index in self.indexes))


def build_lamina(workload: Workload, config: TenantIndexConfig | None = None) -> TenantIndex:
    """A TenantIndex over the workload: one bulk add (owners), then one grant per share."""
    index = TenantIndex(workload.vectors.shape[1], "l2", config or TenantIndexConfig(gpu=False))
    index.add(np.arange(workload.n, dtype=np.int64), workload.vectors, [f"t{o}" for o in workload.owner.tolist()])
    if index.depth == 0 and len(index) > index.config.leaf_size:
        index.train()  # below train_size the bulk add leaves a single leaf: build the tree anyway
    for iid, tenant in workload.shares.tolist():  # one call per grant, as the service makes them
        index.grant(iid, f"t{tenant}")
    return index


def _time(call: Callable[[int], np.ndarray], count: int,
          before: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run call(i) for i < count one at a time, each after before(i) (untimed) when given;
    returns the results (stacked), wall-clock latencies and this thread's CPU time per call, in ms.

    Every system runs single-threaded, so the CPU time is its cost without the time the
    thread spent descheduled: on a shared machine the wall clock's tail measures the
    neighbours as much as the system.
    """
    out, lat, cpu = [], np.empty(count), np.empty(count)
    for i in range(count):  # a loop over queries: single-query latency is the measurement
        if before is not None:
            before(i)
        start, start_cpu = time.perf_counter(), time.thread_time()
        out.append(call(i))
        cpu[i] = (time.thread_time() - start_cpu) * 1e3
        lat[i] = (time.perf_counter() - start) * 1e3
    return np.concatenate(out), lat, cpu


def _rows(system: str, params: Mapping[str, Any], found: np.ndarray, truth: np.ndarray,
          timing: tuple[np.ndarray, np.ndarray], buckets: np.ndarray, extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One result row over all queries and one per tenant-size bucket."""
    lat, cpu = timing
    recalls = recall_rows(found, truth)
    complete = (found >= 0).sum(1) == (truth >= 0).sum(1)
    rows = []
    for label in ["all"] + [b for b in ("<1k", "1k-10k", "10k-100k", ">=100k") if (buckets == b).any()]:
        sel = np.ones(len(lat), bool) if label == "all" else buckets == label
        rows.append({"system": system, "params": dict(params), "bucket": label,
                     "recall@10": float(recalls[sel].mean()), "min_recall": float(recalls[sel].min()),
                     "complete": float(complete[sel].mean()),
                     "qps": float(1e3 / lat[sel].mean()), "p50_ms": float(np.percentile(lat[sel], 50)),
                     "p99_ms": float(np.percentile(lat[sel], 99)),
                     "cpu_p50_ms": float(np.percentile(cpu[sel], 50)), "cpu_p99_ms": float(np.percentile(cpu[sel], 99)),
                     "queries": int(sel.sum()), **extra})
    return rows


# --------------------------------------------------------------------------- phases
def _tenant_phase(workload: Workload, lamina: TenantIndex, shared: SharedIVF, per_tenant: PerTenant,
                  k: int, per_bucket: int, memory: dict[str, int], build_s: dict[str, float],
                  selector_bytes: int, say: Callable[[str], None] | None) -> list[dict[str, Any]]:
    tenants, queries = tenant_queries(workload, per_bucket)
    truth = tenant_ground_truth(workload, tenants, queries, k)
    sizes = np.array([len(workload.access[t]) for t in tenants.tolist()])
    buckets = np.array([size_bucket(int(s)) for s in sizes])
    names = [f"t{t}" for t in tenants.tolist()]
    planner = QueryPlanner(PayloadIndex({}), None, workload.vectors_of, tenant_index=lamina, metric="l2")
    bitmaps = {t: _bitmap(workload.access[t], workload.n) for t in np.unique(tenants).tolist()}
    q = queries[:, None, :]
    results = []
    for params in QUERY_ARGS["lamina-tenants"]:
        planner.search(q[0], k, tenant=names[0], params=params)  # warm the kernels
        found, *timing = _time(lambda i, p=params: planner.search(q[i], k, tenant=names[i], params=p).ids, len(q))
        results += _rows("lamina-tenants", params, found, truth, timing, buckets,
                         {"memory_bytes": memory["lamina-tenants"], "build_s": build_s["lamina-tenants"]})
    for params in QUERY_ARGS["faiss-ivf-selector"]:
        found, *timing = _time(lambda i, p=params: shared.search_bitmap(q[i], k, bitmaps[int(tenants[i])], p["nprobe"]),
                           len(q))
        results += _rows("faiss-ivf-selector", params, found, truth, timing, buckets,
                         {"memory_bytes": memory["faiss-ivf-selector"], "build_s": build_s["faiss-ivf-selector"],
                          "selector_bytes": selector_bytes, "nlist": shared.nlist})
    for params in QUERY_ARGS["faiss-per-tenant"]:
        found, *timing = _time(lambda i, p=params: per_tenant.search(q[i], k, int(tenants[i]), p["nprobe"]), len(q))
        results += _rows("faiss-per-tenant", params, found, truth, timing, buckets,
                         {"memory_bytes": memory["faiss-per-tenant"], "build_s": build_s["faiss-per-tenant"]})
    if say:
        say(f"tenant queries: {len(q)} over {len(bitmaps)} tenants")
    return results


def _insert_phase(workload: Workload, lamina: TenantIndex, shared: SharedIVF, per_tenant: PerTenant,
                  count: int) -> list[dict[str, Any]]:
    """Latency of one insert plus one grant (of the new vector to a second tenant), per system."""
    rng = np.random.default_rng(7)
    owners = rng.integers(0, workload.n_tenants, count)
    others = (owners + 1 + rng.integers(0, workload.n_tenants - 1, count)) % workload.n_tenants
    rows = workload.vectors[rng.integers(0, workload.n, count)] + rng.standard_normal(
        (count, workload.vectors.shape[1])).astype(np.float32) * 0.1
    first = workload.n + 10
    out = []

    def lamina_op(i: int) -> np.ndarray:
        lamina.insert(first + i, rows[i], f"t{owners[i]}")
        lamina.grant(first + i, f"t{others[i]}")
        return np.zeros((1, 1))

    bitmap_a = np.zeros((first + count) // 8 + 1, dtype=np.uint8)  # two tenants' bitmaps
    bitmap_b = np.zeros_like(bitmap_a)

    def ivf_op(i: int) -> np.ndarray:
        iid = first + i
        shared.index.add_with_ids(rows[i:i + 1], np.array([iid], dtype=np.int64))
        bitmap_a[iid >> 3] |= 1 << (iid & 7)
        bitmap_b[iid >> 3] |= 1 << (iid & 7)
        return np.zeros((1, 1))

    def per_tenant_op(i: int) -> np.ndarray:
        ids = np.array([first + i], dtype=np.int64)
        per_tenant.indexes[owners[i]].add_with_ids(rows[i:i + 1], ids)
        per_tenant.indexes[others[i]].add_with_ids(rows[i:i + 1], ids)
        return np.zeros((1, 1))

    for system, op in (("lamina-tenants", lamina_op), ("faiss-ivf-selector", ivf_op),
                       ("faiss-per-tenant", per_tenant_op)):
        _, lat, cpu = _time(op, count)
        lat, cpu = lat * 1e3, cpu * 1e3  # µs
        out.append({"system": system, "params": {}, "bucket": "insert+grant",
                    "insert_grant_p50_us": float(np.percentile(lat, 50)),
                    "insert_grant_p99_us": float(np.percentile(lat, 99)),
                    "insert_grant_mean_us": float(lat.mean()),
                    "insert_grant_cpu_p50_us": float(np.percentile(cpu, 50)),
                    "insert_grant_cpu_p99_us": float(np.percentile(cpu, 99)), "queries": count})
    return out


def _search_after_write_phase(workload: Workload, lamina: TenantIndex, shared: SharedIVF, k: int, count: int,
                              first: int) -> list[dict[str, Any]]:
    """Latency of a tenant's search right after a write to that tenant: insert a vector into
    tenant t (owners drawn in proportion to tenant size, as write traffic lands), then search t
    with it. A static benchmark never sees what keeping per-tenant structures current costs;
    this does. Only the search is timed. faiss-ivf-selector updates the tenant's bitmap."""
    rng = np.random.default_rng(11)
    sizes = np.array([len(a) for a in workload.access], dtype=np.float64)
    owners = rng.choice(workload.n_tenants, count, p=sizes / sizes.sum())
    rows = workload.vectors[rng.integers(0, workload.n, count)] + rng.standard_normal(
        (count, workload.vectors.shape[1])).astype(np.float32) * 0.1
    params = {"nprobe": lamina.config.nprobe}
    nprobe_ivf = QUERY_ARGS["faiss-ivf-selector"][0]["nprobe"]
    bitmaps = {t: _bitmap(workload.access[t], first + count) for t in np.unique(owners).tolist()}
    out = []

    def lamina_write(i: int) -> None:
        lamina.insert(first + i, rows[i], f"t{owners[i]}")

    def lamina_search(i: int) -> np.ndarray:
        return lamina.search(rows[i], k, f"t{owners[i]}", params=params)[1]

    def ivf_write(i: int) -> None:
        iid = first + count + i
        shared.index.add_with_ids(rows[i:i + 1], np.array([iid], dtype=np.int64))
        bitmap = bitmaps[int(owners[i])]
        if iid >> 3 >= len(bitmap):
            bitmap = bitmaps[int(owners[i])] = np.concatenate([bitmap, np.zeros(len(bitmap), np.uint8)])
        bitmap[iid >> 3] |= 1 << (iid & 7)

    def ivf_search(i: int) -> np.ndarray:
        return shared.search_bitmap(rows[i:i + 1], k, bitmaps[int(owners[i])], nprobe_ivf)

    for system, write, search, system_params in (
            ("lamina-tenants", lamina_write, lamina_search, params),
            ("faiss-ivf-selector", ivf_write, ivf_search, {"nprobe": nprobe_ivf})):
        _, lat, cpu = _time(search, count, before=write)  # each search follows its own write
        out.append({"system": system, "params": dict(system_params), "bucket": "search after write",
                    "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                    "cpu_p50_ms": float(np.percentile(cpu, 50)), "cpu_p99_ms": float(np.percentile(cpu, 99)),
                    "queries": count})
    return out


def _filter_phase(workload: Workload, shared: SharedIVF, k: int, n_queries: int, selectivities: Sequence[float],
                  threshold: int, memory: dict[str, int], say: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """The selectivity sweep: planner (exact bitmaps; brute force, scan codes or widened IVF) vs
    IVF + selector."""
    rng = np.random.default_rng(5)
    start = time.perf_counter()
    payload = PayloadIndex.build({"value": "numeric"}, np.arange(workload.n, dtype=np.int64),
                                 [{"value": v} for v in workload.filter_values.tolist()])
    if say:
        say(f"payload index: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    scan = ScanCodes(workload.vectors.shape[1], "l2")
    scan.train(workload.vectors)
    scan.add(np.arange(workload.n, dtype=np.int64), workload.vectors)
    memory["lamina-planner"] = memory["faiss-ivf-selector"] + payload.memory_bytes() + scan.memory_bytes()
    if say:
        say(f"scan codes: {scan.n_sub} bytes a vector ({time.perf_counter() - start:.1f} s)")
    start = time.perf_counter()
    clustered = ClusteredCodes("value", workload.vectors.shape[1], "l2")
    clustered.build(*payload.value_order("value"), workload.vectors_of)
    memory["lamina-planner-clustered"] = memory["lamina-planner"] + clustered.memory_bytes()
    if say:
        say(f"clustered codes: {clustered.memory_bytes() / 2**20:.0f} MiB ({time.perf_counter() - start:.1f} s)")
    sqnorms = np.einsum("ij,ij->i", workload.vectors, workload.vectors)

    def exact_topk(queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rows_topk(queries, workload.vectors, ids.astype(np.int32), ids, k, "l2", sqnorms)

    planners = [(for_plan, {"nprobe": 16, **extra}, {"nprobe_exponent": exponent, "scan_codes": codes},
                 QueryPlanner(payload, shared, workload.vectors_of, metric="l2", knob="nprobe", knob_max=shared.nlist,
                              exact_topk=exact_topk, scan=scan if codes != "none" else None,
                              clustered=clustered if codes == "clustered" else None,
                              config=PlannerConfig(brute_force_threshold=threshold, nprobe_exponent=exponent)))
                for exponent, codes, extra, for_plan in PLANNER_VARIANTS]
    comps = workload.component[rng.integers(0, workload.n, n_queries)]  # populated components, as data is
    queries = (workload.centers[comps] + rng.standard_normal((n_queries, workload.vectors.shape[1]))
               * workload.noise).astype(np.float32)
    q = queries[:, None, :]
    results = []
    for s in selectivities:
        flt = Filter(must=(Range("value", lt=s * FILTER_RANGE),))
        allowed = np.flatnonzero(workload.filter_values < s * FILTER_RANGE)
        truth = brute_force_topk(queries, workload.vectors[allowed], allowed, k, "l2")[1]
        base = {"selectivity": s, "matching": len(allowed), "bucket": f"filter {s:.1%}"}
        default_plan = planners[0][3].explain(flt, k=k).name
        for for_plan, call, variant, planner in planners:
            if for_plan is not None and for_plan != default_plan:
                continue  # the variant changes nothing for this plan
            plan = planner.explain(flt, k=k)
            planner.search(q[0], k, flt=flt, params=call)
            found, *timing = _time(lambda i, f=flt, p=planner, c=call: p.search(q[i], k, flt=f, params=c).ids, len(q))
            params = {**call, "threshold": threshold, **variant}
            used = memory["lamina-planner-clustered" if variant["scan_codes"] == "clustered" else "lamina-planner"]
            results += [{**r, **base, "plan": plan.name, "memory_bytes": used}
                        for r in _rows("lamina-planner", params, found, truth, timing, np.full(len(q), "all"), {})[:1]]
        bitmap = _bitmap(allowed, workload.n)
        for nprobe in FILTER_NPROBES:
            found, *timing = _time(lambda i, p=nprobe, b=bitmap: shared.search_bitmap(q[i], k, b, p), len(q))
            results += [{**r, **base, "memory_bytes": memory["faiss-ivf-selector"]}
                        for r in _rows("faiss-ivf-selector", {"nprobe": nprobe}, found, truth, timing,
                                       np.full(len(q), "all"), {})[:1]]
        if say:
            say(f"filter {s:.1%}: {len(allowed)} matching, plan {default_plan}")
    return results


# --------------------------------------------------------------------------- entry point
def run_tenants(
    n: int,
    dim: int,
    n_tenants: int,
    *,
    k: int = 10,
    per_bucket: int = 100,
    filter_queries: int = 100,
    selectivities: Sequence[float] = SELECTIVITIES,
    inserts: int = 1_000,
    nlist: int | None = None,
    per_tenant_flat: int = 20_000,
    threshold: int = 20_000,
    config: TenantIndexConfig | None = None,
    seed: int = 0,
    out_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the three systems on a Curator workload and measure them; returns the report
    (benchmark "tenants"; one row per system, params and tenant-size bucket, then the
    insert+grant rows and the filter sweep). With `out_dir`, also writes the JSON there."""
    say = _stderr if progress else None
    with _one_thread():
        start = time.perf_counter()
        workload = make_workload(n, dim, n_tenants, seed=seed)
        if say:
            sizes = np.array([len(a) for a in workload.access])
            say(f"workload: {n} x {dim}, {n_tenants} tenants (sizes {sizes.min()}..{sizes.max()}), "
                f"{len(workload.shares)} shares ({time.perf_counter() - start:.1f} s)")
        build_s, memory = {}, {}

        def timed_build(system: str, make: Callable[[], Any]) -> Any:
            start = time.perf_counter()
            built = make()
            build_s[system] = time.perf_counter() - start
            memory[system] = built.memory_bytes()
            return built

        lamina = timed_build("lamina-tenants", lambda: build_lamina(workload, config))
        if say:
            say(f"lamina-tenants: {lamina.n_nodes} nodes, depth {lamina.depth} ({build_s['lamina-tenants']:.1f} s)")
        lists = nlist or max(16, int(np.sqrt(n)))
        shared = timed_build("faiss-ivf-selector", lambda: SharedIVF(workload.vectors, lists))
        selector_bytes = n_tenants * ((n + 7) // 8)  # one bitmap per tenant, kept beside the IVF
        if say:
            say(f"faiss-ivf-selector: nlist {shared.nlist} ({build_s['faiss-ivf-selector']:.1f} s)")
        per_tenant = timed_build("faiss-per-tenant", lambda: PerTenant(workload, per_tenant_flat))
        if say:
            say(f"faiss-per-tenant: {build_s['faiss-per-tenant']:.1f} s")
        results = _tenant_phase(workload, lamina, shared, per_tenant, k, per_bucket, memory, build_s,
                                selector_bytes, say)
        results += _filter_phase(workload, shared, k, filter_queries, selectivities, threshold, memory, say)
        results += _insert_phase(workload, lamina, shared, per_tenant, inserts)
        results += _search_after_write_phase(workload, lamina, shared, k, max(inserts // 4, 1),
                                             workload.n + 10 + inserts + 10)
    report = make_report("tenants", f"curator-{n}-{dim}-{n_tenants}", results, meta={
        "n": n, "dim": dim, "tenants": n_tenants, "k": k, "metric": "l2", "shares": len(workload.shares),
        "per_bucket": per_bucket, "filter_queries": filter_queries, "threshold": threshold, "threads": 1,
        "memory_bytes": memory, "build_s": build_s, "tenant_config": (config or TenantIndexConfig()).to_dict(),
    })
    if out_dir is not None:
        path = write_report(report, out_dir)
        if say:
            say(f"wrote {path}")
    return report


# --------------------------------------------------------------------------- summary
def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The report as short markdown tables: tenant queries, filter sweep, search after a write,
    insert+grant."""
    rows = report["results"]
    mib = 2 ** 20
    lines = ["| system | params | bucket | recall@10 | min recall | p50 ms | p99 ms | CPU p50 / p99 ms | memory MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("selectivity") is None and r["bucket"] not in ("insert+grant", "search after write"):
            params = " ".join(f"{k}={v}" for k, v in r["params"].items())
            lines.append(f"| {r['system']} | {params} | {r['bucket']} | {r['recall@10']:.3f} | "
                         f"{r['min_recall']:.2f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                         f"{r['cpu_p50_ms']:.3f} / {r['cpu_p99_ms']:.3f} | {r['memory_bytes'] / mib:.1f} |")
    lines += ["", "| selectivity | matching | system | params | plan | recall@10 | complete | p50 ms | p99 ms | CPU p50 ms |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("selectivity") is not None:
            params = " ".join(f"{k}={v}" for k, v in r["params"].items())
            lines.append(f"| {r['selectivity']:.1%} | {r['matching']} | {r['system']} | {params} | "
                         f"{r.get('plan') or '-'} | {r['recall@10']:.3f} | {r['complete']:.2f} | "
                         f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['cpu_p50_ms']:.3f} |")
    lines += ["", "| system | params | search after a write p50 ms | p99 ms | CPU p50 / p99 ms |",
              "|---|---|---|---|---|"]
    for r in rows:
        if r["bucket"] == "search after write":
            params = " ".join(f"{k}={v}" for k, v in r["params"].items())
            lines.append(f"| {r['system']} | {params} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                         f"{r['cpu_p50_ms']:.3f} / {r['cpu_p99_ms']:.3f} |")
    lines += ["", "| system | insert+grant p50 µs | p99 µs | mean µs | CPU p50 / p99 µs |", "|---|---|---|---|---|"]
    for r in rows:
        if r["bucket"] == "insert+grant":
            lines.append(f"| {r['system']} | {r['insert_grant_p50_us']:.0f} | {r['insert_grant_p99_us']:.0f} | "
                         f"{r['insert_grant_mean_us']:.0f} | {r['insert_grant_cpu_p50_us']:.0f} / "
                         f"{r['insert_grant_cpu_p99_us']:.0f} |")
    return lines
