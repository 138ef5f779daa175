"""Searching a Seismic index, exact scoring and the exact reference: pure functions.

Query processing follows Seismic (Bruch, Nardini, Rulli, Venturini, SIGIR 2024):

- only the `query_cut` largest-weight query terms select posting lists, visited in order
  of decreasing query weight;
- within a list, each block's summary is scored against the query (an upper estimate of
  its documents' scores); once the top-k heap is full, a block is skipped when

        summary_score < kth_score / heap_factor

  and otherwise every not-yet-seen document of the block is scored exactly against the
  full query through the forward index.

Lamina's `heap_factor` follows that formula: 1 skips a block whose estimate cannot beat
the current k-th score, values above 1 skip less (safer, slower), below 1 skip more.
The Rust implementation (`PostingList::search` in TusKANNy/seismic, also pyseismic-lsr)
writes the same test as `summary_score < heap_factor * kth_score`, so its heap_factor h
is Lamina's 1 / h (its recommended 0.7-1.0 is Lamina's 1.0-1.43).

Scores are inner products accumulated in float64 and returned as float32 (larger is
better); only documents sharing at least one term with the query are results, and rows
of the output are padded with score -inf and id -1. Among the documents scored, ties are
broken by smaller id, so equal scores never make the order depend on the visiting order.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from lamina.index.sparse.batch import SparseBatch
from lamina.index.sparse.build import CHECKPOINT
from lamina.index.sparse.kernels import f16_value, heap_drain, heap_push, prefetch, top_k_positions


# ---------------------------------------------------------------------------- helpers
@numba.njit(cache=True, nogil=True)
def _emit(heap_scores: np.ndarray, heap_ids: np.ndarray, size: int, out_scores: np.ndarray,
          out_ids: np.ndarray) -> None:
    """Write the heap best first into out_scores / out_ids (k,), padding with -inf / -1."""
    out_scores[:] = -np.inf
    out_ids[:] = -1
    scores = np.empty(size, np.float64)
    heap_drain(heap_scores, heap_ids, size, scores, out_ids)
    for m in range(size):
        out_scores[m] = scores[m]


@numba.njit(cache=True, nogil=True, inline="always")
def _dot(dense: np.ndarray, fwd_indptr: np.ndarray, fwd_indices: np.ndarray, fwd_bits: np.ndarray, row: int) -> float:
    """The query (dense) . forward row `row`. float32 x float16 is exact in float64; only the
    sums round. Four partial sums (entries 4i, 4i+1, ...) keep four additions in flight instead
    of one chain of dependent ones; the order is fixed, so a row's score never varies."""
    start, stop = fwd_indptr[row], fwd_indptr[row + 1]
    a0 = a1 = a2 = a3 = 0.0
    q = start
    while q + 4 <= stop:
        a0 += np.float64(dense[fwd_indices[q]]) * f16_value(fwd_bits[q])
        a1 += np.float64(dense[fwd_indices[q + 1]]) * f16_value(fwd_bits[q + 1])
        a2 += np.float64(dense[fwd_indices[q + 2]]) * f16_value(fwd_bits[q + 2])
        a3 += np.float64(dense[fwd_indices[q + 3]]) * f16_value(fwd_bits[q + 3])
        q += 4
    while q < stop:
        a0 += np.float64(dense[fwd_indices[q]]) * f16_value(fwd_bits[q])
        q += 1
    return (a0 + a1) + (a2 + a3)


# ---------------------------------------------------------------------------- kernels
def max_list_blocks(term_blocks: np.ndarray) -> int:
    """Blocks of the longest posting list: the size `seismic_search` needs for its estimates."""
    return int(np.diff(term_blocks).max(initial=0)) if len(term_blocks) > 1 else 0


@numba.njit(cache=True, nogil=True)
def block_estimates(q_indices: np.ndarray, q_values: np.ndarray, term: int, term_blocks: np.ndarray,
                    term_summaries: np.ndarray, summary_terms: np.ndarray, summary_counts: np.ndarray,
                    summary_checkpoints: np.ndarray, summary_blocks: np.ndarray, summary_codes: np.ndarray,
                    summary_scales: np.ndarray, out: np.ndarray) -> int:
    """Summary score of every block of `term`'s list for one query (q_indices increasing).

    Finds each query term among the list's coordinates (binary search; the query is sorted,
    so the search range only shrinks) and adds up the entries of the shared ones.
    Writes out[:n_blocks] (float64) and returns n_blocks.
    """
    first_block = term_blocks[term]
    n_blocks = term_blocks[term + 1] - first_block
    out[:n_blocks] = 0.0
    lo, hi = term_summaries[term], term_summaries[term + 1]
    for p in range(q_indices.shape[0]):
        u = q_indices[p]
        a, b = lo, hi
        while a < b:
            mid = (a + b) >> 1
            if summary_terms[mid] < u:
                a = mid + 1
            else:
                b = mid
        lo = a
        if lo == hi:
            break
        if summary_terms[lo] != u:
            continue
        entry = summary_checkpoints[lo // CHECKPOINT]
        for c in range(lo - lo % CHECKPOINT, lo):
            entry += summary_counts[c]
        weight = np.float64(q_values[p])
        for q in range(entry, entry + summary_counts[lo]):
            out[summary_blocks[q]] += weight * summary_codes[q]
    for j in range(n_blocks):
        out[j] *= summary_scales[first_block + j]
    return n_blocks


@numba.njit(cache=True, nogil=True)
def seismic_search(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int, query_cut: int,
                   heap_factor: float, term_blocks: np.ndarray, block_ptr: np.ndarray, postings: np.ndarray,
                   term_summaries: np.ndarray, summary_terms: np.ndarray, summary_counts: np.ndarray,
                   summary_checkpoints: np.ndarray, summary_blocks: np.ndarray, summary_codes: np.ndarray,
                   summary_scales: np.ndarray, fwd_indptr: np.ndarray, fwd_indices: np.ndarray, fwd_bits: np.ndarray,
                   row_ids: np.ndarray, eligible: np.ndarray, dense: np.ndarray, visited: np.ndarray, stamp: int,
                   estimates: np.ndarray):
    """Approximate top-k of each query over a Seismic index (see the module docstring).

    q_*: canonical query CSR (nq rows); the index arrays as in `build.SeismicArrays`, with
    fwd_bits the float16 weights as uint16; row_ids (n,) int64 the id of each forward row;
    eligible (n,) uint8 (0 = skip the row) or empty for all rows.
    The blocks of the first (largest-weight) list are visited best summary first, which fills
    the heap early with good documents (Seismic's `sorted` search); later lists in order.
    Scratch: dense (V,) float32 all zeros, visited (n,) int32 holding values < stamp,
    estimates float64 with room for the blocks of the longest list (`max_list_blocks`).
    Returns scores (nq, k) float32, ids (nq, k) int64 and the next unused stamp.
    """
    nq = q_indptr.shape[0] - 1
    out_scores = np.empty((nq, k), np.float32)
    out_ids = np.empty((nq, k), np.int64)
    heap_scores = np.empty(k, np.float64)
    heap_ids = np.empty(k, np.int64)
    filtered = eligible.shape[0] > 0
    for qi in range(nq):
        s, e = q_indptr[qi], q_indptr[qi + 1]
        for p in range(s, e):
            dense[q_indices[p]] = q_values[p]
        cut_terms = top_k_positions(q_values[s:e], query_cut)
        order = np.empty(0, np.int64)  # blocks of the first list, best estimate first
        size = 0
        for m in range(cut_terms.shape[0]):
            t = q_indices[s + cut_terms[m]]
            if estimates.shape[0] < term_blocks[t + 1] - term_blocks[t]:  # never write past the scratch
                estimates = np.empty(term_blocks[t + 1] - term_blocks[t], np.float64)
            n_blocks = block_estimates(q_indices[s:e], q_values[s:e], t, term_blocks, term_summaries, summary_terms,
                                       summary_counts, summary_checkpoints, summary_blocks, summary_codes,
                                       summary_scales, estimates)
            if m == 0:
                order = top_k_positions(estimates[:n_blocks], n_blocks)
            for jj in range(n_blocks):
                j = order[jj] if m == 0 else jj
                if size == k and estimates[j] < heap_scores[0] / heap_factor:
                    continue
                b = term_blocks[t] + j
                end = block_ptr[b + 1]
                for p in range(block_ptr[b], end):
                    # rows are random: request two postings ahead the row's bounds, one ahead its entries
                    if p + 2 < end:
                        prefetch(fwd_indptr, postings[p + 2])
                        prefetch(visited, postings[p + 2])
                    if p + 1 < end:
                        ahead = fwd_indptr[postings[p + 1]]
                        prefetch(fwd_indices, ahead)
                        prefetch(fwd_bits, ahead)
                    row = postings[p]
                    if visited[row] == stamp:
                        continue
                    visited[row] = stamp
                    if filtered and eligible[row] == 0:
                        continue
                    score = _dot(dense, fwd_indptr, fwd_indices, fwd_bits, row)
                    size = heap_push(heap_scores, heap_ids, size, k, score, row_ids[row])
        _emit(heap_scores, heap_ids, size, out_scores[qi], out_ids[qi])
        for p in range(s, e):
            dense[q_indices[p]] = 0.0
        stamp += 1
    return out_scores, out_ids, stamp


@numba.njit(cache=True, nogil=True)
def exact_rows_search(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int, rows: np.ndarray,
                      fwd_indptr: np.ndarray, fwd_indices: np.ndarray, fwd_bits: np.ndarray,
                      row_ids: np.ndarray, dense: np.ndarray):
    """Exact top-k of each query over the given forward rows (m,) int64 (brute force).

    Used for the delta (recent additions) and for filters that leave few rows. A row is
    a result only if it shares a term with the query. Scratch dense (V,) float32 all zeros.
    Returns scores (nq, k) float32, ids (nq, k) int64.
    """
    nq = q_indptr.shape[0] - 1
    out_scores = np.empty((nq, k), np.float32)
    out_ids = np.empty((nq, k), np.int64)
    heap_scores = np.empty(k, np.float64)
    heap_ids = np.empty(k, np.int64)
    for qi in range(nq):
        s, e = q_indptr[qi], q_indptr[qi + 1]
        for p in range(s, e):
            dense[q_indices[p]] = q_values[p]
        size = 0
        for m in range(rows.shape[0]):
            row = rows[m]
            acc = 0.0
            matched = False
            for q in range(fwd_indptr[row], fwd_indptr[row + 1]):
                x = dense[fwd_indices[q]]
                if x != 0.0:
                    matched = True
                    acc += np.float64(x) * f16_value(fwd_bits[q])
            if matched:
                size = heap_push(heap_scores, heap_ids, size, k, acc, row_ids[row])
        _emit(heap_scores, heap_ids, size, out_scores[qi], out_ids[qi])
        for p in range(s, e):
            dense[q_indices[p]] = 0.0
    return out_scores, out_ids


@numba.njit(cache=True, nogil=True)
def exact_terms_search(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int, budget: int,
                       term_ptr: np.ndarray, term_rows: np.ndarray, term_bits: np.ndarray, row_ids: np.ndarray,
                       eligible: np.ndarray, scores: np.ndarray):
    """Exact top-k, term at a time, of each query whose cost is at most `budget`, over an exact
    inverted index: the entries of term t are term_rows[term_ptr[t]:term_ptr[t + 1]] (int32
    rows) with float16 weights term_bits. A query costs the total length of its terms' lists plus
    one per row (each query clears and ranks every row's score); the others are left undone.

    Every row's score starts at -0.0: any term it shares with the query, even one adding a zero,
    turns it to +0.0 or more (IEEE: -0.0 + +0.0 = +0.0), so the sign tells the rows reached
    from the rest without a mark per row. A zero query weight reaches nothing (a shared term
    counts only with a weight, as in `exact_rows_search`). eligible (n,) uint8 (1: may be
    returned), or empty for every row; scratch scores (n,) float64.
    Returns scores (nq, k) float32, ids (nq, k) int64 (undone rows padded) and done (nq,) bool.
    """
    nq = q_indptr.shape[0] - 1
    n = scores.shape[0]
    filtered = eligible.shape[0] > 0
    out_scores = np.full((nq, k), -np.inf, np.float32)
    out_ids = np.full((nq, k), -1, np.int64)
    done = np.zeros(nq, np.bool_)
    heap_scores = np.empty(k, np.float64)
    heap_ids = np.empty(k, np.int64)
    for qi in range(nq):
        cost = n
        for p in range(q_indptr[qi], q_indptr[qi + 1]):
            cost += term_ptr[q_indices[p] + 1] - term_ptr[q_indices[p]]
        if cost > budget:
            continue
        scores[:] = -0.0
        for p in range(q_indptr[qi], q_indptr[qi + 1]):
            weight = np.float64(q_values[p])
            if weight == 0.0:
                continue
            term = q_indices[p]
            for e in range(term_ptr[term], term_ptr[term + 1]):
                scores[term_rows[e]] += weight * f16_value(term_bits[e])
        size = 0
        for row in range(n):
            score = scores[row]
            if size == k and score < heap_scores[0]:
                continue  # cannot enter the heap: most rows stop here
            if math.copysign(1.0, score) < 0.0 or (filtered and eligible[row] == 0):
                continue  # not reached by the query, or filtered out
            size = heap_push(heap_scores, heap_ids, size, k, score, row_ids[row])
        _emit(heap_scores, heap_ids, size, out_scores[qi], out_ids[qi])
        done[qi] = True
    return out_scores, out_ids, done


def exact_inverted_index(fwd_indptr: np.ndarray, fwd_indices: np.ndarray, fwd_bits: np.ndarray,
                         vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The forward index (rows of (term, float16 bits)) turned term-major: (term_ptr (V + 1,)
    int64, term_rows int32, term_bits uint16), each term's entries in row order."""
    lengths = np.diff(fwd_indptr)
    order = np.argsort(fwd_indices, kind="stable")  # stable: row order within a term
    term_rows = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)[order]
    term_ptr = np.zeros(vocab_size + 1, np.int64)
    np.cumsum(np.bincount(fwd_indices, minlength=vocab_size), out=term_ptr[1:])
    return term_ptr, term_rows, np.ascontiguousarray(fwd_bits[order])


def merge_topk(scores: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-part top-k results (each (nq, k_i)) into the overall top-k (nq, k).

    Ids must be disjoint across parts. Best first, ties by smaller id, padded with -inf / -1.
    """
    all_scores = np.concatenate(scores, axis=1)
    all_ids = np.concatenate(ids, axis=1)
    # padding (-inf, -1) sorts last because its key -score is +inf
    order = np.lexsort((all_ids, -all_scores.astype(np.float64)), axis=-1)[:, :k]
    out_scores = np.take_along_axis(all_scores, order, axis=1)
    out_ids = np.take_along_axis(all_ids, order, axis=1)
    if out_scores.shape[1] < k:
        pad = k - out_scores.shape[1]
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        out_ids = np.pad(out_ids, ((0, 0), (0, pad)), constant_values=-1)
    return out_scores.astype(np.float32), out_ids.astype(np.int64)


# ---------------------------------------------------------------------------- reference
def exact_search(docs: SparseBatch, queries: SparseBatch, k: int, *, ids: np.ndarray | None = None,
                 vocab_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product with scipy.sparse, the reference for tests and benchmarks.

    docs (n rows), queries (nq rows), ids (n,) int64 (default: row numbers). Same contract
    as the index: only documents sharing a term with the query, best first, ties by
    smaller id, padded with -inf / -1; scores accumulated in float64, returned float32.
    """
    import scipy.sparse

    vocab_size = vocab_size or int(max(docs.indices.max(initial=-1), queries.indices.max(initial=-1)) + 1)
    ids = np.arange(len(docs), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
    doc_matrix = scipy.sparse.csr_matrix(
        (docs.values.astype(np.float64), docs.indices, docs.indptr), shape=(len(docs), vocab_size))
    query_matrix = scipy.sparse.csr_matrix(
        (queries.values.astype(np.float64), queries.indices, queries.indptr), shape=(len(queries), vocab_size))
    # a sparse product has an entry exactly where a query and a document share a term
    products = (query_matrix @ doc_matrix.T).tocsr()
    out_scores = np.full((len(queries), k), -np.inf, np.float32)
    out_ids = np.full((len(queries), k), -1, np.int64)
    for qi in range(len(queries)):
        s, e = products.indptr[qi], products.indptr[qi + 1]
        row_scores, row_ids = products.data[s:e], ids[products.indices[s:e]]
        order = np.lexsort((row_ids, -row_scores))[:k]
        out_scores[qi, : len(order)] = row_scores[order]
        out_ids[qi, : len(order)] = row_ids[order]
    return out_scores, out_ids
