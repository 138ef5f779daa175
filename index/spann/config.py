"""Build and search parameters of the SPANN index, validated at construction.

Names and defaults follow SPTAG's SPANN options where one exists (`RNGFactor`, `ReplicaCount`,
`InternalResultNum`, `MaxDistRatio`, `SearchInternalResultNum`); the JSON form is stored in the
index manifest so that a loaded index searches the way it was built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from lamina.index.errors import InvalidArgument

PAGE_SIZE = 4096
DTYPES: tuple[str, ...] = ("float32", "float16", "int8")
IO_MODES: tuple[str, ...] = ("mmap", "pread")
SEARCH_PARAMS: tuple[str, ...] = ("max_postings", "max_dist_ratio", "min_postings", "ef_search")
# what may differ from the build config when an index is loaded (see SpannConfig.with_runtime)
RUNTIME_PARAMS: tuple[str, ...] = (*SEARCH_PARAMS, "io", "io_threads", "coalesce_bytes", "reassign_neighbors",
                                   "build_size", "use_gpu", "verify_reads", "verified_cache_mb")


@dataclass(frozen=True)
class SpannConfig:
    """How a SPANN index is built and searched by default.

    Build
      memory_budget: resident memory the index may cost, as a fraction of the raw float32
        vectors (default 0.2). Unless head_ratio is set, the head count is derived from it with
        the dimension and the head index kind taken into account (`heads.budget_heads`), at most
        16 % of the vectors (SPANN keeps 10-16 %).
      head_ratio: fraction of the vectors chosen as heads, overriding memory_budget (None: derive).
      branching: k-means fan-out of each level of the hierarchical clustering (SPTAG BKT k).
      kmeans_iters / balance_iters: plain k-means iterations (faiss), then size-balanced ones.
      candidates: nearest heads considered per vector when placing it (SPTAG InternalResultNum).
      replicas: at most this many postings per vector (SPTAG ReplicaCount).
      rng_factor: RNG rule strictness; a head is skipped when rng_factor * d(head, accepted head)
        < d(vector, head). Smaller skips more (fewer, more diverse replicas), larger keeps more.
      posting_pages / posting_cap: a posting holds at most `posting_cap` entries; 0 derives it
        from `posting_pages` 4 KiB pages of entries (id + encoded vector).
      dtype: how posting vectors are stored: float32, float16, or int8 with a per-dimension scale.
      flat_heads_max: up to this many heads the head index is exact (flat). A single query's
        flat scan costs about as much as reading its postings from 4k heads on (~0.3 ms over
        12k heads of 128-d).
      scan_heads_max: above flat_heads_max and up to this many heads, the head index scans 4-bit
        PQ codes of every head and rescores a shortlist exactly; above it, an HNSW graph over
        8-bit codes (see `heads.py`). 0 (default): 16,384.
      hnsw_m / ef_construction: HNSW parameters of the head graph.
      reassign_neighbors: postings next to a split one whose vectors are checked for reassignment
        (SPFresh's ReassignK).
      build_size: an index filled through `add` answers exactly until it holds this many vectors,
        then builds its heads and posting file.
    Search (each may be overridden per query through `params`)
      max_postings: heads looked up, hence postings read at most (SPTAG SearchInternalResultNum).
      max_dist_ratio: skip a posting whose head is farther than this times the nearest head
        (squared L2; for inner product the same ratio over the gap `|q| * max|head| - <q, head>`,
        which equals half the squared L2 distance when vectors are unit length).
      min_postings: the nearest postings read whatever the ratio says, so that a query sitting
        on a head (distance 0) still reads its neighbourhood.
      ef_search: HNSW beam of the head search when the heads are a graph (raised to the number
        of heads asked for). 32: on MiniLM embeddings 64 gained 0.003-0.005 recall for 10-15 %
        of the QPS, less than four more postings buy.
    I/O
      io: "mmap" (default) maps the posting file read-only; a query announces its lists' ranges
        to the kernel (madvise WILLNEED, so that uncached pages are read in parallel) and the
        search kernel scores them where they lie, without a copy or a read call. "pread" reads
        them into a buffer first, as below: the classic path, for storage where mapping a
        large file is unwelcome.
      io_threads (pread): 1 (default) announces every range of a query to the kernel first
        (posix_fadvise WILLNEED, so the device serves them in parallel) and then preads them in
        order: no thread hand-off, which costs more than a pread served from the page cache.
        More than 1 issues the preads from a pool of that many threads instead (for storage
        that ignores readahead hints).
      coalesce_bytes: neighbouring lists closer than this in the file are read (or announced)
        as one range (heads are numbered in clustering order, so nearby heads tend to sit
        nearby in the file).
      verify_reads: check every posting list a read hands out against its CRC32C (default). A
        list that fails is never scored: the index rebuilds it from its vector source (a
        collection's store) or the query fails with DataLoss. Off only to measure its cost.
      verified_cache_mb: lists a search reads are copied into process memory and checked there
        once; later searches score the checked copy without checking it again (verified.py says
        why that is sound). At most this many MiB of lists (256), resident memory on top of the
        figures above; once full, searches that miss it check their lists in place. Size it to
        the lists queries keep reading. 0 checks every list in place on every read.
    """

    memory_budget: float = 0.2
    head_ratio: float | None = None
    branching: int = 32
    kmeans_iters: int = 10
    balance_iters: int = 6
    candidates: int = 64
    replicas: int = 8
    rng_factor: float = 1.0
    posting_pages: int = 8
    posting_cap: int = 0
    dtype: str = "float32"
    flat_heads_max: int = 4096
    scan_heads_max: int = 0
    hnsw_m: int = 32
    ef_construction: int = 80
    reassign_neighbors: int = 8
    build_size: int = 10_000
    max_postings: int = 64
    max_dist_ratio: float = 10_000.0
    min_postings: int = 4
    ef_search: int = 32
    io: str = "mmap"
    io_threads: int = 1
    coalesce_bytes: int = 16384
    use_gpu: bool = True
    seed: int = 1234
    verify_reads: bool = True
    verified_cache_mb: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.memory_budget, bool) or not isinstance(self.memory_budget, (int, float)) \
                or not 0.0 < self.memory_budget <= 1.0:
            raise InvalidArgument(f"memory_budget must be in (0, 1], got {self.memory_budget!r}")
        if self.head_ratio is not None and not 0.0 < self.head_ratio <= 1.0:
            raise InvalidArgument(f"head_ratio must be in (0, 1], got {self.head_ratio!r}")
        if self.dtype not in DTYPES:
            raise InvalidArgument(f"unknown posting dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.io not in IO_MODES:
            raise InvalidArgument(f"unknown SPANN io mode {self.io!r}; expected one of {', '.join(IO_MODES)}")
        positive = ("branching", "kmeans_iters", "candidates", "replicas", "posting_pages", "flat_heads_max",
                    "hnsw_m", "ef_construction", "build_size", "max_postings", "ef_search", "io_threads")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidArgument(f"SPANN parameter {name} must be a positive integer, got {value!r}")
        for name in ("balance_iters", "posting_cap", "reassign_neighbors", "min_postings", "coalesce_bytes",
                     "scan_heads_max", "verified_cache_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"SPANN parameter {name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.verify_reads, bool):
            raise InvalidArgument(f"SPANN parameter verify_reads must be true or false, got {self.verify_reads!r}")
        if self.branching < 2:
            raise InvalidArgument(f"branching must be at least 2, got {self.branching}")
        for name in ("rng_factor", "max_dist_ratio"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise InvalidArgument(f"SPANN parameter {name} must be a positive number, got {value!r}")

    def entry_bytes(self, dim: int) -> int:
        """Bytes of one posting entry: an int64 id and the encoded vector."""
        return 8 + dim * (4 if self.dtype == "float32" else 2 if self.dtype == "float16" else 1)

    def cap(self, dim: int) -> int:
        """Entries a posting may hold before it is truncated (build) or split (updates)."""
        if self.posting_cap:
            return self.posting_cap
        return max(2, self.posting_pages * PAGE_SIZE // self.entry_bytes(dim))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_runtime(self, overrides: Mapping[str, Any] | None) -> SpannConfig:
        """This config with search and I/O settings replaced; the ones that shaped the files are fixed."""
        if not overrides:
            return self
        fixed = set(overrides) - set(RUNTIME_PARAMS)
        if fixed:
            raise InvalidArgument(f"cannot change {', '.join(sorted(fixed))} of a built index; "
                                  f"only {', '.join(RUNTIME_PARAMS)}")
        return SpannConfig.from_dict({**self.to_dict(), **overrides})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpannConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidArgument(f"unknown SPANN parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass(frozen=True)
class SearchParams:
    """The per-query knobs, resolved against the index defaults."""

    max_postings: int
    max_dist_ratio: float
    min_postings: int
    ef_search: int

    @classmethod
    def resolve(cls, config: SpannConfig, params: Mapping[str, Any] | None) -> SearchParams:
        params = dict(params or {})
        unknown = set(params) - set(SEARCH_PARAMS)
        if unknown:
            raise InvalidArgument(
                f"unknown search parameter(s): {', '.join(sorted(unknown))}; SPANN takes {', '.join(SEARCH_PARAMS)}"
            )
        ratio = params.get("max_dist_ratio", config.max_dist_ratio)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating, np.integer)) \
                or not math.isfinite(ratio) or ratio <= 0:
            raise InvalidArgument(f"search parameter max_dist_ratio must be a positive number, got {ratio!r}")
        return cls(
            max_postings=_integer("max_postings", params.get("max_postings", config.max_postings), 1),
            max_dist_ratio=float(ratio),
            min_postings=_integer("min_postings", params.get("min_postings", config.min_postings), 0),
            ef_search=_integer("ef_search", params.get("ef_search", config.ef_search), 1),
        )


def _integer(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidArgument(f"search parameter {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
