"""The learned-sparse first stage: a Seismic index with a small exact delta and tombstones.

`SparseIndex` plays the `VectorIndex` role (`lamina.index.base`) over sparse inputs:

- `add` puts vectors into a delta that is searched exactly (over the forward rows of recent
  additions, or term at a time once searches have paid for its inverted index); `compact`
  (automatic once the delta outgrows max(delta_limit, delta_fraction * indexed rows))
  rebuilds the static Seismic structure (`build.build_seismic`) from every live vector, so
  rebuild work stays proportional to growth. Adding an id the index already holds replaces
  its vector.
- `delete` tombstones indexed rows (and drops delta rows at once); tombstones are excluded
  at search time and dropped at the next compaction (automatic past a quarter of the rows).
- `search` merges the approximate Seismic top-k of the indexed rows with the exact top-k
  of the delta. An `allowed` filter that leaves at most `brute_force_rows` indexed rows
  is answered exactly over those rows, since pruned posting lists may not reach them.
- A query whose cost, its terms' full posting lists plus one per indexed row, is at most
  `exact_postings` is answered exactly, term at a time, from an exact inverted index of the
  indexed rows, built in memory from the forward index at the first search that may use it
  (when it holds at most `EXACT_INDEX_LIMIT` entries and fewer rows than `exact_postings`).
  On a small collection this beats the Seismic walk: on Cranfield (1,400 documents, ~8,600
  postings a query) it takes ~17 µs in the kernel, where the walk scores hundreds of forward
  rows at ~330 ns each.
- `save` / `load`: a few .npy files plus `sparse.json` (format, vocabulary size, config,
  counts); `load(mmap=True)` maps the large arrays read-only.

Concurrency: searches may run in parallel threads (the kernels release the GIL and each
thread has its own scratch buffers); writes (`add`, `delete`, `compact`) must not run
concurrently with anything else, the caller serialises them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamina.index.base import CheckedParams
from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.sparse.batch import SparseBatch, canonical_batch, check_queries
from lamina.index.sparse.build import CHECKPOINT, F16_MAX, BuildParams, SeismicArrays, build_seismic
from lamina.index.sparse.search import (exact_inverted_index, exact_rows_search, exact_terms_search, max_list_blocks,
                                        merge_topk, seismic_search)

FORMAT_VERSION = 1
_PRUNING = ("global", "fixed")
_SEARCH_PARAMS = ("query_cut", "heap_factor", "exact_postings")
EXACT_INDEX_LIMIT = 1 << 22  # entries (6 bytes each) up to which the exact inverted index is kept
DELTA_INDEX_AFTER = 8  # searches after a write before the delta gets its inverted index
_TOMBSTONE_COMPACT_FRACTION = 0.25
_STAMP_LIMIT = int(np.iinfo(np.int32).max)
_NO_FILTER = np.empty(0, np.uint8)  # `eligible` of an unfiltered search: every row
_NO_BUDGET = int(np.iinfo(np.int64).max)  # a term-at-a-time budget every query fits


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InvalidArgument(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidArgument(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _positive_float(name: str, value: Any, *, at_most: float | None = None, infinite: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or np.isnan(value) or value <= 0 or (np.isinf(value) and not infinite) \
            or (at_most is not None and value > at_most):
        kind = "a number" if infinite else "a finite number"
        bound = f" and at most {at_most:g}" if at_most is not None else ""
        raise InvalidArgument(f"{name} must be {kind} > 0{bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SeismicConfig:
    """Build and search parameters of a `SparseIndex` (defaults after Seismic's guidelines).

    Build: `n_postings` postings kept per list on average (`pruning="global"`: one weight
    threshold over all lists, each list capped at `max_fraction * n_postings`) or at most
    (`pruning="fixed"`); `centroid_fraction` blocks per posting (a list of L postings is
    split into about centroid_fraction * L blocks); `doc_cut` coordinates per vector used
    for clustering; `summary_energy` fraction of a block summary's L1 mass kept.
    Search defaults: `query_cut` query terms whose lists are visited, `heap_factor` (a block
    is skipped when its summary score < k-th score / heap_factor; inf never skips a block).
    `exact_postings`: a query whose terms' full posting lists hold at most this many entries, plus
    one per indexed row, is answered exactly, term at a time (0: never; see the module notes).
    Updates: the delta is compacted once it holds more than
    max(`delta_limit`, `delta_fraction` * indexed rows); a filter leaving at most
    `brute_force_rows` indexed rows is answered exactly. `build_threads` (0: every core)
    build slices of the vocabulary in parallel; `seed` fixes the random centroids.
    """

    n_postings: int = 3500
    pruning: str = "global"
    max_fraction: float = 1.5
    centroid_fraction: float = 0.1
    doc_cut: int = 15
    summary_energy: float = 0.4
    query_cut: int = 10
    heap_factor: float = 1.0
    delta_limit: int = 10_000
    delta_fraction: float = 0.25
    brute_force_rows: int = 20_000
    exact_postings: int = 65_536
    build_threads: int = 0
    seed: int = 1234

    def __post_init__(self) -> None:
        _positive_int("n_postings", self.n_postings)
        if self.pruning not in _PRUNING:
            raise InvalidArgument(f"pruning must be one of {', '.join(_PRUNING)}, got {self.pruning!r}")
        _positive_float("max_fraction", self.max_fraction)
        _positive_float("centroid_fraction", self.centroid_fraction, at_most=1.0)
        _positive_int("doc_cut", self.doc_cut)
        _positive_float("summary_energy", self.summary_energy, at_most=1.0)
        _positive_int("query_cut", self.query_cut)
        _positive_float("heap_factor", self.heap_factor, infinite=True)
        _positive_int("delta_limit", self.delta_limit)
        _positive_float("delta_fraction", self.delta_fraction)
        for name in ("brute_force_rows", "exact_postings", "build_threads", "seed"):
            _non_negative_int(name, getattr(self, name))

    @property
    def threads(self) -> int:
        """Threads a build uses: build_threads, or every core when it is 0."""
        return self.build_threads or os.cpu_count() or 1

    def build_params(self) -> BuildParams:
        return BuildParams(self.n_postings, self.pruning, self.max_fraction, self.centroid_fraction,
                           self.doc_cut, self.summary_energy, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeismicConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidArgument(f"unknown sparse index option(s): {', '.join(sorted(unknown))}")
        return cls(**data)


class _Scratch(threading.local):
    """Per-thread query buffers: a dense query vector, the visited stamps of the rows, block estimates."""

    def __init__(self) -> None:
        self.dense = np.zeros(0, np.float32)
        self.visited = np.zeros(0, np.int32)
        self.stamp = 1
        self.estimates = np.zeros(0, np.float64)
        self.scores = np.zeros(0, np.float64)  # a score per indexed row (term-at-a-time search)
        self.delta_scores = np.zeros(0, np.float64)  # the same for the delta's rows


class SparseIndex:
    """A Seismic index over sparse vectors with int64 ids, a delta and tombstones."""

    FILES = ("sparse.json", *(f"{name}.npy" for name in SeismicArrays.__dataclass_fields__), "tombstones.npy",
             "delta_ids.npy", "delta_indptr.npy", "delta_indices.npy", "delta_values.npy")

    def __init__(self, vocab_size: int, config: SeismicConfig | None = None) -> None:
        self.vocab_size = _positive_int("vocab_size", vocab_size)
        self.config = config or SeismicConfig()
        self._main = SeismicArrays.empty(self.vocab_size)
        self._alive = np.ones(0, dtype=bool)
        self._n_dead = 0
        self._delta_ids = np.empty(0, np.int64)
        self._delta = SparseBatch.empty()  # values already rounded to float16, like the forward index
        self._delta_bits = np.empty(0, np.uint16)  # the same values as float16 bits, for the kernels
        self._delta_terms: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see _search_delta
        self._delta_searches = 0
        self._scratch = _Scratch()
        self._blocks_of: SeismicArrays | None = None  # the arrays _max_blocks was measured on
        self._max_blocks = 0
        # (the static arrays it was built from, its arrays): the exact inverted index
        self._exact: tuple[SeismicArrays, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._search_params = CheckedParams(self._check_search_params)

    # ------------------------------------------------------------------ VectorIndex
    def __len__(self) -> int:
        return self._main.n_rows - self._n_dead + len(self._delta_ids)

    @property
    def n_indexed(self) -> int:
        """Live rows in the static Seismic structure (the rest are in the delta)."""
        return self._main.n_rows - self._n_dead

    @property
    def n_delta(self) -> int:
        return len(self._delta_ids)

    def add(self, ids: np.ndarray, vectors: SparseBatch) -> None:
        """Add sparse vectors under ids (n,) int64; an id already held is replaced.

        Raises InvalidArgument for duplicate ids in one call, a count mismatch, NaN,
        infinite, negative or too large (> float16 max) weights, or a term outside the vocabulary.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = canonical_batch(vectors, self.vocab_size, what="document")
        if len(ids) != len(vectors):
            raise InvalidArgument(f"{len(ids)} ids for {len(vectors)} sparse vectors")
        if not len(ids):
            return
        if len(np.unique(ids)) != len(ids):
            raise InvalidArgument("duplicate ids in one add call")
        too_large = vectors.values > F16_MAX
        if too_large.any():
            raise InvalidArgument(f"sparse weight {float(vectors.values[np.argmax(too_large)]):g} exceeds the "
                                  f"float16 range of the forward index ({F16_MAX:g})")
        self._remove(ids)
        rounded = vectors.values.astype(np.float16).astype(np.float32)
        self._set_delta(SparseBatch.concat([self._delta, SparseBatch(vectors.indptr, vectors.indices, rounded)]),
                        np.concatenate([self._delta_ids, ids]))
        if len(self._delta_ids) > max(self.config.delta_limit, self.config.delta_fraction * self.n_indexed):
            self.compact()

    def terms(self, ids: np.ndarray) -> SparseBatch:
        """The term ids of each id's vector, (n rows) with values 1, an empty row for an id not held
        (what a removal from `TenantCorpusStats` needs)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        main, delta = self._main, self._delta
        lengths = np.zeros(len(ids), np.int64)
        starts = np.zeros(len(ids), np.int64)
        source = np.zeros(len(ids), np.int8)  # 0 none, 1 main, 2 delta
        if main.n_rows and len(ids):
            pos = np.minimum(np.searchsorted(main.doc_ids, ids), main.n_rows - 1)
            hit = (main.doc_ids[pos] == ids) & self._alive[pos]
            starts[hit], lengths[hit], source[hit] = main.fwd_indptr[pos[hit]], np.diff(main.fwd_indptr)[pos[hit]], 1
        if len(self._delta_ids) and len(ids):
            order = np.argsort(self._delta_ids, kind="stable")
            sorted_ids = self._delta_ids[order]
            pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
            hit = (sorted_ids[pos] == ids) & (source == 0)
            rows = order[pos[hit]]
            starts[hit], lengths[hit], source[hit] = delta.indptr[rows], np.diff(delta.indptr)[rows], 2
        indptr = np.zeros(len(ids) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        offsets = np.repeat(starts - indptr[:-1], lengths) + np.arange(int(indptr[-1]))
        from_main = np.repeat(source == 1, lengths)
        indices = np.empty(int(indptr[-1]), np.int32)
        indices[from_main] = main.fwd_indices[offsets[from_main]]
        indices[~from_main] = delta.indices[offsets[~from_main]]
        return SparseBatch(indptr, indices, np.ones(len(indices), np.float32))

    def delete(self, ids: np.ndarray) -> None:
        """Remove ids; ids the index does not hold are ignored. Compacts past a quarter tombstoned."""
        self._remove(ids)
        if self._n_dead > _TOMBSTONE_COMPACT_FRACTION * max(self._main.n_rows, 1):
            self.compact()

    def _remove(self, ids: np.ndarray) -> None:
        """Tombstone indexed rows of ids and drop their delta rows."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        if not len(ids):
            return
        if self._main.n_rows:
            pos = rows_of(self._main.doc_ids, ids)
            pos = pos[self._alive[pos]]
            if len(pos):
                self._alive[pos] = False
                self._n_dead += len(pos)
        if len(self._delta_ids):
            gone = np.isin(self._delta_ids, ids)
            if gone.any():
                keep = np.flatnonzero(~gone)
                self._set_delta(self._delta.take(keep), self._delta_ids[keep])

    def compact(self) -> None:
        """Rebuild the Seismic structure from every live vector: merges the delta, drops tombstones."""
        if not len(self._delta_ids) and not self._n_dead:
            return
        main = self._main
        live = np.flatnonzero(self._alive)
        forward = SparseBatch(main.fwd_indptr, main.fwd_indices, main.fwd_values.astype(np.float32)).take(live)
        batch = SparseBatch.concat([forward, self._delta])
        ids = np.concatenate([main.doc_ids[live], self._delta_ids])
        self._main = build_seismic(ids, batch.indptr, batch.indices, batch.values, self.vocab_size,
                                   self.config.build_params(), threads=self.config.threads)
        self._alive = np.ones(self._main.n_rows, dtype=bool)
        self._n_dead = 0
        self._set_delta(SparseBatch.empty(), np.empty(0, np.int64))

    def _set_delta(self, delta: SparseBatch, ids: np.ndarray) -> None:
        self._delta, self._delta_ids = delta, ids
        self._delta_bits = delta.values.astype(np.float16).view(np.uint16)
        self._delta_terms = None  # the delta's exact inverted index, built again once searches pay for it
        self._delta_searches = 0

    def _search_delta(self, queries: SparseBatch, k: int, allowed: np.ndarray | None,
                      scratch: _Scratch) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of the delta: term at a time once the delta has an inverted index, else by
        scanning its forward rows.

        The index costs a sort of the delta's entries, ~40 ns each, and a query then saves a scan of
        every entry (~3 ns each, a cache miss on the query's weights) for a walk of its own terms'
        lists: it is built at the DELTA_INDEX_AFTER-th search after a write (ski rental), so that a
        stream of writes each followed by a search never pays for it.
        """
        delta = self._delta
        eligible = None if allowed is None else np.isin(self._delta_ids, allowed)
        self._delta_searches += 1
        terms = self._delta_terms
        if terms is None and self._delta_searches >= DELTA_INDEX_AFTER and len(delta.indices) <= EXACT_INDEX_LIMIT:
            terms = exact_inverted_index(delta.indptr, delta.indices, self._delta_bits, self.vocab_size)
            self._delta_terms = terms
        if terms is not None:
            if len(scratch.delta_scores) < len(self._delta_ids):
                scratch.delta_scores = np.zeros(len(self._delta_ids), np.float64)
            scores, ids, _ = exact_terms_search(  # exact both ways: no query is left to the row scan
                queries.indptr, queries.indices, queries.values, k, _NO_BUDGET, *terms, self._delta_ids,
                _NO_FILTER if eligible is None else eligible.view(np.uint8),
                scratch.delta_scores[: len(self._delta_ids)])
            return scores, ids
        rows = np.arange(len(self._delta_ids), dtype=np.int64)
        if eligible is not None:
            rows = rows[eligible]
        return exact_rows_search(queries.indptr, queries.indices, queries.values, k, rows, delta.indptr,
                                 delta.indices, self._delta_bits, self._delta_ids, scratch.dense)

    def search(
        self,
        queries: SparseBatch,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of each sparse query: scores (nq, k) float32 and ids (nq, k) int64 (-1 padded).

        `allowed` (int64 ids) restricts the results to those ids. `params`: `query_cut`
        (positive int), `heap_factor` (> 0; a block is skipped when its summary score is
        below k-th score / heap_factor; inf never skips) and `exact_postings` (int >= 0; a
        query whose terms' lists hold at most this many entries, plus one per indexed row, is
        answered exactly) override the config for this call.
        Raises InvalidArgument for k <= 0, an unknown or bad parameter, or a bad query: a
        query with no terms ("query i has no terms"), a NaN, infinite or negative weight,
        or a term id outside the vocabulary.
        """
        k = _positive_int("k", k)
        queries = check_queries(queries, self.vocab_size)
        query_cut, heap_factor, exact_postings = self._search_params(params)
        scratch = self._scratch_buffers(len(queries))
        main = self._main
        parts_scores: list[np.ndarray] = []
        parts_ids: list[np.ndarray] = []
        allowed_ids = None if allowed is None else np.asarray(allowed, dtype=np.int64).reshape(-1)
        if self.n_indexed:
            eligible = self._eligible(allowed_ids)
            fwd_bits = main.fwd_values.view(np.uint16)
            n_eligible = main.n_rows if eligible is None else int(np.count_nonzero(eligible))
            if allowed_ids is not None and n_eligible <= self.config.brute_force_rows:
                rows = np.flatnonzero(eligible).astype(np.int64)
                scores, ids = exact_rows_search(queries.indptr, queries.indices, queries.values, k, rows,
                                                main.fwd_indptr, main.fwd_indices, fwd_bits,
                                                main.doc_ids, scratch.dense)
            else:
                eligible_u8 = _NO_FILTER if eligible is None else eligible.view(np.uint8)
                scores, ids = self._search_indexed(queries, k, query_cut, heap_factor, exact_postings,
                                                   eligible_u8, scratch)
            parts_scores.append(scores)
            parts_ids.append(ids)
        if len(self._delta_ids):
            scores, ids = self._search_delta(queries, k, allowed_ids, scratch)
            parts_scores.append(scores)
            parts_ids.append(ids)
        if not parts_scores:
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        if len(parts_scores) == 1:
            return parts_scores[0], parts_ids[0]
        return merge_topk(parts_scores, parts_ids, k)

    def _search_indexed(self, queries: SparseBatch, k: int, query_cut: int, heap_factor: float, exact_postings: int,
                        eligible: np.ndarray, scratch: _Scratch) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of the indexed rows: exactly, term at a time, for the queries that cost at most
        `exact_postings` (their lists' entries plus one per row); the Seismic walk for the others."""
        main = self._main
        exact = self._exact_index(exact_postings)
        if exact is not None:
            if len(scratch.scores) != main.n_rows:
                scratch.scores = np.zeros(main.n_rows, np.float64)
            scores, ids, done = exact_terms_search(queries.indptr, queries.indices, queries.values, k, exact_postings,
                                                   *exact, main.doc_ids, eligible, scratch.scores)
            if done.all():
                return scores, ids
            rest = np.flatnonzero(~done)
            walk_rows = queries.take(rest)
        else:
            walk_rows = queries
        walked = seismic_search(
            walk_rows.indptr, walk_rows.indices, walk_rows.values, k, query_cut, heap_factor,
            main.term_blocks, main.block_ptr, main.postings, main.term_summaries, main.summary_terms,
            main.summary_counts, main.summary_checkpoints, main.summary_blocks, main.summary_codes,
            main.summary_scales, main.fwd_indptr, main.fwd_indices, main.fwd_values.view(np.uint16), main.doc_ids,
            eligible, scratch.dense, scratch.visited, scratch.stamp, scratch.estimates)
        scratch.stamp = walked[2]
        if exact is None:
            return walked[0], walked[1]
        scores[rest], ids[rest] = walked[0], walked[1]
        return scores, ids

    def _exact_index_used(self, exact_postings: int) -> bool:
        """Whether a query may take the exact path: it is on, the index small enough to keep, and a
        query may cost little enough (every query costs at least one per row)."""
        main = self._main
        return 0 < main.n_rows < exact_postings and len(main.fwd_indices) <= EXACT_INDEX_LIMIT

    def _exact_index(self, exact_postings: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The exact inverted index of the indexed rows (built once per static structure), or
        None when no query may take the exact path (`_exact_index_used`)."""
        main = self._main
        if not self._exact_index_used(exact_postings):
            return None
        built = self._exact
        if built is None or built[0] is not main:
            built = (main, exact_inverted_index(main.fwd_indptr, main.fwd_indices, main.fwd_values.view(np.uint16),
                                                self.vocab_size))
            self._exact = built  # one assignment: a concurrent search never pairs arrays of two builds
        return built[1]

    def _check_search_params(self, params: Mapping[str, Any] | None) -> tuple[int, float, int]:
        """(query_cut, heap_factor, exact_postings) for a call (`_search_params` remembers the answer)."""
        params = dict(params or {})
        unknown = set(params) - set(_SEARCH_PARAMS)
        if unknown:
            raise InvalidArgument(f"unknown search parameter(s): {', '.join(sorted(unknown))}; "
                                  f"the sparse index takes {', '.join(_SEARCH_PARAMS)}")
        query_cut = _positive_int("query_cut", params.get("query_cut", self.config.query_cut))
        heap_factor = _positive_float("heap_factor", params.get("heap_factor", self.config.heap_factor), infinite=True)
        exact_postings = _non_negative_int("exact_postings", params.get("exact_postings", self.config.exact_postings))
        return query_cut, heap_factor, exact_postings

    def _eligible(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """(n,) bool mask of the indexed rows a search may return, or None for all of them."""
        if allowed is None:
            return self._alive if self._n_dead else None
        mask = np.zeros(self._main.n_rows, dtype=bool)
        mask[rows_of(self._main.doc_ids, allowed)] = True
        return mask & self._alive

    def _scratch_buffers(self, n_queries: int) -> _Scratch:
        """This thread's buffers, sized for the current index; each query takes one stamp."""
        scratch = self._scratch
        if scratch.dense.shape[0] != self.vocab_size:
            scratch.dense = np.zeros(self.vocab_size, np.float32)
        n = self._main.n_rows
        if scratch.visited.shape[0] != n or scratch.stamp + n_queries >= _STAMP_LIMIT:
            scratch.visited = np.zeros(n, np.int32)
            scratch.stamp = 1
        main = self._main
        if self._blocks_of is not main:  # the static part changed (compaction, load): measure it once
            self._max_blocks = max_list_blocks(main.term_blocks)
            self._blocks_of = main  # last: a concurrent search never pairs it with a stale size
        if scratch.estimates.shape[0] < self._max_blocks:
            scratch.estimates = np.zeros(self._max_blocks, np.float64)
        return scratch

    def memory_bytes(self) -> int:
        """Bytes of the index arrays (forward index, postings, summaries, delta, tombstones)."""
        delta = self._delta
        # the exact inverted index, built at the first search that may use it
        used = self._exact_index_used(self.config.exact_postings)
        exact = 6 * len(self._main.fwd_indices) + 8 * (self.vocab_size + 1) if used else 0
        delta_terms = 0 if self._delta_terms is None else sum(a.nbytes for a in self._delta_terms)
        return (self._main.nbytes() + self._alive.nbytes + self._delta_ids.nbytes + delta.indptr.nbytes
                + delta.indices.nbytes + delta.values.nbytes + self._delta_bits.nbytes + exact + delta_terms)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        """Write the index's files (`FILES`) into `directory`; the caller publishes the snapshot."""
        directory = Path(directory)
        for name, array in self._main.arrays().items():
            np.save(directory / f"{name}.npy", array)
        np.save(directory / "tombstones.npy", self._main.doc_ids[~self._alive])
        np.save(directory / "delta_ids.npy", self._delta_ids)
        np.save(directory / "delta_indptr.npy", self._delta.indptr)
        np.save(directory / "delta_indices.npy", self._delta.indices)
        np.save(directory / "delta_values.npy", self._delta.values.astype(np.float16))
        meta = {"format": FORMAT_VERSION, "kind": "seismic", "vocab_size": self.vocab_size,
                "config": self.config.to_dict(), "n_rows": self._main.n_rows, "n_blocks": self._main.n_blocks,
                "n_dead": self._n_dead, "n_delta": len(self._delta_ids)}
        (directory / "sparse.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path, vocab_size: int | None = None, *, mmap: bool = False) -> SparseIndex:
        """Load a snapshot written by `save`; with mmap=True the static arrays are mapped read-only.

        Raises CorruptIndex if a file is missing or unreadable, the arrays disagree with
        each other or with the manifest, or `vocab_size` is given and differs.
        """
        directory = Path(directory)
        mode = "r" if mmap else None
        try:
            meta = json.loads((directory / "sparse.json").read_text())
            arrays = {name: np.load(directory / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
                      for name in SeismicArrays.__dataclass_fields__}
            tombstones = np.load(directory / "tombstones.npy", allow_pickle=False)
            delta_ids = np.load(directory / "delta_ids.npy", allow_pickle=False)
            delta = SparseBatch(np.load(directory / "delta_indptr.npy", allow_pickle=False),
                                np.load(directory / "delta_indices.npy", allow_pickle=False),
                                np.load(directory / "delta_values.npy", allow_pickle=False).astype(np.float32))
            config = SeismicConfig.from_dict(meta["config"])
        except Exception as exc:  # OSError, ValueError, KeyError, JSONDecodeError, InvalidArgument, ...
            raise CorruptIndex(f"sparse index in {directory} is unreadable: {exc}") from None
        if meta.get("format") != FORMAT_VERSION or meta.get("kind") != "seismic":
            raise CorruptIndex(f"sparse index in {directory} has format {meta.get('format')!r}, "
                               f"this version reads {FORMAT_VERSION}")
        if vocab_size is not None and meta["vocab_size"] != vocab_size:
            raise CorruptIndex(f"sparse index in {directory} was built for vocabulary size {meta['vocab_size']}, "
                               f"not {vocab_size}")
        main = SeismicArrays(**arrays)
        _check_arrays(main, int(meta["vocab_size"]), directory)
        if main.n_rows != meta["n_rows"] or len(delta_ids) != meta["n_delta"] or len(delta) != len(delta_ids) \
                or len(tombstones) != meta["n_dead"]:
            raise CorruptIndex(f"sparse index in {directory} does not match its manifest {meta}")
        self = cls(int(meta["vocab_size"]), config)
        self._main = main
        self._alive = ~np.isin(np.asarray(main.doc_ids), tombstones)
        self._n_dead = int(np.count_nonzero(~self._alive))
        self._set_delta(delta, delta_ids.astype(np.int64))
        return self


def rows_of(doc_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows (m,) int64 of the `ids` (any order) present in the increasing `doc_ids` (n,) int64."""
    pos = np.searchsorted(doc_ids, ids)
    found = pos < len(doc_ids)
    pos, wanted = pos[found], ids[found]
    return pos[doc_ids[pos] == wanted].astype(np.int64)


def _check_arrays(main: SeismicArrays, vocab_size: int, directory: Path) -> None:
    """Cheap consistency checks (lengths, dtypes, end pointers) of loaded arrays."""
    max_blocks = int(np.diff(main.term_blocks).max(initial=0)) if len(main.term_blocks) > 1 else 0
    expected = {
        "doc_ids": (np.int64,), "fwd_indptr": (np.int64,), "fwd_values": (np.float16,),
        "fwd_indices": (np.uint16 if vocab_size <= (1 << 16) else np.int32,),
        "term_blocks": (np.int64,), "block_ptr": (np.int64,), "postings": (np.int32,),
        "term_summaries": (np.int64,), "summary_checkpoints": (np.int64,),
        "summary_terms": (np.uint16 if vocab_size <= (1 << 16) else np.int32,),
        "summary_counts": (np.uint16,) if max_blocks < (1 << 16) else (np.int32,),
        "summary_blocks": (np.uint16,) if max_blocks <= (1 << 16) else (np.int32,),
        "summary_codes": (np.uint8,), "summary_scales": (np.float32,),
    }
    for name, dtypes in expected.items():
        array = getattr(main, name)
        if array.dtype not in dtypes or array.ndim != 1:
            raise CorruptIndex(f"sparse index in {directory}: {name} is {array.dtype}{array.shape}, "
                               f"expected 1-d {dtypes[0].__name__}")
    n, nb = main.n_rows, main.n_blocks
    problems = []
    if len(main.fwd_indptr) != n + 1 or main.fwd_indptr[-1] != len(main.fwd_indices) \
            or len(main.fwd_values) != len(main.fwd_indices):
        problems.append("forward index lengths")
    if len(main.term_blocks) != vocab_size + 1 or main.term_blocks[-1] != nb:
        problems.append("term_blocks")
    if main.block_ptr[-1] != len(main.postings) or len(main.summary_scales) != nb \
            or len(main.term_summaries) != vocab_size + 1 or main.term_summaries[-1] != len(main.summary_terms) \
            or len(main.summary_counts) != len(main.summary_terms) \
            or len(main.summary_codes) != len(main.summary_blocks) \
            or len(main.summary_checkpoints) != len(main.summary_terms) // CHECKPOINT + 1:
        problems.append("block and summary lengths")
    last = (len(main.summary_checkpoints) - 1) * CHECKPOINT  # the entries after the last checkpoint end the array
    n_entries = int(main.summary_checkpoints[-1]) + int(main.summary_counts[last:].sum()) if not problems else 0
    if not problems and n_entries != len(main.summary_blocks):
        problems.append("block and summary lengths")
    if len(main.postings) and (int(main.postings.max()) >= n or int(main.postings.min()) < 0):
        problems.append("postings outside the forward index")
    if len(main.fwd_indices) and int(main.fwd_indices.max()) >= vocab_size:
        problems.append("term ids outside the vocabulary")
    if n > 1 and np.any(np.diff(main.doc_ids) <= 0):
        problems.append("doc_ids not increasing")
    if problems:
        raise CorruptIndex(f"sparse index in {directory} is inconsistent: {', '.join(problems)}")
