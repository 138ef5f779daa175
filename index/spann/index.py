"""SpannIndex: a disk-resident clustered index (SPANN) kept fresh by in-place updates (SPFresh).

Layout (SPANN, Chen et al., NeurIPS'21; microsoft/SPTAG):
- about `head_ratio` of the vectors are heads (by default as many as `memory_budget` affords),
  chosen by hierarchical balanced k-means and held
  in memory in a faiss index (`heads.py`);
- every other vector is stored in the posting lists of up to `replicas` nearby heads, chosen by
  the RNG rule (`assign.py`), in one page-aligned posting file on disk (`postings.py`);
- a query looks up its nearest heads, prunes the far ones, reads their lists with several
  preads in flight and scores the union (heads included) exactly.

Updates (SPFresh, Xu et al., SOSP'23):
- an insert goes to its RNG-chosen postings through an in-memory delta that searches merge
  with the on-disk lists; a delete is a tombstone;
- a posting grown past the cap is split by balanced 2-means into two new heads, and only the
  vectors whose nearest head changed are placed again (SPFresh's LIRE): members of the two
  halves that belonged to the old head and now belong to neither half's head, and vectors of
  neighbouring postings whose nearest head is now a new one;
- `compact()` writes a new generation of the files with the deltas merged, tombstones dropped
  and retired heads gone, then switches to it atomically (`files.py`).

Resident memory is the head index, the list directory, the deltas, the tombstones and the
sorted live ids (8 bytes a vector, for `len`, `delete` and duplicate checks); never the posting
file. Searches run concurrently; add, delete and compact take the index exclusively.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamina.index import deadline as request_deadline
from lamina.index.base import CheckedParams
from lamina.index.ids import sorted_member
from lamina.index.errors import CorruptIndex, DataLoss, FailedPrecondition, InvalidArgument
from lamina.index.locks import RWLock
from lamina.index.spann import files, kernels
from lamina.index.spann.assign import cap_postings, ip_gap, posting_bounds, prune_postings, rng_select, \
    squared_l2_from_ip
from lamina.index.spann.clustering import balanced_kmeans, select_heads, snap_to_members
from lamina.index.spann.config import SearchParams, SpannConfig
from lamina.index.spann.heads import HeadIndex, budget_heads
from lamina.index.spann.postings import COUNT, Codec, DamagedLists, IOStats, PostingReader, PostingWriter, \
    RawLists, check_directory, verify_postings
from lamina.index.topk import exact_topk

_ASSIGN_BATCH = 16384  # vectors placed per head search during build and reassignment
_WRITE_CHUNK = 256  # heads whose lists are gathered at once while writing a posting file
Posting = tuple[np.ndarray, np.ndarray]  # ids (n,) int64, vectors (n, d) float32
_NO_IDS = np.empty(0, dtype=np.int64)
_NO_SCALE = np.ones(1, dtype=np.float32)
_NO_LISTS = RawLists(np.empty(0, dtype=np.uint8), _NO_IDS, _NO_IDS)
_REPAIR_TRIES = 3  # a read that meets damaged lists repairs them and reads again, this many times
log = logging.getLogger(__name__)
VectorSource = Callable[[np.ndarray], Posting]  # ids (n,) -> the (ids, vectors) of those it holds


@dataclass
class SpannStats:
    """What the update path did since the index was opened (and what its build left out)."""

    splits: int = 0  # postings split in two
    reassigned: int = 0  # boundary vectors moved after splits
    collected: int = 0  # oversized postings brought under the cap by dropping deleted entries alone
    unsplittable: int = 0  # oversized postings of coincident vectors that 2-means cannot split
    over_cap: int = 0  # build: postings kept above the cap so that no vector lost its last copy


class SpannIndex:
    """A SPANN index over int64 ids and float32 vectors, scored by inner product or minus squared L2.

    The index lives in `path` (a temporary directory when none is given, removed on `close`):
    its manifest names the current generation of files and the store sequence number `seq`
    they cover. Built offline with `build`, or filled through `add` (exact search until
    `config.build_size` vectors, then built in place).
    """

    def __init__(self, dim: int, metric: str = "l2", config: SpannConfig | None = None, *,
                 path: Path | str | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
            raise InvalidArgument(f"dimension must be a positive integer, got {dim!r}")
        if metric not in ("ip", "l2"):
            raise InvalidArgument(f"unknown metric {metric!r}; expected ip or l2")
        self.dim = int(dim)
        self.metric = metric
        self.config = config or SpannConfig()
        self.cap = self.config.cap(self.dim)
        self.seq = 0  # store sequence number the contents cover; stamped into every manifest
        self.stats = SpannStats()
        if path is None:
            self.path = Path(tempfile.mkdtemp(prefix="lamina-spann-"))
            self._cleanup: weakref.finalize | None = weakref.finalize(self, shutil.rmtree, str(self.path), True)
        else:
            self.path = Path(path)
            self.path.mkdir(parents=True, exist_ok=True)
            self._cleanup = None
        self._lock = RWLock()
        self._closed = False
        self._generation = 0
        self._built = False
        self._ids = np.empty(0, dtype=np.int64)  # live ids, sorted
        self._tombstones = np.empty(0, dtype=np.int64)  # deleted ids still in postings, sorted
        self._pending: Posting = (np.empty(0, dtype=np.int64), np.empty((0, self.dim), dtype=np.float32))
        self._heads = self._new_heads()
        self._codec = Codec("float32", self.dim)
        self._reader: PostingReader | None = None
        self._on_disk = np.zeros(0, dtype=bool)  # head h's posting includes its list in the file
        self._delta: dict[int, Posting] = {}  # entries appended to head h since the file was written
        self._removed: dict[int, np.ndarray] = {}  # ids moved out of head h's on-disk list, sorted
        self._unsplittable: set[int] = set()
        self._search_params = CheckedParams(lambda params: SearchParams.resolve(self.config, params))
        # where a posting list that fails its CRC32C is rebuilt from (a collection's store); None:
        # such a read fails with DataLoss. `repairs` records every list rebuilt (also logged).
        self.vector_source: VectorSource | None = None
        self.repairs: list[dict[str, Any]] = []

    # ================================================================== construction
    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, *, metric: str = "l2", config: SpannConfig | None = None,
              path: Path | str | None = None, seq: int = 0) -> SpannIndex:
        """Build an index over vectors (n, d) float32 with ids (n,) int64 and write it to `path`."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise InvalidArgument(f"vectors must be a 2-d array (n, d), got shape {vectors.shape}")
        index = cls(vectors.shape[1], metric, config, path=path)
        ids, vectors = index._check_batch(ids, vectors)
        index._check_new_ids(ids)
        index.seq = seq
        with index._lock.write():
            index._ids = np.sort(ids)
            index._build_from(ids, vectors)
        return index

    def _new_heads(self) -> HeadIndex:
        return HeadIndex(self.dim, self.metric, flat_max=self.config.flat_heads_max,
                         scan_max=self.config.scan_heads_max, hnsw_m=self.config.hnsw_m,
                         ef_construction=self.config.ef_construction)

    def _build_from(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            self._publish_pending()
            return
        previous = self._heads, self._codec
        try:
            self._build_heads_and_postings(ids, vectors)
        except BaseException:  # an index filled through `add` keeps answering from its pending vectors
            self._heads, self._codec = previous
            raise

    def _head_count(self, n: int) -> int:
        """head_ratio of n when set, else the most heads `memory_budget` affords at this dimension."""
        cfg = self.config
        if cfg.head_ratio is not None:
            return max(1, round(cfg.head_ratio * n))
        return budget_heads(n, self.dim, cfg.memory_budget, flat_max=cfg.flat_heads_max, scan_max=cfg.scan_heads_max,
                            hnsw_m=cfg.hnsw_m)

    def _build_heads_and_postings(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        cfg = self.config
        head_rows = select_heads(
            vectors, self._head_count(len(vectors)), branching=cfg.branching, iters=cfg.kmeans_iters,
            balance_iters=cfg.balance_iters, seed=cfg.seed, use_gpu=cfg.use_gpu,
        )
        heads = self._new_heads()
        heads.add(vectors[head_rows], ids[head_rows])
        self._heads = heads
        self._codec = Codec.fit(cfg.dtype, vectors)
        is_head = np.zeros(len(vectors), dtype=bool)
        is_head[head_rows] = True
        rest = np.flatnonzero(~is_head)  # heads are found through the head index, not stored in postings
        chosen, chosen_dists = self._assign(vectors[rest])
        entry_rows, slots = np.nonzero(chosen >= 0)
        entry_heads = chosen[entry_rows, slots]
        kept = cap_postings(entry_heads, chosen_dists[entry_rows, slots], self.cap)
        placed = np.zeros(len(rest), dtype=bool)
        placed[entry_rows[kept]] = True
        if not placed.all():  # the cap never drops a vector's last copy: it keeps its nearest posting
            orphans = np.flatnonzero(~placed)
            last = np.flatnonzero(np.isin(entry_rows, orphans) & (slots == 0))
            self.stats.over_cap = len(np.unique(entry_heads[last]))
            kept = np.concatenate([kept, last])
            kept = kept[np.lexsort((chosen_dists[entry_rows[kept], slots[kept]], entry_heads[kept]))]
        sorted_heads = entry_heads[kept]
        sorted_rows = rest[entry_rows[kept]]
        bounds = posting_bounds(sorted_heads, len(heads))

        def lists(chunk: np.ndarray) -> Iterator[Posting]:
            a, b = bounds[chunk[0]], bounds[chunk[-1] + 1]
            chunk_vectors = vectors[sorted_rows[a:b]]
            for h in chunk:
                lo, hi = bounds[h] - a, bounds[h + 1] - a
                yield ids[sorted_rows[a + lo: a + hi]], chunk_vectors[lo:hi]

        generation = max(files.read_generation(self.path), self._generation) + 1
        manifest = self._write_generation(self.path, generation, heads, lists, np.sort(ids))
        files.publish(self.path, manifest)
        self._open_generation(manifest, heads)

    # ================================================================== placement
    def _assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RNG-chosen heads (n, replicas) int64 (-1 padded) of vectors (n, d) and their metric
        distances (n, replicas) float32 (squared L2, or minus inner product; inf padded)."""
        cfg = self.config
        n = len(vectors)
        chosen = np.full((n, cfg.replicas), -1, dtype=np.int64)
        chosen_dists = np.full((n, cfg.replicas), np.inf, dtype=np.float32)
        n_candidates = min(cfg.candidates, self._heads.n_alive)
        if not n_candidates:
            return chosen, chosen_dists
        head_norms = self._heads.sq_norms
        for start in range(0, n, _ASSIGN_BATCH):
            x = vectors[start: start + _ASSIGN_BATCH]
            dists, candidates = self._heads.search(x, n_candidates, ef_search=max(cfg.ef_search, n_candidates))
            valid = candidates >= 0
            if self.metric == "l2":
                squared = metric_dists = dists
            else:  # the RNG rule uses L2 geometry; nearness in the posting order uses the inner product
                squared = squared_l2_from_ip(dists, np.einsum("ij,ij->i", x, x), head_norms[np.maximum(candidates, 0)])
                metric_dists = -dists
            squared = np.where(valid, squared, np.inf).astype(np.float32)
            heads, positions = rng_select(candidates, squared, self._heads.vectors, rng_factor=cfg.rng_factor,
                                          replicas=cfg.replicas)
            stop = start + len(x)
            chosen[start:stop] = heads
            taken = np.take_along_axis(metric_dists, np.maximum(positions, 0), axis=1)
            chosen_dists[start:stop] = np.where(heads >= 0, taken, np.inf)
        return chosen, chosen_dists

    def _distance(self, vectors: np.ndarray, head: np.ndarray) -> np.ndarray:
        """Metric distance (n,) float32 of vectors (n, d) to one vector (d,): smaller is nearer."""
        if self.metric == "ip":
            return -(vectors @ head)
        diff = vectors - head
        return np.einsum("ij,ij->i", diff, diff)

    def _distance_to_heads(self, vectors: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """Metric distance (n,) of each vector (n, d) to its own head of heads (n,); inf for -1."""
        head_vectors = self._heads.vectors[np.maximum(heads, 0)]
        if self.metric == "ip":
            dist = -np.einsum("ij,ij->i", vectors, head_vectors)
        else:
            diff = vectors - head_vectors
            dist = np.einsum("ij,ij->i", diff, diff)
        return np.where(heads >= 0, dist, np.inf)

    # ================================================================== VectorIndex
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def built(self) -> bool:
        """Whether heads and a posting file exist (else the index answers exactly from memory)."""
        return self._built

    @property
    def build_due(self) -> bool:
        """Whether the vectors of an index not built yet reach `config.build_size`."""
        return not self._built and len(self._pending[0]) >= self.config.build_size

    @property
    def n_heads(self) -> int:
        return self._heads.n_alive

    @property
    def io_stats(self) -> IOStats:
        return self._reader.stats if self._reader is not None else IOStats()

    def add(self, ids: np.ndarray, vectors: np.ndarray, *, seq: int | None = None, build: bool = True) -> None:
        """Add vectors (n, d) float32 under new ids (n,) int64 (never live or deleted before).

        An id the index holds with the same vector (as stored: the codec's form) is skipped, so
        that a replay of writes the index already holds is a no-op; with another vector it is an
        error. `seq` is the store sequence number the index covers after this write: a generation
        published by the build this add may trigger is stamped with it (never with an older one).
        With `build` False, crossing `build_size` only sets `build_due` (a collection builds a new
        index in the background and swaps it in, `lamina.retrieval.maintenance`).
        """
        ids, vectors = self._check_batch(ids, vectors)
        if not len(ids):
            return
        with self._lock.write():
            self._check_open()
            if seq is not None:
                self.seq = max(self.seq, int(seq))
            ids, vectors = self._without_held(ids, vectors)
            if not len(ids):
                return
            self._check_new_ids(ids)
            self._ids = _merge_sorted(self._ids, ids)
            if not self._built:
                self._pending = (np.concatenate([self._pending[0], ids]),
                                 np.concatenate([self._pending[1], vectors]))
                if build and self.build_due:
                    self._build_from(*self._pending)
                    self._pending = (self._pending[0][:0], self._pending[1][:0])
                return
            chosen, _ = self._assign(vectors)
            touched = self._append(ids, vectors, chosen)
            for _ in range(_REPAIR_TRIES):  # a split reads lists: one that fails is rebuilt first
                try:
                    self._rebalance(touched)
                    break
                except DamagedLists as exc:
                    self._repair_locked(exc.heads)

    def delete(self, ids: np.ndarray, *, seq: int | None = None) -> None:
        """Tombstone ids; ids the index does not hold are ignored. `seq` as for `add`."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).ravel())
        with self._lock.write():
            self._check_open()
            if seq is not None:
                self.seq = max(self.seq, int(seq))
            present = ids[_contains(self._ids, ids)]
            if not len(present):
                return
            self._ids = np.setdiff1d(self._ids, present, assume_unique=True)
            if not self._built:
                keep = ~np.isin(self._pending[0], present)
                self._pending = (self._pending[0][keep], self._pending[1][keep])
                return
            self._tombstones = _merge_sorted(self._tombstones, present)
            self._heads.forget_ids(present)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of each query (nq, d): scores (nq, k) float32 (inner product, or minus squared L2;
        -inf padded) and ids (nq, k) int64 (-1 padded).

        params: max_postings, max_dist_ratio, min_postings, ef_search (see SpannConfig).
        """
        queries = self._check_queries(queries)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise InvalidArgument(f"k must be a positive integer, got {k!r}")
        k = int(k)
        search_params = self._search_params(params)
        allowed = _sorted_ids(allowed)
        return self._repairing(lambda: self._search_locked(queries, k, search_params, allowed))

    def _search_locked(self, queries: np.ndarray, k: int, search_params: SearchParams,
                       allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        with self._lock.read():
            self._check_open()
            if not self._built:
                return self._exact_search(queries, k, allowed)
            head_dists, heads = self._heads.search(queries, search_params.max_postings,
                                                    ef_search=search_params.ef_search)
            for row, query in enumerate(queries):  # batched queries loop; each reads its own lists
                request_deadline.check("reading SPANN postings")  # an abandoned request stops here
                head_ids, head_scores, read = self._route(query, head_dists[row], heads[row], search_params)
                self._scan(query, head_ids, head_scores, read, k, allowed, scores[row], found[row])
        return scores, found

    def _repairing(self, read: Callable[[], Any]) -> Any:
        """Run a read (under the read lock); when it meets lists that fail their CRC32C, rebuild
        them (under the write lock) and run it again: no damaged byte is ever scored."""
        for _ in range(_REPAIR_TRIES):
            try:
                return read()
            except DamagedLists as exc:
                self.repair(exc.heads)
        return read()

    def candidates(self, query: np.ndarray, *, allowed: np.ndarray | None = None,
                   params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Everything one query scores: ids (m,) int64 and scores (m,) float32 of the distinct live
        candidates, and the heads (p,) int64 whose postings were read. For tuning and tests."""
        query = self._check_queries(query)[0]
        search_params = self._search_params(params)
        def read() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            with self._lock.read():
                self._check_open()
                if not self._built:
                    raise FailedPrecondition("the index is not built yet: it searches its vectors exactly")
                head_dists, heads = self._heads.search(query[None], search_params.max_postings,
                                                        ef_search=search_params.ef_search)
                return self._query(query, head_dists[0], heads[0], search_params, _sorted_ids(allowed))

        return self._repairing(read)

    def _route(self, query: np.ndarray, head_dists: np.ndarray, heads: np.ndarray,
               params: SearchParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The looked-up heads' ids (-1 for a deleted head) and scores, and the heads whose postings
        the query reads (the looked-up ones left after pruning)."""
        looked_up = heads >= 0
        heads, head_dists = heads[looked_up], head_dists[looked_up]
        if self.metric == "l2":
            head_scores, prune_dists = -head_dists, head_dists
        else:
            head_scores = head_dists
            prune_dists = ip_gap(head_dists, math.sqrt(float(query @ query)), self._heads.max_norm)
        read = heads[prune_postings(prune_dists, max_dist_ratio=params.max_dist_ratio,
                                    min_postings=params.min_postings)]
        return self._heads.ids[heads], head_scores.astype(np.float32), read

    def _scan(self, query: np.ndarray, head_ids: np.ndarray, head_scores: np.ndarray, read: np.ndarray, k: int,
              allowed: np.ndarray | None, out_scores: np.ndarray, out_ids: np.ndarray) -> int:
        """Top-k of one query into out_scores / out_ids (best first); returns how many were found.

        The heads and the in-memory deltas are scored here and offered first; the on-disk lists
        are scored by `kernels.scan_lists` where they lie (the mapped file, or a pread buffer).
        """
        seed_ids, seed_scores = [head_ids], [head_scores]
        if self._delta:
            for h in read.tolist():
                delta = self._delta.get(h)
                if delta is not None and len(delta[0]):
                    seed_ids.append(delta[0])
                    seed_scores.append(self._score(delta[1], query))
        on_disk = self._on_disk_mask(read)
        if self._reader is not None and on_disk.any():
            raw, codec = self._reader.lists(read[on_disk]), self._reader.codec
        else:
            raw, codec = _NO_LISTS, self._codec  # no list to decode
        # the heads' own scores alone (no deltas), the common case, go in without a concatenation
        seeds = (seed_ids[0], seed_scores[0]) if len(seed_ids) == 1 else \
            (np.concatenate(seed_ids), np.concatenate(seed_scores).astype(np.float32, copy=False))
        return kernels.scan_lists(
            *kernels.buffer_views(raw.buffer), raw.bases, raw.counts, kernels.STORAGE_KINDS[codec.dtype],
            codec.scale if codec.scale is not None else _NO_SCALE, query, self.metric == "ip", k,
            *seeds, self._tombstones,
            _NO_IDS if allowed is None else allowed, allowed is not None, out_scores, out_ids)

    def _score(self, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Scores (n,) float32 of vectors (n, d) against one query (inner product or minus squared L2)."""
        ip = vectors @ query
        if self.metric == "ip":
            return ip.astype(np.float32)
        return (-np.maximum(np.einsum("ij,ij->i", vectors, vectors) - 2 * ip + query @ query, 0)).astype(np.float32)

    def _query(self, query: np.ndarray, head_dists: np.ndarray, heads: np.ndarray, params: SearchParams,
               allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every distinct live candidate of one query (ids, scores) and the heads read: `candidates()`."""
        head_ids, head_scores, read = self._route(query, head_dists, heads, params)
        posting_ids, vectors = self._gather(read)
        # heads go first so that np.unique keeps their exact scores over a quantised replica's
        ids = np.concatenate([head_ids, posting_ids])
        scores = np.concatenate([head_scores, self._score(vectors, query)]).astype(np.float32)
        keep = ids >= 0  # a deleted head stays as a routing point with id -1
        if len(self._tombstones):
            keep &= ~_contains(self._tombstones, ids)
        if allowed is not None:
            keep &= _contains(allowed, ids)
        ids, scores = ids[keep], scores[keep]
        ids, first = np.unique(ids, return_index=True)
        return ids, scores[first], read

    def _exact_search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        ids, vectors = self._pending
        if allowed is not None:
            keep = _contains(allowed, ids)
            ids, vectors = ids[keep], vectors[keep]
        return exact_topk(queries, vectors, ids, k, self.metric)

    def release_pages(self) -> None:
        """Unmap the posting file's pages from this process (they stay in the page cache, where
        `posix_fadvise(DONTNEED)` can now drop them): for cold-cache measurements."""
        with self._lock.read():
            if self._reader is not None:
                self._reader.release_pages()

    def memory_bytes(self) -> int:
        """Resident bytes: head index, list directory, deltas, tombstones, live ids; not the posting
        file, nor the verified copies of its lists (`cache_bytes`)."""
        total = self._heads.memory_bytes() + self._on_disk.nbytes + self._ids.nbytes + self._tombstones.nbytes
        total += sum(a.nbytes + b.nbytes for a, b in self._delta.values())
        total += sum(a.nbytes for a in self._removed.values())
        total += self._pending[0].nbytes + self._pending[1].nbytes
        if self._reader is not None:
            total += self._reader.directory.nbytes
        return int(total)

    def cache_bytes(self) -> int:
        """Resident bytes of the verified copies of posting lists (`verified.VerifiedCache`), at
        most `verified_cache_mb` MiB: a cache of the posting file, counted apart from
        `memory_bytes` as the page cache is."""
        reader = self._reader
        return int(reader.cache.resident_bytes) if reader is not None and reader.cache is not None else 0

    # ================================================================== postings in memory and on disk
    def _on_disk_mask(self, heads: np.ndarray) -> np.ndarray:
        inside = heads < len(self._on_disk)
        mask = np.zeros(len(heads), dtype=bool)
        mask[inside] = self._on_disk[heads[inside]]
        return mask

    def _gather(self, heads: np.ndarray) -> Posting:
        """The current postings of `heads` back to back, tombstoned entries included: the search path."""
        id_parts, vector_parts = [], []
        on_disk = self._on_disk_mask(heads)
        if on_disk.any() and self._reader is not None:
            stored = heads[on_disk]
            ids, vectors, counts = self._reader.read_concat(stored)
            moved = [i for i, h in enumerate(stored.tolist()) if h in self._removed] if self._removed else []
            if moved:
                starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
                keep = np.ones(len(ids), dtype=bool)
                for i in moved:
                    segment = slice(int(starts[i]), int(starts[i] + counts[i]))
                    keep[segment] = ~_contains(self._removed[int(stored[i])], ids[segment])
                ids, vectors = ids[keep], vectors[keep]
            id_parts.append(ids)
            vector_parts.append(vectors)
        if self._delta:
            for h in heads.tolist():
                delta = self._delta.get(h)
                if delta is not None:
                    id_parts.append(delta[0])
                    vector_parts.append(delta[1])
        if not id_parts:
            return np.empty(0, dtype=np.int64), np.empty((0, self.dim), dtype=np.float32)
        if len(id_parts) == 1:
            return id_parts[0], vector_parts[0]
        return np.concatenate(id_parts), np.concatenate(vector_parts)

    def _postings(self, heads: np.ndarray, *, origin: bool = False, live: bool = False) -> list[Posting]:
        """Current posting of each head: its on-disk list (less moved-out ids) and its delta.

        With `origin`, each posting carries a third array (n,) bool: entry comes from the file.
        With `live`, tombstoned entries are dropped (searches drop them after merging instead).
        """
        heads = np.asarray(heads, dtype=np.int64)
        on_disk = self._on_disk_mask(heads)
        disk = iter(self._reader.read(heads[on_disk])) if on_disk.any() and self._reader is not None else iter(())
        out: list[Any] = []
        for h, stored in zip(heads.tolist(), on_disk.tolist()):
            parts = []
            if stored:
                ids, vectors = next(disk)
                removed = self._removed.get(h)
                if removed is not None:
                    keep = ~_contains(removed, ids)
                    ids, vectors = ids[keep], vectors[keep]
                parts.append((ids, vectors, np.ones(len(ids), dtype=bool)))
            delta = self._delta.get(h)
            if delta is not None:
                parts.append((delta[0], delta[1], np.zeros(len(delta[0]), dtype=bool)))
            if not parts:
                ids, vectors, from_disk = np.empty(0, np.int64), np.empty((0, self.dim), np.float32), np.empty(0, bool)
            elif len(parts) == 1:
                ids, vectors, from_disk = parts[0]
            else:
                ids, vectors, from_disk = (np.concatenate(column) for column in zip(*parts))
            if live and len(self._tombstones):
                keep = ~_contains(self._tombstones, ids)
                ids, vectors, from_disk = ids[keep], vectors[keep], from_disk[keep]
            out.append((ids, vectors, from_disk) if origin else (ids, vectors))
        return out

    def _size(self, h: int) -> int:
        """Entries of head h's posting, tombstoned ones included (they go when it is split)."""
        size = 0
        if h < len(self._on_disk) and self._on_disk[h]:
            assert self._reader is not None
            size += int(self._reader.directory[h, COUNT]) - len(self._removed.get(h, ()))
        delta = self._delta.get(h)
        return size + (len(delta[0]) if delta is not None else 0)

    def _set_posting(self, h: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace head h's posting by memory-resident entries (its on-disk list is dropped)."""
        if h < len(self._on_disk):
            self._on_disk[h] = False
        self._removed.pop(h, None)
        self._delta[h] = (ids, vectors)

    def _take_out(self, h: int, ids: np.ndarray, from_disk: np.ndarray) -> None:
        """Remove entries from head h's posting: from its delta, or by masking its on-disk list."""
        if from_disk.any():
            previous = self._removed.get(h, np.empty(0, dtype=np.int64))
            self._removed[h] = _merge_sorted(previous, np.unique(ids[from_disk]))
        delta = self._delta.get(h)
        if delta is not None and (~from_disk).any():
            keep = ~_member(delta[0], ids[~from_disk])
            self._delta[h] = (delta[0][keep], delta[1][keep])

    def _append(self, ids: np.ndarray, vectors: np.ndarray, chosen: np.ndarray, *, known: bool = False) -> set[int]:
        """Append vectors to the deltas of their chosen heads (n, replicas); return the heads touched.

        `known` vectors (reassigned ones) may already be in a chosen head's delta: those pairs are
        skipped. A copy in the on-disk list is not looked for (that would cost a read per head);
        such a duplicate is harmless to search, and splits and compaction drop it.
        """
        rows, slots = np.nonzero(chosen >= 0)
        heads = chosen[rows, slots]
        order = np.argsort(heads, kind="stable")
        heads, rows = heads[order], rows[order]
        touched, starts = np.unique(heads, return_index=True)
        for h, a, b in zip(touched.tolist(), starts, np.append(starts[1:], len(heads))):
            take = rows[a:b]
            delta = self._delta.get(h)
            if delta is None:
                self._delta[h] = (ids[take], vectors[take])
                continue
            if known:
                take = take[~_member(ids[take], delta[0])]
            self._delta[h] = (np.concatenate([delta[0], ids[take]]), np.concatenate([delta[1], vectors[take]]))
        return set(touched.tolist())

    # ================================================================== SPFresh: split and reassign
    def _rebalance(self, touched: set[int]) -> None:
        """Split every touched posting over the cap, and those the reassignments overfill in turn."""
        queue = sorted(touched)
        budget = max(64, len(self._ids))  # a cascade never needs more splits than there are vectors
        while queue and budget:
            h = queue.pop()
            if not self._heads.alive[h] or h in self._unsplittable or self._size(h) <= self.cap:
                continue
            budget -= 1
            queue.extend(self._split(h))

    def _split(self, h: int) -> set[int]:
        """Split head h's posting by balanced 2-means into two new heads; return the heads touched."""
        ((ids, vectors),) = self._postings(np.array([h]), live=True)
        ids, first = np.unique(ids, return_index=True)
        vectors = vectors[first]
        if len(ids) <= self.cap:  # deleted entries were what overfilled it
            self._set_posting(h, ids, vectors)
            self.stats.collected += 1
            return set()
        old_head = self._heads.vectors[h].copy()
        old_id = int(self._heads.ids[h])
        members_ids, members = ids, vectors
        if old_id >= 0 and not (ids == old_id).any():  # the old head's vector becomes an ordinary member again
            members_ids = np.append(ids, old_id)
            members = np.concatenate([vectors, old_head[None]])
        cfg = self.config
        centroids, labels = balanced_kmeans(members, 2, iters=cfg.kmeans_iters, balance_iters=cfg.balance_iters,
                                            seed=cfg.seed + h)
        if np.bincount(labels, minlength=2).min() == 0:  # coincident vectors: 2-means cannot separate them
            self._unsplittable.add(h)
            self._set_posting(h, ids, vectors)
            self.stats.unsplittable += 1
            return set()
        rows = snap_to_members(members, labels, centroids)
        new_heads = self._heads.add(members[rows], members_ids[rows])
        self._retire(h)
        ordinary = np.ones(len(members_ids), dtype=bool)
        ordinary[rows] = False  # the two new heads are found through the head index
        for side, head in enumerate(new_heads.tolist()):
            keep = ordinary & (labels == side)
            self._set_posting(head, members_ids[keep], members[keep])
        self.stats.splits += 1
        return set(new_heads.tolist()) | self._reassign(old_head, new_heads)

    def _retire(self, h: int) -> None:
        self._heads.retire(np.array([h]))
        self._delta.pop(h, None)
        self._removed.pop(h, None)
        if h < len(self._on_disk):
            self._on_disk[h] = False
        self._unsplittable.discard(h)

    def _reassign(self, old_head: np.ndarray, new_heads: np.ndarray) -> set[int]:
        """SPFresh's reassignment after a split: re-place only the vectors whose nearest head changed.

        Cheap distance tests pick the suspects (SPFresh's conditions); one head search then
        tells their nearest head now, which decides:
        - a member of a half moves when its nearest head is now neither its half's head nor one
          it was already nearer to than to the old head (it was the old head's, and is not its
          half's now);
        - a vector of a neighbouring posting moves when its nearest head is now a new head.
        """
        new_vectors = self._heads.vectors[new_heads]
        suspects: list[tuple[int, bool, np.ndarray, np.ndarray, np.ndarray]] = []  # head, is_half, ids, vecs, from_disk
        for side, head in enumerate(new_heads.tolist()):
            ids, vectors = self._delta[head]
            own = self._distance(vectors, new_vectors[side])
            maybe = (self._distance(vectors, old_head) <= own) | (self._distance(vectors, new_vectors[1 - side]) < own)
            if maybe.any():
                suspects.append((head, True, ids[maybe], vectors[maybe], np.zeros(int(maybe.sum()), dtype=bool)))
        if self.config.reassign_neighbors:
            _, near = self._heads.search(old_head[None], self.config.reassign_neighbors + len(new_heads))
            near = near[0][(near[0] >= 0) & ~np.isin(near[0], new_heads)][: self.config.reassign_neighbors]
            for head, (ids, vectors, from_disk) in zip(near.tolist(), self._postings(near, origin=True, live=True)):
                if not len(ids):
                    continue
                nearest_new = np.minimum(self._distance(vectors, new_vectors[0]),
                                         self._distance(vectors, new_vectors[1]))
                maybe = nearest_new < self._distance(vectors, self._heads.vectors[head])
                if maybe.any():
                    suspects.append((head, False, ids[maybe], vectors[maybe], from_disk[maybe]))
        if not suspects:
            return set()
        all_vectors = np.concatenate([v for _, _, _, v, _ in suspects])
        _, nearest = self._heads.search(all_vectors, 1, ef_search=self.config.ef_search)
        nearest = nearest[:, 0]
        moved_ids: list[np.ndarray] = []
        moved: list[np.ndarray] = []
        at = 0
        for head, is_half, ids, vectors, from_disk in suspects:
            now = nearest[at: at + len(ids)]
            at += len(ids)
            to_new = np.isin(now, new_heads)
            if is_half:
                was_old_heads = self._distance(vectors, old_head) < self._distance_to_heads(vectors, now)
                move = (now != head) & (to_new | was_old_heads)
            else:
                move = to_new
            if not move.any():
                continue
            moved_ids.append(ids[move])
            moved.append(vectors[move])
            if is_half:
                keep = ~_member(self._delta[head][0], ids[move])
                self._delta[head] = (self._delta[head][0][keep], self._delta[head][1][keep])
            else:
                self._take_out(head, ids[move], from_disk[move])
        if not moved_ids:
            return set()
        ids, first = np.unique(np.concatenate(moved_ids), return_index=True)
        vectors = np.concatenate(moved)[first]
        self.stats.reassigned += len(ids)
        chosen, _ = self._assign(vectors)
        return self._append(ids, vectors, chosen, known=True)

    # ================================================================== files
    def _write_generation(self, directory: Path, generation: int, heads: HeadIndex,
                          lists: Callable[[np.ndarray], Iterator[Posting]], live_ids: np.ndarray) -> dict[str, Any]:
        """Write a generation's files into `directory` and return its manifest (not yet published).

        `heads` holds live heads only, numbered 0..H-1; `lists(chunk)` yields the posting of each
        head number in `chunk`, in order.
        """
        directory.mkdir(parents=True, exist_ok=True)
        if directory != self.path:
            files.remove_unlisted(directory, _manifest_or_none(directory))
        name = lambda kind: files.generation_name(kind, generation)  # noqa: E731
        entries: dict[str, dict[str, Any]] = {}
        with PostingWriter(directory / name("postings"), self._codec) as writer:
            for start in range(0, len(heads), _WRITE_CHUNK):
                chunk = np.arange(start, min(start + _WRITE_CHUNK, len(heads)))
                for ids, vectors in lists(chunk):
                    writer.write_list(ids, vectors)
            directory_rows = writer.finish()
        entries["postings"] = files.describe(directory / name("postings"), checksum=False)
        entries["lists"] = files.write_npy(directory / name("lists"), directory_rows)
        heads.write(directory / name("heads"), directory / name("head_ids"), directory / name("head_index"))
        entries["heads"] = files.synced(directory / name("heads"))
        entries["head_ids"] = files.synced(directory / name("head_ids"))
        entries["head_index"] = files.synced(directory / name("head_index"))
        entries["ids"] = files.write_npy(directory / name("ids"), live_ids)
        if self._codec.scale is not None:
            entries["scale"] = files.write_npy(directory / name("scale"), self._codec.scale)
        return self._manifest(generation, True, entries, n_heads=len(heads),
                              n_entries=int(directory_rows[:, COUNT].sum()), n_vectors=len(live_ids))

    def _manifest(self, generation: int, built: bool, entries: dict[str, Any], *, n_heads: int, n_entries: int,
                  n_vectors: int) -> dict[str, Any]:
        return {
            "format": files.FORMAT, "version": files.VERSION, "generation": generation, "seq": int(self.seq),
            "dim": self.dim, "metric": self.metric, "config": self.config.to_dict(), "built": built,
            "dtype": self._codec.dtype,
            "counts": {"vectors": n_vectors, "heads": n_heads, "entries": n_entries, "posting_cap": self.cap},
            "stats": asdict(self.stats), "files": entries,
        }

    def _publish_pending(self) -> None:
        """Write the vectors of an index not built yet (all of its state) as a generation."""
        generation = max(files.read_generation(self.path), self._generation) + 1
        manifest = self._pending_generation(self.path, generation)
        files.publish(self.path, manifest)
        self._generation = generation

    def _pending_generation(self, directory: Path, generation: int) -> dict[str, Any]:
        directory.mkdir(parents=True, exist_ok=True)
        entries = {
            "pending_ids": files.write_npy(directory / files.generation_name("pending_ids", generation),
                                           self._pending[0]),
            "pending_vectors": files.write_npy(directory / files.generation_name("pending_vectors", generation),
                                               self._pending[1]),
        }
        return self._manifest(generation, False, entries, n_heads=0, n_entries=0, n_vectors=len(self._pending[0]))

    def _open_generation(self, manifest: dict[str, Any], heads: HeadIndex, lists: np.ndarray | None = None) -> None:
        """Switch to a published generation of `self.path`: its posting file, its heads, no deltas."""
        if lists is None:
            lists = files.load_npy(self.path, manifest["files"]["lists"])
        reader = PostingReader(self.path / manifest["files"]["postings"]["name"], lists, self._codec,
                               io=self.config.io, io_threads=self.config.io_threads,
                               coalesce_bytes=self.config.coalesce_bytes, verify=self.config.verify_reads,
                               cache_bytes=self.config.verified_cache_mb << 20)
        old, self._reader = self._reader, reader
        if old is not None:
            old.close()
        self._heads = heads
        self._on_disk = np.ones(len(lists), dtype=bool)
        self._delta.clear()
        self._removed.clear()
        self._unsplittable.clear()
        self._tombstones = np.empty(0, dtype=np.int64)
        self._generation = int(manifest["generation"])
        self._built = True

    def _live_lists(self, old_numbers: np.ndarray) -> Callable[[np.ndarray], Iterator[Posting]]:
        """Posting source for `_write_generation`: live entries of the current heads, deduplicated
        and sorted nearest first, for new head numbers mapped to `old_numbers`."""

        def lists(chunk: np.ndarray) -> Iterator[Posting]:
            old = old_numbers[chunk]
            for h, (ids, vectors) in zip(old.tolist(), self._postings(old, live=True)):
                ids, first = np.unique(ids, return_index=True)  # stale replicas left by reassignments
                vectors = vectors[first]
                order = np.argsort(self._distance(vectors, self._heads.vectors[h]), kind="stable")
                yield ids[order], vectors[order]

        return lists

    def compact(self, *, seq: int | None = None) -> None:
        """Rewrite the posting file with deltas merged, tombstones and retired heads dropped, and
        switch to it; a crash (or error) part-way leaves the previous generation in force."""
        with self._lock.write():
            self._check_open()
            if seq is not None:
                self.seq = seq
            if not self._built:
                self._publish_pending()
                return
            self._compact_locked()

    def _compact_locked(self) -> None:
        for attempt in range(_REPAIR_TRIES + 1):
            heads, renumber = self._heads.compacted()
            old_numbers = np.flatnonzero(renumber >= 0)
            generation = max(files.read_generation(self.path), self._generation) + 1
            try:
                manifest = self._write_generation(self.path, generation, heads, self._live_lists(old_numbers),
                                                  self._ids)
                break
            except DamagedLists as exc:  # a list that fails its CRC32C is rebuilt, then written
                if attempt == _REPAIR_TRIES:
                    raise
                self._repair_locked(exc.heads)
        files.publish(self.path, manifest)
        self._open_generation(manifest, heads)

    # ================================================================== repair of damaged lists
    def repair(self, heads: np.ndarray) -> None:
        """Rebuild the posting lists of `heads` that failed their CRC32C from `vector_source`, then
        rewrite the posting file (a new generation: the damaged bytes are gone and it verifies).
        DataLoss when there is no vector source."""
        with self._lock.write():
            self._check_open()
            if self._repair_locked(heads):
                self._compact_locked()

    def _repair_locked(self, heads: np.ndarray) -> bool:
        """Replace the on-disk lists of `heads` by in-memory postings rebuilt from the vector source:
        every live vector whose placement (`_assign`, as at build time) picks one of them. Returns
        whether anything was rebuilt (another reader may have repaired them first)."""
        heads = np.unique(np.asarray(heads, dtype=np.int64))
        heads = heads[self._on_disk_mask(heads)]
        if not len(heads):
            return False
        log.warning("SPANN index %s: posting list(s) of head(s) %s fail their CRC32C; rebuilding them from %s",
                    self.path, heads[:10].tolist(), "the store" if self.vector_source else "nothing")
        if self.vector_source is None:
            raise DataLoss(f"{len(heads)} posting list(s) of the SPANN index in {self.path} fail their CRC32C "
                           f"(heads {heads[:10].tolist()}) and the index has no vector source to rebuild them "
                           "from: rebuild the index from its vectors")
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for start in range(0, len(self._ids), _ASSIGN_BATCH):
            ids, vectors = self.vector_source(self._ids[start: start + _ASSIGN_BATCH])
            chosen, dists = self._assign(np.ascontiguousarray(vectors, dtype=np.float32))
            rows, slots = np.nonzero(np.isin(chosen, heads))
            parts.append((chosen[rows, slots], ids[rows], vectors[rows], dists[rows, slots]))
        owner, ids, vectors, dists = (np.concatenate(column) for column in zip(*parts))
        alive_heads = np.sort(self._heads.ids[self._heads.alive])
        keep = ~_contains(alive_heads, ids)  # heads are found through the head index
        owner, ids, vectors, dists = owner[keep], ids[keep], vectors[keep].astype(np.float32), dists[keep]
        order = np.lexsort((dists, owner))
        owner, ids, vectors = owner[order], ids[order], vectors[order]
        bounds = np.searchsorted(owner, np.append(heads, heads[-1] + 1)) if len(owner) else np.zeros(len(heads) + 1, int)
        for i, h in enumerate(heads.tolist()):  # the damaged heads: a handful
            self._set_posting(h, ids[bounds[i]: bounds[i + 1]], vectors[bounds[i]: bounds[i + 1]])
        record = {"heads": heads.tolist(), "entries": int(len(ids)), "generation": self._generation}
        self.repairs.append(record)
        log.warning("SPANN index %s: rebuilt posting list(s) of head(s) %s from the store (%d entries)",
                    self.path, heads[:10].tolist(), len(ids))
        return True

    def save(self, directory: Path | str, *, seq: int | None = None) -> None:
        """Write the index, deltas merged, into `directory` as a loadable generation.

        Saving into the index's own `path` is `compact()`. Elsewhere the live index is left as it
        is (it keeps serving from `path`).
        """
        directory = Path(directory)
        if directory.resolve() == self.path.resolve():
            self.compact(seq=seq)
            return
        with self._lock.read():
            self._check_open()
            if seq is not None:
                self.seq = seq
            generation = files.read_generation(directory) + 1
            if not self._built:
                manifest = self._pending_generation(directory, generation)
            else:
                heads, renumber = self._heads.compacted()
                manifest = self._write_generation(directory, generation, heads,
                                                  self._live_lists(np.flatnonzero(renumber >= 0)), self._ids)
            files.publish(directory, manifest)

    @classmethod
    def load(cls, directory: Path | str, *, dim: int | None = None, metric: str | None = None,
             overrides: Mapping[str, Any] | None = None) -> SpannIndex:
        """Open the index in `directory` (which it then owns: compaction writes there).

        `overrides` replaces search and I/O settings of the stored config (config.RUNTIME_PARAMS).
        Raises CorruptIndex when the manifest is missing or unreadable, a file is missing, damaged
        or truncated, or the index does not have the expected dim / metric.
        """
        directory = Path(directory)
        manifest = files.read_manifest(directory)
        if (dim is not None and manifest["dim"] != dim) or (metric is not None and manifest["metric"] != metric):
            raise CorruptIndex(f"SPANN index in {directory} is dim={manifest['dim']} {manifest['metric']}, "
                               f"expected dim={dim} {metric}")
        try:
            config = SpannConfig.from_dict(manifest["config"])
        except (InvalidArgument, TypeError) as exc:
            raise CorruptIndex(f"SPANN manifest in {directory} has an invalid config: {exc}") from None
        index = cls(manifest["dim"], manifest["metric"], config.with_runtime(overrides), path=directory)
        index.seq = int(manifest["seq"])
        index._generation = int(manifest["generation"])
        entries = manifest["files"]
        try:
            if not manifest["built"]:
                index._pending = (files.load_npy(directory, entries["pending_ids"]).astype(np.int64),
                                  files.load_npy(directory, entries["pending_vectors"]).astype(np.float32))
                index._ids = np.sort(index._pending[0])
                return index
            scale = files.load_npy(directory, entries["scale"]) if "scale" in entries else None
            index._codec = Codec(manifest["dtype"], index.dim, scale)
            lists = files.load_npy(directory, entries["lists"]).astype(np.int64)
            head_vectors = files.load_npy(directory, entries["heads"])
            head_ids = files.load_npy(directory, entries["head_ids"])
            index._ids = files.load_npy(directory, entries["ids"]).astype(np.int64)
            for key in ("head_index", "postings"):
                problem = files.check_file(directory, entries[key])
                if problem:
                    raise CorruptIndex(problem)
        except KeyError as exc:
            raise CorruptIndex(f"SPANN manifest in {directory} lacks the file entry {exc}") from None
        except InvalidArgument as exc:
            raise CorruptIndex(f"SPANN index in {directory}: {exc}") from None
        postings_path = directory / entries["postings"]["name"]
        problems = check_directory(lists, postings_path.stat().st_size, index._codec)
        if len(lists) != len(head_ids):
            problems.append(f"list directory has {len(lists)} rows for {len(head_ids)} heads")
        if problems:
            raise CorruptIndex(f"SPANN index in {directory}: " + "; ".join(problems))
        heads = HeadIndex.read(index.dim, index.metric, head_vectors, head_ids,
                               directory / entries["head_index"]["name"],
                               flat_max=config.flat_heads_max, scan_max=config.scan_heads_max,
                               hnsw_m=config.hnsw_m,
                               ef_construction=config.ef_construction)
        index._open_generation(manifest, heads, lists)
        return index

    @staticmethod
    def verify(directory: Path | str) -> list[str]:
        """Every problem of the index files in `directory` (empty when sound): manifest, each
        file's size and checksum, the list directory against the posting file, each list's CRC32C."""
        directory = Path(directory)
        try:
            manifest = files.read_manifest(directory)
        except CorruptIndex as exc:
            return [str(exc)]
        problems = [p for entry in manifest["files"].values() if (p := files.check_file(directory, entry))]
        if problems or not manifest["built"]:
            return problems
        entries = manifest["files"]
        lists = np.load(directory / entries["lists"]["name"])
        scale = np.load(directory / entries["scale"]["name"]) if "scale" in entries else None
        codec = Codec(manifest["dtype"], manifest["dim"], scale)
        problems += verify_postings(directory / entries["postings"]["name"], lists, codec)
        counts = manifest["counts"]
        if len(lists) != counts["heads"]:
            problems.append(f"list directory has {len(lists)} rows, the manifest counts {counts['heads']} heads")
        if int(lists[:, COUNT].sum()) != counts["entries"]:
            problems.append(f"lists hold {int(lists[:, COUNT].sum())} entries, the manifest counts {counts['entries']}")
        n_ids = len(np.load(directory / entries["ids"]["name"]))
        if n_ids != counts["vectors"]:
            problems.append(f"{n_ids} live ids stored, the manifest counts {counts['vectors']}")
        return problems

    def close(self) -> None:
        """Close the posting file; remove the directory if the index made it itself."""
        with self._lock.write():
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            self._closed = True
            if self._cleanup is not None:
                self._cleanup()

    def __enter__(self) -> SpannIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ================================================================== checks
    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition(f"the SPANN index in {self.path} is closed")

    def _check_batch(self, ids: Any, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidArgument(f"vectors have shape {vectors.shape}, the index expects (n, {self.dim})")
        ids = np.ascontiguousarray(ids, dtype=np.int64).ravel()
        if len(ids) != len(vectors):
            raise InvalidArgument(f"{len(ids)} ids for {len(vectors)} vectors")
        if not np.isfinite(vectors).all():
            raise InvalidArgument("vectors contain NaN or infinite values")
        return ids, vectors

    def _check_new_ids(self, ids: np.ndarray) -> None:
        unique = np.unique(ids)
        if len(unique) != len(ids):
            raise InvalidArgument(f"ids repeat within the batch, e.g. {_first_repeat(ids)}")
        for existing, what in ((self._ids, "is already in the index"), (self._tombstones, "was deleted")):
            clash = unique[_contains(existing, unique)]
            if len(clash):
                raise InvalidArgument(f"id {int(clash[0])} {what}; ids are never reused")

    def _without_held(self, ids: np.ndarray, vectors: np.ndarray) -> Posting:
        """The batch less the ids the index holds already with the same stored vector; InvalidArgument
        for a held id with another vector (ids are never reused)."""
        held = _contains(self._ids, ids)
        if not held.any():
            return ids, vectors
        stored, found = self.stored_vectors(ids[held])
        new = vectors[held]
        same = (stored == new).all(axis=1)  # heads and in-memory entries hold the exact vector
        if self._codec.dtype != "float32":  # posting entries hold the codec's form
            same |= (stored == self._codec.decode(self._codec.encode(new))).all(axis=1)
        same &= found
        if not same.all():
            clash = int(ids[held][~same][0])
            raise InvalidArgument(f"id {clash} is already in the index with another vector; ids are never reused")
        return ids[~held], vectors[~held]

    def stored_vectors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vectors (n, d) float32 the index holds for `ids` (n,) and a mask (n,) of those found:
        from the exact buffer, the heads, the deltas, else one pass over the posting file (a replay
        check after a crash, not a query path)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        sources: list[Callable[[], Iterator[Posting]]] = [lambda: iter([self._pending])]
        if self._built:
            sources.append(lambda: iter([(self._heads.ids, self._heads.vectors)]))
            sources.append(lambda: iter(self._delta.values()))
            sources.append(self._all_on_disk)
        for source in sources:
            for held_ids, held_vectors in source():
                want = ~found
                if not want.any():
                    return out, found
                if not len(held_ids):
                    continue
                order = np.argsort(held_ids, kind="stable")
                sorted_ids = held_ids[order]
                hit = want & _contains(sorted_ids, ids)
                if hit.any():
                    out[hit] = held_vectors[order[np.searchsorted(sorted_ids, ids[hit])]]
                    found |= hit
        return out, found

    def _all_on_disk(self) -> Iterator[Posting]:
        if self._reader is None:
            return
        on_disk = np.flatnonzero(self._on_disk)
        for start in range(0, len(on_disk), _WRITE_CHUNK):
            ids, vectors, _ = self._reader.read_concat(on_disk[start: start + _WRITE_CHUNK])
            yield ids, vectors

    def _check_queries(self, queries: Any) -> np.ndarray:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise InvalidArgument(f"query has shape {queries.shape}, the index expects dimension {self.dim}")
        if not np.isfinite(queries).all():
            raise InvalidArgument("query contains NaN or infinite values")
        return queries


# ====================================================================== helpers
def _contains(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mask (n,) bool: which of ids (n,) are in sorted_ids (m,): `sorted_member`, set first."""
    return sorted_member(ids, sorted_ids)


def _member(ids: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Mask (n,) bool: which of ids (n,) occur in others (m,), unsorted; cheap for small arrays."""
    if len(ids) * len(others) <= 4096:
        return (ids[:, None] == others[None, :]).any(axis=1)
    return np.isin(ids, others)


def _merge_sorted(sorted_ids: np.ndarray, new: np.ndarray) -> np.ndarray:
    """sorted_ids (m,) with new (n,) ids (absent from it) inserted, still sorted."""
    new = np.sort(new)
    return np.insert(sorted_ids, np.searchsorted(sorted_ids, new), new)


def _sorted_ids(allowed: np.ndarray | None) -> np.ndarray | None:
    if allowed is None:
        return None
    allowed = np.asarray(allowed, dtype=np.int64).ravel()
    if len(allowed) > 1 and (allowed[1:] < allowed[:-1]).any():
        allowed = np.sort(allowed)
    return allowed


def _first_repeat(ids: np.ndarray) -> int:
    values, counts = np.unique(ids, return_counts=True)
    return int(values[counts > 1][0])


def _manifest_or_none(directory: Path) -> dict[str, Any] | None:
    try:
        return files.read_manifest(directory)
    except CorruptIndex:
        return None


def verify(directory: Path | str) -> list[str]:
    """Every problem of the SPANN index files in `directory`; empty when they are sound."""
    return SpannIndex.verify(directory)


