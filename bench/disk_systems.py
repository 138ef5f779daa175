"""Disk-resident systems under test: Lamina's SPANN index and diskannpy's disk index.

Both keep a small part of the index in memory and read the rest from files at query time, so
beside the `Algorithm` protocol of `lamina.bench.harness` they tell the harness
- `disk_bytes()`: the bytes of their index files on disk;
- `cache_files()`: the files a query reads, which `evict_from_page_cache` drops from the page
  cache before each query of a cold-cache sweep (`<name>-cold` in reports), so that those
  rows measure the disk path and not the page cache.

Memory (`memory_bytes`), as each system accounts for it:
- lamina-spann: `SpannIndex.memory_bytes()`: the head vectors and their faiss index, the list
  directory, the live ids (8 bytes a vector), deltas and tombstones; never the posting file.
- diskannpy: the files its `StaticDiskIndex` loads into RAM (PQ pivots and compressed vectors,
  whose size `search_memory_maximum` sets) plus its node cache (`num_nodes_to_cache` nodes of
  one vector and R neighbour ids each). The growth of this process's resident set while the
  index loads is recorded beside it (`rss_load_bytes` in build_params) as a cross-check.

The index files go into a temporary directory under `workdir` (default: the bench cache
directory, on the same disk as the data), removed by `done()`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from lamina.index.spann import SpannConfig, SpannIndex

#: SPANN's grid: postings read (max_postings) and the query-aware pruning ratio. A tight ratio
#: lets easy queries read fewer lists than hard ones: on MiniLM embeddings (12k heads) 12
#: postings at ratio 1.3 read 8.1 lists a query on average for recall 0.899, where a fixed 8
#: reach 0.885 (16 at 1.3: 9.6 lists, 0.914; a fixed 10: 0.909).
SPANN_QUERY_ARGS: list[dict[str, Any]] = [
    *({"max_postings": p} for p in (2, 4, 8, 12, 16, 24, 32, 48, 64)),
    *({"max_postings": p, "max_dist_ratio": r} for p, r in ((12, 1.3), (16, 1.3))),
    *({"max_postings": p, "max_dist_ratio": r} for p in (32, 64) for r in (2.0, 4.0)),
]
#: diskannpy's grid: the search complexity L (candidate list size), beam width 2 (its default).
DISKANN_QUERY_ARGS: list[dict[str, Any]] = [{"complexity": L} for L in (10, 16, 24, 32, 48, 64, 96, 128, 200)]

#: diskannpy build settings: graph degree R, build complexity L, build RAM (GiB). Modest so that
#: 1M x 128 builds on 2 cores in reasonable time (DiskANN's papers use R=64, L=100+).
DISKANN_BUILD = {"graph_degree": 32, "complexity": 64, "build_memory_maximum": 8.0}
#: The resident-memory budget given to diskannpy, as a fraction of the raw float32 vectors: the
#: issue's SPANN target (20 %); its PQ codes take `PQ_SHARE` of it, its node cache the rest.
MEMORY_BUDGET = 0.20
PQ_SHARE = 0.8


def default_workdir() -> Path:
    from lamina.bench.datasets import default_cache_dir

    return default_cache_dir() / "indexes"


def evict_from_page_cache(paths: Iterable[Path | str]) -> int:
    """Drop the cached pages of each file (posix_fadvise DONTNEED); return the bytes covered.

    Dirty pages are not dropped by the kernel, so each file is fsynced first. Missing files
    are skipped. Raises OSError where posix_fadvise does not exist (not Linux/BSD).
    """
    total = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            total += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return total


def cached_fraction(path: Path | str) -> float:
    """Fraction of a file's pages in the page cache (mincore(2) over a private mapping)."""
    import ctypes
    import mmap

    size = os.path.getsize(path)
    if size == 0:
        return 0.0
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    resident = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY) as mm:
        view = (ctypes.c_char * size).from_buffer(mm)  # ACCESS_COPY is writable: from_buffer accepts it
        try:
            if libc.mincore(ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size), resident) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            del view
    return float(np.frombuffer(resident, dtype=np.uint8).__and__(1).mean())


def _dir_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _batch_threads() -> int:
    return max(1, faiss.omp_get_max_threads())


class SpannSystem:
    """Lamina's `SpannIndex`, built with `SpannIndex.build` into a temporary directory."""

    kind = "spann"

    def __init__(self, metric: str = "l2", config: SpannConfig | None = None, *,
                 workdir: Path | None = None, name: str = "lamina-spann", source: SpannSystem | None = None) -> None:
        """`source`: instead of building, open that system's files with their CRC32C checks off
        (`lamina-spann-unchecked`: what the checks cost, measured on the very same files)."""
        self.metric = metric
        self.name = name
        self.source = source
        self.config = config or SpannConfig()
        self._users = 0  # systems reading this one's files: it stays open until they are done
        self._deferred = False
        if source is not None:
            source._users += 1
        self.workdir = Path(workdir) if workdir is not None else default_workdir()
        self.build_params: dict[str, Any] = {}
        self._index: SpannIndex | None = None
        self._dir: Path | None = None
        self._params: dict[str, Any] = {}
        self._pool: ThreadPoolExecutor | None = None

    def fit(self, X: np.ndarray) -> None:
        if self.source is not None:
            self._index = SpannIndex.load(self.source._require().path, overrides={"verify_reads": False})
            self.build_params = {**self.source.build_params, "verify_reads": False}
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="spann-", dir=self.workdir))
        X = np.ascontiguousarray(X, dtype=np.float32)
        self._index = SpannIndex.build(np.arange(len(X), dtype=np.int64), X, metric=self.metric,
                                       config=self.config, path=self._dir)
        cfg = self.config
        self.build_params = {"heads": self._index.n_heads, "head_ratio": round(self._index.n_heads / len(X), 4),
                             "memory_budget": cfg.memory_budget if cfg.head_ratio is None else None,
                             "replicas": cfg.replicas,
                             "posting_cap": self._index.cap, "dtype": cfg.dtype, "rng_factor": cfg.rng_factor,
                             "use_gpu": bool(cfg.use_gpu and faiss.get_num_gpus() > 0)}

    def set_query_arguments(self, **params: Any) -> None:
        self._params = dict(params)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._require().search(q[None, :], k, params=self._params)[1][0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        """Queries split among `faiss.omp_get_max_threads()` threads (the harness sets it)."""
        index, threads = self._require(), _batch_threads()
        if threads == 1 or len(Q) < 2:
            return index.search(Q, k, params=self._params)[1]
        if self._pool is None or self._pool._max_workers != threads:
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="spann-bench")
        parts = np.array_split(np.arange(len(Q)), threads)

        def run(rows: np.ndarray) -> np.ndarray:
            faiss.omp_set_num_threads(1)  # per thread: the threads are the parallelism
            return index.search(Q[rows], k, params=self._params)[1]

        return np.concatenate(list(self._pool.map(run, parts)))

    def memory_bytes(self) -> int:
        return self._require().memory_bytes()

    def disk_bytes(self) -> int:
        return _dir_bytes(self._require().path)

    def cache_files(self) -> list[Path]:
        return sorted(self._require().path.glob("postings*"))

    def evict(self) -> int:
        """Drop the posting file's pages: out of this process's mapping, then out of the page cache."""
        self._require().release_pages()
        return evict_from_page_cache(self.cache_files())

    def done(self) -> None:
        if self._users:  # a system reading the same files is not done yet: this one goes with it
            self._deferred = True
            return
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if self.source is not None:
            self.source._users -= 1
            if self.source._deferred and not self.source._users:
                self.source.done()
            self.source = None

    def _require(self) -> SpannIndex:
        if self._index is None:
            raise RuntimeError(f"{self.name}: fit() first")
        return self._index


def diskann_available() -> str | None:
    """None when diskannpy imports, else why not (for the skip message)."""
    try:
        import diskannpy  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a binary that does not load
        return f"diskannpy is not importable ({type(exc).__name__}: {exc}); install it with `make bench-peers`"
    return None


class DiskannSystem:
    """diskannpy 0.7.0's SSD index: `build_disk_index` then `StaticDiskIndex`.

    Memory budget: `memory_budget` x the raw float32 vectors, of which `pq_share` goes to
    `search_memory_maximum` (the PQ codes held in RAM) and the rest to the node cache.
    Metric: l2; for ip on unit-norm vectors also l2 (same ranking), else mips.
    """

    kind = "diskann"

    def __init__(self, metric: str = "l2", *, workdir: Path | None = None, name: str = "diskannpy",
                 graph_degree: int = DISKANN_BUILD["graph_degree"], complexity: int = DISKANN_BUILD["complexity"],
                 build_memory_maximum: float = DISKANN_BUILD["build_memory_maximum"],
                 memory_budget: float = MEMORY_BUDGET, pq_share: float = PQ_SHARE,
                 beam_width: int = 2, num_threads: int = 2) -> None:
        reason = diskann_available()
        if reason:
            raise RuntimeError(reason)
        self.metric = metric
        self.name = name
        self.workdir = Path(workdir) if workdir is not None else default_workdir()
        self.graph_degree, self.complexity = graph_degree, complexity
        self.build_memory_maximum = build_memory_maximum
        self.memory_budget, self.pq_share = memory_budget, pq_share
        self.beam_width, self.num_threads = beam_width, num_threads
        self.build_params: dict[str, Any] = {}
        self._index: Any = None
        self._dir: Path | None = None
        self._complexity = 32
        self._memory = 0

    def fit(self, X: np.ndarray) -> None:
        import diskannpy

        X = np.ascontiguousarray(X, dtype=np.float32)
        d = X.shape[1]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="diskann-", dir=self.workdir))
        unit = bool(np.allclose(np.linalg.norm(X[:1000], axis=1), 1.0, atol=1e-3))
        distance = "l2" if self.metric == "l2" or unit else "mips"
        raw = X.nbytes
        pq_gib = self.memory_budget * self.pq_share * raw / 2**30
        diskannpy.build_disk_index(
            data=X, distance_metric=distance, index_directory=str(self._dir), complexity=self.complexity,
            graph_degree=self.graph_degree, search_memory_maximum=pq_gib,
            build_memory_maximum=self.build_memory_maximum, num_threads=_batch_threads(), vector_dtype=np.float32)
        node_bytes = d * 4 + (self.graph_degree + 1) * 4
        cache_nodes = int(self.memory_budget * (1 - self.pq_share) * raw // node_bytes)
        before = _rss_bytes()
        self._index = diskannpy.StaticDiskIndex(
            index_directory=str(self._dir), num_threads=self.num_threads, num_nodes_to_cache=cache_nodes,
            distance_metric=distance, vector_dtype=np.float32, dimensions=d)
        rss = _rss_bytes() - before
        in_ram = sum(p.stat().st_size for p in self._dir.glob("*pq*") if p.is_file())
        self._memory = int(in_ram + cache_nodes * node_bytes)
        self.build_params = {"R": self.graph_degree, "L": self.complexity, "distance": distance,
                             "search_memory_maximum_gib": round(pq_gib, 4), "num_nodes_to_cache": cache_nodes,
                             "beam_width": self.beam_width, "rss_load_bytes": int(rss)}

    def set_query_arguments(self, **params: Any) -> None:
        unknown = set(params) - {"complexity"}
        if unknown:
            raise ValueError(f"{self.name}: unknown query argument(s) {', '.join(sorted(unknown))}")
        self._complexity = int(params.get("complexity", self._complexity))

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        # StaticDiskIndex.search (one query) of diskannpy 0.7.0 returns one id repeated k times
        # with distance 0 here; batch_search of a batch of one on one thread answers correctly
        found = self._require().batch_search(np.ascontiguousarray(q[None, :], dtype=np.float32), k_neighbors=k,
                                             complexity=max(self._complexity, k), num_threads=1,
                                             beam_width=self.beam_width)
        return np.asarray(found[0][0], dtype=np.int64)

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        found = self._require().batch_search(np.ascontiguousarray(Q, dtype=np.float32), k_neighbors=k,
                                             complexity=max(self._complexity, k), num_threads=_batch_threads(),
                                             beam_width=self.beam_width)
        return np.asarray(found[0], dtype=np.int64)

    def memory_bytes(self) -> int:
        self._require()
        return self._memory

    def disk_bytes(self) -> int:
        self._require()
        assert self._dir is not None
        return _dir_bytes(self._dir)

    def cache_files(self) -> list[Path]:
        self._require()
        assert self._dir is not None
        return sorted(self._dir.glob("*disk.index"))

    def done(self) -> None:
        self._index = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _require(self) -> Any:
        if self._index is None:
            raise RuntimeError(f"{self.name}: fit() first")
        return self._index


def disk_systems(kinds: Sequence[str], metric: str, *, spann_config: SpannConfig | None = None,
                 workdir: Path | None = None, skipped: list[dict[str, str]] | None = None,
                 spann_unchecked: bool = False) -> list[Any]:
    """The disk systems named in `kinds` ("spann", "diskann"); an unavailable one is appended
    to `skipped` as {"system", "reason"} instead. `spann_unchecked` adds lamina-spann-unchecked,
    the same files read without their CRC32C checks."""
    systems: list[Any] = []
    for kind in kinds:
        if kind == "spann":
            systems.append(SpannSystem(metric, spann_config, workdir=workdir))
            if spann_unchecked:
                systems.append(SpannSystem(metric, spann_config, workdir=workdir, name="lamina-spann-unchecked",
                                           source=systems[-1]))
        elif kind == "diskann":
            reason = diskann_available()
            if reason is None:
                systems.append(DiskannSystem(metric, workdir=workdir))
            elif skipped is not None:
                skipped.append({"system": "diskannpy", "reason": reason})
    return systems
