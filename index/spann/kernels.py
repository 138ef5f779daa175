"""The search kernel: score the posting lists a query read, straight from the read buffer.

One numba pass over every entry of every list read: the distance to the query from the
stored form (float32, float16 or int8), then a bounded heap of the best k. An entry only
pays for the liveness checks (tombstones, the caller's allowed ids) and the duplicate check
(a vector sits in up to `replicas` lists) when its score would enter the heap, so the common
entry costs its distance and one comparison. Ids that a split moved out of an on-disk list
stay in that list until compaction; they are live vectors, found again elsewhere and
deduplicated like any replica, so the kernel does not need to know about them. Nothing
is gathered or concatenated first: the numpy path this replaces spent most of a query
building index arrays and running `np.unique` over a few thousand candidates.

Ranking is that of `lamina.index.topk`: higher score first, ties to the smaller id. Seeds
(the heads' own scores and the in-memory deltas, scored by the caller) enter first, so that
a replica never replaces its head's exact score with an equal or lower one.
"""

from __future__ import annotations

import numba
import numpy as np

from lamina.index.ids import in_sorted
from lamina.index.sparse.kernels import f16_value
from lamina.index.topk import heap_drain, heap_push, worse

FLOAT32, FLOAT16, INT8 = 0, 1, 2
STORAGE_KINDS = {"float32": FLOAT32, "float16": FLOAT16, "int8": INT8}


def buffer_views(buffer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A read buffer (a multiple of 8 bytes) as int64, float32, uint16 and int8 arrays for `scan_lists`.

    Made outside the kernel: a view taken inside numba loses the alignment that lets LLVM
    vectorise the scorers (2x slower, measured).
    """
    return buffer.view(np.int64), buffer.view(np.float32), buffer.view(np.uint16), buffer.view(np.int8)


@numba.njit(cache=True, nogil=True, inline="always")
def _half(bits: int) -> float:
    """The value of a finite float16 given by its uint16 bits (sign included)."""
    value = f16_value(bits & 0x7FFF)
    return -value if bits & 0x8000 else value


@numba.njit(cache=True, nogil=True, inline="always")
def _held(heap_keys: np.ndarray, size: int, key: int) -> bool:
    for i in range(size):
        if heap_keys[i] == key:
            return True
    return False


# The scorers take one row as a slice: indexing a slice lets LLVM vectorise the loop, where
# indexing the whole buffer at `start + t` kept it scalar (6x slower, measured).
@numba.njit(cache=True, nogil=True, fastmath=True)
def _score_f32(row: np.ndarray, query: np.ndarray, inner_product: bool) -> float:
    acc = np.float32(0.0)
    if inner_product:
        for t in range(query.shape[0]):
            acc += row[t] * query[t]
        return acc
    for t in range(query.shape[0]):
        diff = row[t] - query[t]
        acc += diff * diff
    return -acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _score_f16(row: np.ndarray, query: np.ndarray, inner_product: bool) -> float:
    acc = np.float32(0.0)
    for t in range(query.shape[0]):
        value = np.float32(_half(row[t]))
        if inner_product:
            acc += value * query[t]
        else:
            acc += (value - query[t]) * (value - query[t])
    return acc if inner_product else -acc


@numba.njit(cache=True, nogil=True, fastmath=True)
def _score_i8(row: np.ndarray, scale: np.ndarray, query: np.ndarray, inner_product: bool) -> float:
    acc = np.float32(0.0)
    for t in range(query.shape[0]):
        value = np.float32(row[t]) * scale[t]
        if inner_product:
            acc += value * query[t]
        else:
            acc += (value - query[t]) * (value - query[t])
    return acc if inner_product else -acc


@numba.njit(cache=True, nogil=True)
def scan_lists(ids: np.ndarray, words: np.ndarray, halves: np.ndarray, codes: np.ndarray, bases: np.ndarray, counts: np.ndarray, storage: int, scale: np.ndarray,
               query: np.ndarray, inner_product: bool, k: int,
               seed_ids: np.ndarray, seed_scores: np.ndarray,
               tombstones: np.ndarray, allowed: np.ndarray, filtered: bool, out_scores: np.ndarray, out_ids: np.ndarray) -> int:
    """The best k distinct live entries among the seeds and the lists in `buffer`; returns how many.

    ids, words, halves, codes: one buffer of lists as `PostingReader.read_raw` leaves them, seen
      as int64, float32, uint16 and int8 (`buffer_views`); list j starts at byte bases[j]
      (8-aligned) and holds counts[j] int64 ids then counts[j] rows in the storage form
      (FLOAT32 / FLOAT16 / INT8 with per-dimension `scale`);
    query (d,) float32; scores are inner products, or minus squared L2;
    seed_ids / seed_scores (s,): candidates scored by the caller, offered first;
    tombstones, allowed: sorted int64 ids (allowed only when `filtered`);
    out_scores (>= k,) float32 and out_ids (>= k,) int64 receive the result, best first.
    """
    dim = query.shape[0]
    heap_scores = np.empty(k, np.float64)
    heap_keys = np.empty(k, np.int64)
    size = 0
    has_tombstones = tombstones.shape[0] > 0
    for i in range(seed_ids.shape[0]):
        key = seed_ids[i]
        score = np.float64(seed_scores[i])
        if key < 0 or (size == k and not worse(heap_scores[0], heap_keys[0], score, key)):
            continue
        if has_tombstones and in_sorted(tombstones, key):
            continue
        if filtered and not in_sorted(allowed, key):
            continue
        if _held(heap_keys, size, key):
            continue
        size = heap_push(heap_scores, heap_keys, size, k, score, key)

    # The entries below repeat the seeds' checks inline: moving them into a shared helper
    # (inlined or not) measured 1.4-1.7x slower on this loop.
    itemsize = 4 if storage == FLOAT32 else (2 if storage == FLOAT16 else 1)
    for j in range(bases.shape[0]):
        count = counts[j]
        if count == 0:
            continue
        first_id = bases[j] // 8
        first_row = (bases[j] + 8 * count) // itemsize
        for e in range(count):
            start = first_row + e * dim
            if storage == FLOAT32:
                score = _score_f32(words[start: start + dim], query, inner_product)
            elif storage == FLOAT16:
                score = _score_f16(halves[start: start + dim], query, inner_product)
            else:
                score = _score_i8(codes[start: start + dim], scale, query, inner_product)
            score = np.float64(np.float32(score))
            key = ids[first_id + e]
            if size == k and not worse(heap_scores[0], heap_keys[0], score, key):
                continue
            if has_tombstones and in_sorted(tombstones, key):
                continue
            if filtered and not in_sorted(allowed, key):
                continue
            if _held(heap_keys, size, key):
                continue
            size = heap_push(heap_scores, heap_keys, size, k, score, key)

    found = size
    ordered = np.empty(found, np.float64)
    heap_drain(heap_scores, heap_keys, size, ordered, out_ids)
    for i in range(found):
        out_scores[i] = ordered[i]
    return found
