"""The ANN sweep: systems under test, their parameter grids, and the measuring loop.

Modelled on ann-benchmarks (`ann_benchmarks/algorithms/base/module.py`): a system is built
once with `fit`, then searched with each set of query arguments of its grid; every point
records one-query-at-a-time latency (one OpenMP thread, as ann-benchmarks does), batched
throughput (`batch_threads` threads), recall against exact ground truth, memory and build time.

Lamina's dense index (`lamina-flat|ivf|hnsw`) runs beside the raw FAISS index it wraps
(`faiss-flat|ivf|hnsw`, same build parameters), so the wrapper's cost shows in the same run.
New index families plug in by implementing `Algorithm` and adding a grid to `QUERY_ARGS`.

Disk-resident systems (`lamina-spann`, `diskannpy`; `lamina.bench.disk_systems`) also report
their index files' size (`disk_bytes()`), and name the files a query reads (`cache_files()`):
with `cold=True` each of them is swept a second time as `<name>-cold`, with those files
evicted from the page cache (posix_fadvise DONTNEED; a system that maps its files defines
`evict()` to unmap their pages first, since the kernel keeps mapped pages) before every
timed query and before the batch, so that those rows measure reads from the device. The
cold sweeps of all disk systems run side by side, interleaved by chunks of queries (`run_sweep`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import faiss
import numpy as np
from lamina.bench.datasets import VectorDataset
from lamina.bench.disk_systems import (
    DISKANN_QUERY_ARGS,
    SPANN_QUERY_ARGS,
    disk_systems,
    evict_from_page_cache,
)
from lamina.bench.groundtruth import distances_of, exact_knn, recall_per_query
from lamina.index.dense import DenseIndex, auto_nlist, faiss_metric
from lamina.index.types import INDEX_KINDS, IndexConfig

#: Query-argument grids per index kind, as ann-benchmarks' per-algorithm YAML: every
#: system of a kind is swept over the same points, so lamina and faiss line up.
QUERY_ARGS: dict[str, list[dict[str, int]]] = {
    "flat": [{}],
    "ivf": [{"nprobe": p} for p in (1, 2, 4, 8, 16, 32, 64, 128, 256)],
    "hnsw": [{"ef_search": ef} for ef in (16, 32, 64, 128, 256, 512)],
    "spann": SPANN_QUERY_ARGS,
    "diskann": DISKANN_QUERY_ARGS,
}
#: What `make_systems` accepts: the dense kinds (each beside its faiss peer) and the disk systems.
DISK_KINDS: tuple[str, ...] = ("spann", "diskann")
BENCH_KINDS: tuple[str, ...] = (*INDEX_KINDS, *DISK_KINDS)

WARMUP_QUERIES = 10


@runtime_checkable
class Algorithm(Protocol):
    """A system under test (ann-benchmarks' `BaseANN`).

    name: the label in reports ("lamina-hnsw"); kind: which grid of `QUERY_ARGS` it sweeps;
    build_params: what `fit` built with (filled by `fit`, reported beside the results).
    """

    name: str
    kind: str
    build_params: dict[str, Any]

    def fit(self, X: np.ndarray) -> None:
        """Index X (n, d) float32; the row number is the id."""

    def set_query_arguments(self, **params: Any) -> None:
        """Set the search-time parameters of the following queries (e.g. nprobe, ef_search)."""

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        """Ids (k,) int64 of the k nearest rows to q (d,) float32, nearest first; -1 pads."""

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        """Ids (nq, k) int64 for queries Q (nq, d) float32 in one call."""

    def memory_bytes(self) -> int:
        """Bytes held by the index (its serialized size)."""

    def done(self) -> None:
        """Release the index."""


System = Algorithm  # the name ARCHITECTURE.md uses for "anything we benchmark"


class LaminaDense:
    """Lamina's `DenseIndex` (what a `Collection` searches), built and queried directly."""

    def __init__(self, kind: str, metric: str = "l2", config: IndexConfig | None = None) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {kind!r}; expected one of {', '.join(INDEX_KINDS)}")
        self.kind = kind
        self.metric = metric
        self.name = f"lamina-{kind}"
        self.config = replace(config or IndexConfig(), kind=kind)
        self.build_params: dict[str, Any] = {}
        self._index: DenseIndex | None = None
        self._params: dict[str, Any] = {}

    def fit(self, X: np.ndarray) -> None:
        X = np.ascontiguousarray(X, dtype=np.float32)
        config = self.config
        if self.kind == "ivf":
            # fix nlist here so the faiss peer can be given the same one
            config = replace(config, nlist=config.nlist or auto_nlist(len(X)))
            self.build_params = {"nlist": config.nlist}
        elif self.kind == "hnsw":
            self.build_params = {"M": config.hnsw_m, "ef_construction": config.ef_construction}
        # train_size = n: IVF trains on the whole set at once instead of staying an exact buffer
        self._index = DenseIndex(X.shape[1], self.metric, config, train_size=max(1, len(X)))
        self._index.add(np.arange(len(X), dtype=np.int64), X)

    def set_query_arguments(self, **params: Any) -> None:
        self._params = dict(params)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._require().search(q, k, params=self._params)[1][0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self._require().search(Q, k, params=self._params)[1]

    def memory_bytes(self) -> int:
        return self._require().memory_bytes()

    def done(self) -> None:
        self._index = None

    def _require(self) -> DenseIndex:
        if self._index is None:
            raise RuntimeError(f"{self.name}: fit() first")
        return self._index


class FaissPeer:
    """The raw FAISS index of the same kind, no id map, no parameter objects: the baseline.

    flat: IndexFlat; ivf: IndexIVFFlat (trained by faiss's own k-means, 10 iterations, where
    Lamina runs 20, spherical for ip); hnsw: IndexHNSWFlat. Build parameters (nlist, M,
    efConstruction) default to Lamina's `IndexConfig`, so the two differ only in the wrapper
    and, for IVF, in the training.
    """

    def __init__(self, kind: str, metric: str = "l2", *, nlist: int = 0,
                 hnsw_m: int = IndexConfig.hnsw_m, ef_construction: int = IndexConfig.ef_construction) -> None:
        if kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {kind!r}; expected one of {', '.join(INDEX_KINDS)}")
        self.kind = kind
        self.metric = metric
        self.name = f"faiss-{kind}"
        self.nlist = nlist
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.build_params: dict[str, Any] = {}
        self._index: faiss.Index | None = None
        self._quantizer: faiss.Index | None = None  # IndexIVF does not own it: keep it alive

    def fit(self, X: np.ndarray) -> None:
        X = np.ascontiguousarray(X, dtype=np.float32)
        d, metric = X.shape[1], faiss_metric(self.metric)
        if self.kind == "flat":
            index = faiss.IndexFlat(d, metric)
        elif self.kind == "ivf":
            nlist = self.nlist or auto_nlist(len(X))
            self._quantizer = faiss.IndexFlat(d, metric)
            index = faiss.IndexIVFFlat(self._quantizer, d, nlist, metric)
            index.train(X)
            self.build_params = {"nlist": nlist}
        else:
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, metric)
            index.hnsw.efConstruction = self.ef_construction
            self.build_params = {"M": self.hnsw_m, "ef_construction": self.ef_construction}
        index.add(X)
        self._index = index

    def set_query_arguments(self, **params: Any) -> None:
        index = self._require()
        for name, value in params.items():
            if name == "nprobe" and self.kind == "ivf":
                index.nprobe = int(value)
            elif name == "ef_search" and self.kind == "hnsw":
                index.hnsw.efSearch = int(value)
            else:
                raise ValueError(f"{self.name}: unknown query argument {name!r}")

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._require().search(np.ascontiguousarray(q, dtype=np.float32)[None, :], k)[1][0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self._require().search(np.ascontiguousarray(Q, dtype=np.float32), k)[1]

    def memory_bytes(self) -> int:
        return int(faiss.serialize_index(self._require()).nbytes)

    def done(self) -> None:
        self._index = self._quantizer = None

    def _require(self) -> faiss.Index:
        if self._index is None:
            raise RuntimeError(f"{self.name}: fit() first")
        return self._index


def make_systems(indexes: Sequence[str], metric: str, *, peers: bool = True,
                 config: IndexConfig | None = None, lamina_dense: bool = True,
                 spann_config: Any = None, workdir: Any = None,
                 skipped: list[dict[str, str]] | None = None) -> list[Algorithm]:
    """For each kind in `indexes`, in that order: lamina-<kind> (unless not `lamina_dense`) and
    faiss-<kind> (when `peers`) for the dense kinds; lamina-spann (built with `spann_config`)
    and diskannpy for "spann" and "diskann", their files in a temporary directory under
    `workdir`. A system that cannot run here (diskannpy not installed) is left out and
    recorded in `skipped` as {"system", "reason"}."""
    unknown = [kind for kind in indexes if kind not in BENCH_KINDS]
    if unknown:
        raise ValueError(f"unknown index kind(s) {', '.join(unknown)}; expected a subset of {', '.join(BENCH_KINDS)}")
    config = config or IndexConfig()
    systems: list[Algorithm] = []
    for kind in dict.fromkeys(indexes):  # de-duplicated, order kept
        if kind in DISK_KINDS:
            systems.extend(disk_systems([kind], metric, spann_config=spann_config, workdir=workdir, skipped=skipped))
            continue
        if lamina_dense or not peers:
            systems.append(LaminaDense(kind, metric, config))
        if peers:
            systems.append(FaissPeer(kind, metric, nlist=config.nlist, hnsw_m=config.hnsw_m,
                                     ef_construction=config.ef_construction))
    return systems


def _applicable(grid: Sequence[Mapping[str, Any]], system: Algorithm) -> list[dict[str, Any]]:
    """The grid points that mean something for this build: nprobe above nlist repeats nprobe=nlist."""
    nlist = system.build_params.get("nlist")
    points = [dict(args) for args in grid if nlist is None or args.get("nprobe", 0) <= nlist]
    if nlist is not None and not any(p.get("nprobe") == nlist for p in points) \
            and any(args.get("nprobe", 0) > nlist for args in grid):
        points.append({"nprobe": nlist})  # keep the exhaustive end of the curve
    return points or [{}]


def _time_single(system: Algorithm, queries: np.ndarray, k: int,
                 evict: Callable[[], object] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One query at a time: (ids (nq, k) int64, latencies (nq,) seconds).

    With `evict` (cold cache), no warm-up, and `evict()` runs before each query, untimed."""
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    latencies = np.empty(len(queries), dtype=np.float64)
    for i in range(0 if evict else min(WARMUP_QUERIES, len(queries))):  # page in the index, warm the caches
        system.query(queries[i], k)
    clock = time.perf_counter
    for i, q in enumerate(queries):
        if evict is not None:
            evict()
        start = clock()
        found = system.query(q, k)
        latencies[i] = clock() - start
        ids[i, :len(found)] = found[:k]
    return ids, latencies


def run_sweep(
    dataset: VectorDataset,
    systems: Sequence[Algorithm],
    k: int = 10,
    batch_threads: int = 2,
    *,
    query_args: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    ground_truth: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
    cold: bool = False,
) -> list[dict[str, Any]]:
    """Build each system on `dataset.base` and measure it at every point of its grid.

    Returns one dict per (system, query arguments) with the report keys: system, params,
    recall@10 (None when k < 10), recall@k (when k != 10), qps (single query, 1 thread),
    p50_ms, p99_ms, qps_batch (`batch_threads` threads), memory_bytes, build_s, build_params,
    k, queries; disk systems add disk_bytes, and with `cold` also rows of `<name>-cold` (see
    the module docstring). `ground_truth` is exact (distances, ids) of shape (nq, >=k) as `exact_knn`
    returns; computed when not given. FAISS's thread count is restored afterwards.

    Cold rows are measured after every system's warm rows, all disk systems side by side: the
    queries go in chunks of `COLD_CHUNK`, and each chunk is run through every cold point of every
    system before the next. A shared virtual disk drifts by tens of percent over minutes; measured
    one system after the other, that drift lands on one system's rows and not the other's.
    """
    say = progress or (lambda message: None)
    grids = QUERY_ARGS if query_args is None else query_args
    base, queries = dataset.base, dataset.queries
    if ground_truth is None:
        say(f"ground truth: exact top-{k} of {len(queries)} queries over {len(base)} vectors")
        ground_truth = exact_knn(base, queries, k, dataset.metric)
    measure = _Measure(dataset, ground_truth, k, batch_threads, say)
    rows_of: dict[int, list[dict[str, Any]]] = {}
    cold_runs: list[_ColdRun] = []
    threads = faiss.omp_get_max_threads()
    try:
        for number, system in enumerate(systems):
            faiss.omp_set_num_threads(threads)  # build as fast as the machine allows
            start = time.perf_counter()
            system.fit(base)
            build_s = time.perf_counter() - start
            memory = system.memory_bytes()
            built_with = " ".join(f"{k}={v}" for k, v in system.build_params.items())
            say(f"{system.name}: built in {build_s:.2f} s, {memory / 2**20:.1f} MiB {built_with}".rstrip())
            files = system.cache_files() if hasattr(system, "cache_files") else []
            built = _Built(system, build_s, int(memory),
                           int(system.disk_bytes()) if hasattr(system, "disk_bytes") else None)
            points = _applicable(grids.get(system.kind, [{}]), system)
            rows_of[number] = []
            for args in points:
                system.set_query_arguments(**args)
                faiss.omp_set_num_threads(1)
                ids, latencies = _time_single(system, queries, k)
                batch_s = measure.batch(system, None)
                rows_of[number].append(measure.row(built, system.name, args, ids, latencies, batch_s))
            if cold and files:
                evict = getattr(system, "evict", None) or (lambda files=files: evict_from_page_cache(files))
                cold_runs.append(_ColdRun(number, built, evict, points, len(queries), k))
            else:
                system.done()
        if cold_runs:
            _sweep_cold(cold_runs, queries, k, measure, rows_of)
    finally:
        faiss.omp_set_num_threads(threads)
        for run in cold_runs:
            run.built.system.done()
    return [row for number in sorted(rows_of) for row in rows_of[number]]


#: Queries a cold chunk holds: small enough that every system's points see the same stretch of
#: the device's behaviour, large enough that switching query arguments costs nothing.
COLD_CHUNK = 25


@dataclass
class _Built:
    system: Algorithm
    build_s: float
    memory: int
    disk: int | None


@dataclass
class _ColdRun:
    """A disk system's cold sweep in progress: per point, the ids and latencies so far."""

    number: int
    built: _Built
    evict: Callable[[], object]
    points: list[dict[str, Any]]
    nq: int
    k: int

    def __post_init__(self) -> None:
        self.ids = [np.full((self.nq, self.k), -1, dtype=np.int64) for _ in self.points]
        self.latencies = [np.empty(self.nq, dtype=np.float64) for _ in self.points]


def _sweep_cold(runs: list[_ColdRun], queries: np.ndarray, k: int, measure: _Measure,
                rows_of: dict[int, list[dict[str, Any]]]) -> None:
    """Every cold point of every run, interleaved by chunks of queries (see `run_sweep`);
    then each point's batch, the runs taking turns; rows go after each system's warm rows."""
    for chunk, first in enumerate(range(0, len(queries), COLD_CHUNK)):
        rows = slice(first, first + COLD_CHUNK)
        order = runs if chunk % 2 == 0 else runs[::-1]  # neither system always goes first
        for run in order:
            system = run.built.system
            for point, args in enumerate(run.points):
                system.set_query_arguments(**args)
                faiss.omp_set_num_threads(1)
                run.ids[point][rows], run.latencies[point][rows] = _time_single(system, queries[rows], k, run.evict)
    batch_s: dict[tuple[int, int], float] = {}
    for point in range(max(len(run.points) for run in runs)):
        for run in runs:
            if point < len(run.points):
                run.built.system.set_query_arguments(**run.points[point])
                batch_s[run.number, point] = measure.batch(run.built.system, run.evict)
    for run in runs:
        name = f"{run.built.system.name}-cold"
        for point, args in enumerate(run.points):
            rows_of[run.number].append(measure.row(run.built, name, args, run.ids[point], run.latencies[point],
                                                   batch_s[run.number, point]))


@dataclass
class _Measure:
    """What every row shares: the data, its ground truth and how rows are reported."""

    dataset: VectorDataset
    ground_truth: tuple[np.ndarray, np.ndarray]
    k: int
    batch_threads: int
    say: Callable[[str], None]

    def batch(self, system: Algorithm, evict: Callable[[], object] | None) -> float:
        """Seconds for the whole query set as one batch on `batch_threads` threads (evicted first if cold)."""
        faiss.omp_set_num_threads(self.batch_threads)
        if evict is not None:
            evict()
        start = time.perf_counter()
        system.batch_query(self.dataset.queries, self.k)
        return time.perf_counter() - start

    def row(self, built: _Built, name: str, args: Mapping[str, Any], ids: np.ndarray, latencies: np.ndarray,
            batch_s: float) -> dict[str, Any]:
        k, (true_dists, true_ids) = self.k, self.ground_truth
        base, queries, metric = self.dataset.base, self.dataset.queries, self.dataset.metric
        found_dists = distances_of(base, queries, ids, metric)
        row: dict[str, Any] = {
            "system": name,
            "params": dict(args),
            "recall@10": (float(recall_per_query(ids, true_ids, 10, true_dists, found_dists).mean())
                          if k >= 10 else None),
            "qps": len(queries) / float(latencies.sum()),
            "p50_ms": float(np.percentile(latencies, 50) * 1e3),
            "p99_ms": float(np.percentile(latencies, 99) * 1e3),
            "memory_bytes": built.memory,
            "build_s": built.build_s,
            "qps_batch": len(queries) / batch_s,
            "build_params": dict(built.system.build_params),
            "k": k,
            "queries": len(queries),
        }
        if built.disk is not None:
            row["disk_bytes"] = built.disk
        if k != 10:
            row[f"recall@{k}"] = float(recall_per_query(ids, true_ids, k, true_dists, found_dists).mean())
        shown = "recall@10" if k >= 10 else f"recall@{k}"
        label = " ".join([name, *(f"{key}={value}" for key, value in args.items())])
        self.say(f"{label}: {shown}={row[shown]:.4f} qps={row['qps']:.0f} "
                 f"p50={row['p50_ms']:.3f} ms qps_batch={row['qps_batch']:.0f}")
        return row
