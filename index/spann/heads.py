"""The heads of a SPANN index, in memory: their vectors, ids and a faiss index over the live ones.

Head numbers are stable for the life of a posting file: a head retired by a split keeps its
number (its vector and list are simply no longer used) and new heads get new numbers, so the
on-disk list directory never has to be renumbered between compactions. The faiss index maps
head numbers through `IndexIDMap`, and is one of three kinds by the number of heads:

- flat (exact), up to `flat_max` heads;
- scan: 4-bit PQ codes of every head (`IndexPQFastScan`, one sub-quantiser per 4 dimensions,
  48 bytes a head at 384-d) scanned in SIMD registers 32 heads at a time, up to `scan_max`
  heads (16,384 by default);
- graph: an HNSW graph over 8-bit scalar codes of the heads (`IndexHNSWSQ`) above that, as
  SPANN keeps its heads in an in-memory graph index (SPTAG's BKT + RNG graph).

Neither approximate kind keeps a second float32 copy of the heads: the exact vectors are already
here by head number. The heads they return are rescored exactly from them and put back in order
(scan: a shortlist of at least 64, four per head asked for). On 12k MiniLM heads the scan finds the
nearest 8 with recall 0.994 against exact in 0.05 ms (0.12 ms with cold CPU caches, as after a page
cache eviction), where the 8-bit graph walk (M 32, ef 32) reaches 0.973 in 0.085 ms (0.23 ms cold),
in 0.57 MiB against 7.5 MiB. The scan grows linearly with the heads and its shortlist with the
heads asked for, where the walk grows with log(heads): at 30k heads of 128-d, 32 asked for, the
walk is faster (0.052 ms against 0.081), hence the bound.

Neither approximate index can remove heads, so retired heads stay in it and are filtered from
results (the search asks for as many extra neighbours as there are retired heads); once they pass
a fifth of the index it is rebuilt from the live heads, of the kind their number calls for. Large
batches of queries (placing vectors at build time) skip the index and scan the live heads exactly
with blocked BLAS, which is both faster and exact there.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from lamina.index.errors import CorruptIndex
from lamina.index.spann.parallel import omp_threads, threads_for

_REBUILD_DEAD_FRACTION = 0.2
_HNSW_SCAN = 2048  # about the heads an HNSW search of the head index visits
_SCAN_MAX = 16384  # heads up to which the 4-bit scan of every head beats the graph walk
_SCAN_SHORTLIST = 64  # scan candidates rescored exactly, at least
FLAT, SCAN, GRAPH = "flat", "scan", "graph"
# Batches of at least _EXACT_BATCH queries scan the heads exactly when they hold at most
# _EXACT_SCAN floats: blocked BLAS then costs less than an HNSW walk per query.
_EXACT_BATCH = 256
_EXACT_SCAN = 1 << 26


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


class HeadIndex:
    """Head vectors (H, d) float32 by head number, their vector ids (-1: not a live vector),
    a liveness mask and the faiss index answering "nearest live heads"."""

    def __init__(self, dim: int, metric: str, *, flat_max: int = 16384, scan_max: int = 0, hnsw_m: int = 32,
                 ef_construction: int = 80) -> None:
        self.dim = dim
        self.metric = metric
        self.flat_max = flat_max
        self.scan_max = scan_max or max(flat_max, _SCAN_MAX)
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self._vectors = np.empty((0, dim), dtype=np.float32)  # capacity grows by doubling
        self._ids = np.empty(0, dtype=np.int64)
        self._alive = np.empty(0, dtype=bool)
        self._sq_norms = np.empty(0, dtype=np.float32)
        self._count = 0
        self._dead_in_index = 0
        self.max_norm = 0.0  # bound on |head| for the inner-product pruning gap
        self._params_by_ef: dict[int, faiss.SearchParametersHNSW] = {}
        self._set_index(self._empty_index(0))

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        """Head numbers handed out, retired ones included."""
        return self._count

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors[: self._count]

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self._count]

    @property
    def alive(self) -> np.ndarray:
        return self._alive[: self._count]

    @property
    def sq_norms(self) -> np.ndarray:
        """|head|^2 (H,) float32 by head number."""
        return self._sq_norms[: self._count]

    @property
    def n_alive(self) -> int:
        return int(self.alive.sum())

    @property
    def kind(self) -> str:
        """FLAT, SCAN or GRAPH: the kind of faiss index answering searches (see the module docstring)."""
        return self._kind

    @property
    def is_hnsw(self) -> bool:
        return self._kind == GRAPH

    def _set_index(self, index: faiss.Index) -> None:
        self._index = index
        inner = faiss.downcast_index(index.index)
        self._kind = GRAPH if isinstance(inner, faiss.IndexHNSW) else \
            SCAN if isinstance(inner, faiss.IndexPQFastScan) else FLAT

    def _kind_for(self, n_heads: int) -> str:
        if n_heads <= self.flat_max:
            return FLAT
        if n_heads <= self.scan_max and _scan_subquantizers(self.dim):
            return SCAN
        return GRAPH

    # ------------------------------------------------------------------ changes
    def add(self, vectors: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Add heads (n, d) float32 snapped to vector ids (n,) int64; return their numbers (n,)."""
        n = len(vectors)
        numbers = np.arange(self._count, self._count + n, dtype=np.int64)
        if self._count + n > len(self._vectors):
            capacity = max(16, 2 * len(self._vectors), self._count + n)
            self._vectors = _grow(self._vectors, capacity)
            self._ids = _grow(self._ids, capacity)
            self._alive = _grow(self._alive, capacity)
            self._sq_norms = _grow(self._sq_norms, capacity)
        sq_norms = np.einsum("ij,ij->i", vectors, vectors)
        self._vectors[self._count: self._count + n] = vectors
        self._ids[self._count: self._count + n] = ids
        self._alive[self._count: self._count + n] = True
        self._sq_norms[self._count: self._count + n] = sq_norms
        self._count += n
        if n:
            self.max_norm = max(self.max_norm, float(np.sqrt(sq_norms.max())))
            self._train(vectors)
            with omp_threads(threads_for(n * _HNSW_SCAN * self.dim)):
                self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), numbers)
            if self._kind_for(self._index.ntotal - self._dead_in_index) != self._kind:
                self.rebuild()  # grown past what this kind of index serves quickly
        return numbers

    def retire(self, heads: np.ndarray) -> None:
        """Stop using heads (their numbers are never handed out again)."""
        heads = np.asarray(heads, dtype=np.int64)
        self._alive[heads] = False
        if self._kind != FLAT:  # neither approximate index removes entries
            self._dead_in_index += len(heads)
            if self._dead_in_index > _REBUILD_DEAD_FRACTION * max(self._index.ntotal, 1):
                self.rebuild()
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(heads))

    def forget_ids(self, ids: np.ndarray) -> None:
        """Deleted vectors that are heads stay as routing points but are no longer results."""
        self._ids[: self._count][np.isin(self.ids, ids)] = -1

    def rebuild(self) -> None:
        """A fresh faiss index over the live heads (flat, scan or graph by their number)."""
        live = np.flatnonzero(self.alive)
        self._set_index(self._empty_index(len(live)))
        if len(live):
            self._train(self.vectors[live])
            self._index.add_with_ids(np.ascontiguousarray(self.vectors[live]), live.astype(np.int64))
        self._dead_in_index = 0

    def _empty_index(self, n_heads: int) -> faiss.Index:
        metric = faiss_metric(self.metric)
        kind = self._kind_for(n_heads)
        if kind == GRAPH:
            inner = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_8bit, self.hnsw_m, metric)
            inner.hnsw.efConstruction = self.ef_construction
        elif kind == SCAN:
            inner = faiss.IndexPQFastScan(self.dim, _scan_subquantizers(self.dim), 4, metric)
        else:
            inner = faiss.IndexFlat(self.dim, metric)
        return faiss.IndexIDMap(inner)

    def _train(self, vectors: np.ndarray) -> None:
        """Fit the codes (the graph's 8-bit ranges, the scan's PQ codebooks) to the first heads the
        index receives; heads added later are encoded with them (only their rank before the exact
        rescoring is approximate)."""
        if not self._index.is_trained:
            self._index.train(np.ascontiguousarray(vectors, dtype=np.float32))

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int, *, ef_search: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest live heads of each query (nq, d) float32.

        Returns faiss distances (nq, k) float32 (squared L2, or inner product) and head numbers
        (nq, k) int64, nearest first, -1 padded.
        """
        nq = len(queries)
        if not self._index.ntotal or k <= 0:
            return np.full((nq, max(k, 0)), np.nan, dtype=np.float32), np.full((nq, max(k, 0)), -1, dtype=np.int64)
        approximate = self._kind != FLAT
        if approximate and nq >= _EXACT_BATCH and self.n_alive * self.dim <= _EXACT_SCAN:
            return self._search_exact(queries, k)
        wanted = min(k + self._dead_in_index, self._index.ntotal)
        params = None
        if self._kind == GRAPH:
            params = self._hnsw_params(max(ef_search, wanted))
            work = min(self._index.ntotal, _HNSW_SCAN) * self.dim
        elif self._kind == SCAN:
            # the shortlist rescored: four per head asked for, plus every retired head it may hold
            wanted = min(max(_SCAN_SHORTLIST, 4 * k) + self._dead_in_index, self._index.ntotal)
            work = self._index.ntotal * self.dim // 8
        else:
            work = self._index.ntotal * self.dim
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        with omp_threads(threads_for(nq * work)):
            dists, heads = self._index.search(queries, wanted, params=params)
        if approximate:
            dists, heads = self._rescored(queries, heads)
        if self._dead_in_index:
            live = heads >= 0
            live[live] = self.alive[heads[live]]
            order = np.argsort(~live, axis=1, kind="stable")  # live ones first, in distance order
            dists = np.take_along_axis(dists, order, axis=1)
            heads = np.where(np.take_along_axis(live, order, axis=1), np.take_along_axis(heads, order, axis=1), -1)
        if heads.shape[1] < k:
            pad = k - heads.shape[1]
            dists = np.pad(dists, ((0, 0), (0, pad)), constant_values=np.nan)
            heads = np.pad(heads, ((0, 0), (0, pad)), constant_values=-1)
        return dists[:, :k], heads[:, :k]

    def _rescored(self, queries: np.ndarray, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact distances (nq, w) of the heads (nq, w) the approximate index returned, re-sorted nearest first."""
        found = heads >= 0
        at = np.where(found, heads, 0)
        if len(queries) == 1:  # one query (the search path): a matrix-vector product, no 3-d gather
            ip = (self._vectors[at[0]] @ queries[0])[None]
        else:
            ip = np.einsum("qwd,qd->qw", self._vectors[at], queries)
        if self.metric == "ip":
            dists = np.where(found, ip, -np.inf).astype(np.float32)
            order = np.argsort(-dists, axis=1, kind="stable")
        else:
            sq = self._sq_norms[at] - 2 * ip + np.einsum("qd,qd->q", queries, queries)[:, None]
            dists = np.where(found, np.maximum(sq, 0), np.inf).astype(np.float32)
            order = np.argsort(dists, axis=1, kind="stable")
        rows = np.arange(len(heads))[:, None]
        return dists[rows, order], heads[rows, order]

    def _hnsw_params(self, ef_search: int) -> faiss.SearchParametersHNSW:
        """Search parameters for a beam width, made once (a faiss object costs microseconds to
        build; searches only read it, so threads share it)."""
        params = self._params_by_ef.get(ef_search)
        if params is None:
            params = faiss.SearchParametersHNSW()
            params.efSearch = ef_search
            if len(self._params_by_ef) < 64:
                self._params_by_ef[ef_search] = params
        return params

    def _search_exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the live heads: for large batches (placing vectors at build time, big
        inserts) one BLAS product per block beats a graph walk per query, and it is exact."""
        live = np.flatnonzero(self.alive)
        kk = min(k, len(live))
        dists, rows = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32), self.vectors[live], kk,
                                metric=faiss_metric(self.metric))
        heads = np.where(rows >= 0, live[np.maximum(rows, 0)], -1)
        if kk < k:
            dists = np.pad(dists, ((0, 0), (0, k - kk)), constant_values=np.nan)
            heads = np.pad(heads, ((0, 0), (0, k - kk)), constant_values=-1)
        return dists, heads

    def memory_bytes(self) -> int:
        """Vectors, ids and liveness arrays plus the faiss index (its serialized size)."""
        arrays = self._vectors.nbytes + self._ids.nbytes + self._alive.nbytes + self._sq_norms.nbytes
        return arrays + int(faiss.serialize_index(self._index).nbytes)

    # ------------------------------------------------------------------ persistence
    def compacted(self) -> tuple[HeadIndex, np.ndarray]:
        """A copy holding only the live heads, renumbered densely in order; and old -> new (H,) (-1: gone)."""
        live = np.flatnonzero(self.alive)
        renumber = np.full(self._count, -1, dtype=np.int64)
        renumber[live] = np.arange(len(live))
        fresh = HeadIndex(self.dim, self.metric, flat_max=self.flat_max, scan_max=self.scan_max,
                          hnsw_m=self.hnsw_m, ef_construction=self.ef_construction)
        if len(live) == self._count and not self._dead_in_index:
            fresh._set_index(self._index)  # nothing retired: the numbering and the index stay valid
            fresh._vectors, fresh._ids, fresh._alive = self._vectors.copy(), self._ids.copy(), self._alive.copy()
            fresh._sq_norms = self._sq_norms.copy()
            fresh._count, fresh.max_norm = self._count, self.max_norm
            return fresh, renumber
        fresh._set_index(fresh._empty_index(len(live)))
        fresh.add(self.vectors[live], self.ids[live])
        return fresh, renumber

    def write(self, vectors_path: Path, ids_path: Path, index_path: Path) -> None:
        """Save vectors, ids and the faiss index (every head must be live: call `compacted` first)."""
        assert self.alive.all(), "write a compacted head index"
        np.save(vectors_path, self.vectors)
        np.save(ids_path, self.ids)
        faiss.write_index(self._index, str(index_path))

    @classmethod
    def read(cls, dim: int, metric: str, vectors: np.ndarray, ids: np.ndarray, index_path: Path, *,
             flat_max: int, hnsw_m: int, ef_construction: int, scan_max: int = 0) -> HeadIndex:
        heads = cls(dim, metric, flat_max=flat_max, scan_max=scan_max, hnsw_m=hnsw_m,
                    ef_construction=ef_construction)
        if vectors.shape != (len(ids), dim):
            raise CorruptIndex(f"head vectors have shape {vectors.shape}, expected ({len(ids)}, {dim})")
        try:
            index = faiss.read_index(str(index_path))
        except RuntimeError as exc:
            raise CorruptIndex(f"head index {index_path} is unreadable: {exc}") from None
        if index.ntotal != len(ids) or index.d != dim:
            raise CorruptIndex(f"head index {index_path} holds {index.ntotal} heads of dimension {index.d}, "
                               f"expected {len(ids)} of dimension {dim}")
        heads._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        heads._ids = np.asarray(ids, dtype=np.int64).copy()
        heads._alive = np.ones(len(ids), dtype=bool)
        heads._sq_norms = np.einsum("ij,ij->i", heads._vectors, heads._vectors)
        heads._count = len(ids)
        heads.max_norm = float(np.sqrt(heads._sq_norms.max())) if len(ids) else 0.0
        heads._set_index(index)  # read_index already returns the concrete (owning) type
        return heads


_HEAD_OVERHEAD = 54  # bytes a head costs beside its vector and code: id, liveness, norm, id map, list directory
_VECTOR_OVERHEAD = 10  # bytes every indexed vector costs in memory: its id in the sorted id array, and slack
MAX_HEAD_RATIO = 0.16  # SPANN keeps 10-16 % of the vectors as heads
MIN_HEAD_RATIO = 0.01  # below ~16-d even the ids overrun the budget: keep postings of ~100 vectors anyway


def head_bytes(dim: int, kind: str, hnsw_m: int) -> int:
    """Resident bytes one head costs in a head index of this kind (measured at 128-d: flat 1,080,
    scan 584; graph estimated at 1,014, measured 944 at 200k): its float32 vector, ids, norm and
    list directory, plus the kind's code: the vector again (flat), 4-bit PQ codes (scan), or an
    8-bit code and the graph's int32 links (graph)."""
    own = 4 * dim + _HEAD_OVERHEAD
    if kind == FLAT:
        return own + 4 * dim
    if kind == SCAN:
        return own + (_scan_subquantizers(dim) + 1) // 2 + 2
    return own + dim + 10 * hnsw_m  # 2m int32 links at level 0, ~1 more above, offsets, levels


def budget_heads(n: int, dim: int, budget: float, *, flat_max: int, scan_max: int = 0, hnsw_m: int = 32) -> int:
    """The most heads (at least MIN_HEAD_RATIO, at most MAX_HEAD_RATIO of n) whose head index, with the
    per-vector ids, fits `budget` times the raw float32 vectors (n, dim): each head index kind
    (flat up to flat_max heads, scan up to scan_max, graph above) is tried over its own range."""
    scan_max = scan_max or max(flat_max, _SCAN_MAX)
    available = budget * n * dim * 4 - _VECTOR_OVERHEAD * n
    ranges = [(FLAT, 0, flat_max)]
    if _scan_subquantizers(dim):
        ranges.append((SCAN, flat_max, scan_max))
    ranges.append((GRAPH, ranges[-1][2], n))
    best = 1
    for kind, low, high in ranges:  # a loop over the three kinds
        heads = min(high, int(available // head_bytes(dim, kind, hnsw_m)))
        if heads > low:
            best = max(best, heads)
    return max(1, min(max(best, round(MIN_HEAD_RATIO * n)), int(MAX_HEAD_RATIO * n), n))


def _scan_subquantizers(dim: int) -> int:
    """PQ sub-quantisers of the scan kind: one per 4 dimensions (one per 2 when 4 does not divide
    the dimension; 0, no scan, for an odd one)."""
    return dim // 4 if dim % 4 == 0 else (dim // 2 if dim % 2 == 0 else 0)


def _grow(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
