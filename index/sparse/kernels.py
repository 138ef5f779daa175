"""Small numba building blocks shared by the build and search kernels.

A bounded top-k heap, top-k selection, a radix argsort, a seeded sampler, float16
decoding (numba has no float16 type: the forward index's float16 weights reach the
kernels as their uint16 bits) and a cache prefetch hint.

Written as plain loops instead of numpy sorts inside `@njit`, which cost seconds of
compilation each; behaviour is fully determined by (score, key): a result ranks below
another when its score is lower, or equal with a larger key.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret an integer's low 32 bits as a float32 (an LLVM bitcast)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        word = context.cast(builder, args[0], signature.args[0], types.uint32)
        return builder.bitcast(word, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def prefetch(typingctx, array, index):
    """Hint the CPU to fetch array[index] into cache (llvm.prefetch; never faults, no effect on results).

    The kernels hop between random forward-index rows; fetching the next row while the
    current one is scored hides most of a memory round trip.
    """
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array_type, index_type = signature.args
        view = context.make_array(array_type)(context, builder, args[0])
        position = context.cast(builder, args[1], index_type, types.intp)
        pointer = cgutils.get_item_pointer2(context, builder, view.data, cgutils.unpack_tuple(builder, view.shape),
                                            cgutils.unpack_tuple(builder, view.strides), array_type.layout,
                                            [position], wraparound=False, boundscheck=False)
        byte_pointer = ir.PointerType(ir.IntType(8))
        i32 = ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0")
        # read access, high temporal locality, data cache
        builder.call(hint, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def f16_value(bits: int) -> float:
    """The value (float64, exact) of a finite, non-negative float16 given by its uint16 bits.

    The bits shifted into a float32's exponent and mantissa fields give the value times
    2**-112, for normal and subnormal numbers alike; the multiplication restores it.
    """
    return np.float64(_f32_from_bits(np.uint32(bits) << np.uint32(13))) * 5.192296858534828e33  # 2**112


@numba.njit(cache=True, nogil=True, inline="always")
def worse(score_a: float, key_a: int, score_b: float, key_b: int) -> bool:
    """Whether (score_a, key_a) ranks below (score_b, key_b)."""
    return score_a < score_b or (score_a == score_b and key_a > key_b)


@numba.njit(cache=True, nogil=True)
def _sift_down(heap_scores: np.ndarray, heap_keys: np.ndarray, size: int, score: float, key: int) -> None:
    """Place (score, key) at the root of a heap of `size` entries and restore the heap order."""
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and worse(heap_scores[right], heap_keys[right], heap_scores[child], heap_keys[child]):
            child = right
        if worse(heap_scores[child], heap_keys[child], score, key):
            heap_scores[i] = heap_scores[child]
            heap_keys[i] = heap_keys[child]
            i = child
        else:
            break
    heap_scores[i] = score
    heap_keys[i] = key


@numba.njit(cache=True, nogil=True)
def heap_push(heap_scores: np.ndarray, heap_keys: np.ndarray, size: int, k: int, score: float, key: int) -> int:
    """Offer (score, key) to a min-heap (root = worst kept) holding the best k; returns the new size."""
    if size < k:
        i = size
        while i > 0:
            parent = (i - 1) // 2
            if worse(score, key, heap_scores[parent], heap_keys[parent]):
                heap_scores[i] = heap_scores[parent]
                heap_keys[i] = heap_keys[parent]
                i = parent
            else:
                break
        heap_scores[i] = score
        heap_keys[i] = key
        return size + 1
    if worse(heap_scores[0], heap_keys[0], score, key):
        _sift_down(heap_scores, heap_keys, size, score, key)
    return size


@numba.njit(cache=True, nogil=True)
def heap_drain(heap_scores: np.ndarray, heap_keys: np.ndarray, size: int, out_scores: np.ndarray,
               out_keys: np.ndarray) -> None:
    """Empty the heap into out_scores / out_keys best first (entries beyond size untouched)."""
    while size > 0:
        size -= 1
        out_scores[size] = heap_scores[0]  # the root is the worst left: it goes last
        out_keys[size] = heap_keys[0]
        if size > 0:
            _sift_down(heap_scores, heap_keys, size, heap_scores[size], heap_keys[size])


@numba.njit(cache=True, nogil=True)
def top_k_positions(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values (n,), best first; ties favour the lower position."""
    k = min(k, values.shape[0])
    heap_scores = np.empty(k, np.float64)
    heap_keys = np.empty(k, np.int64)
    size = 0
    for i in range(values.shape[0]):
        size = heap_push(heap_scores, heap_keys, size, k, values[i], i)
    out_scores = np.empty(k, np.float64)
    out_keys = np.empty(k, np.int64)
    heap_drain(heap_scores, heap_keys, size, out_scores, out_keys)
    return out_keys


@numba.njit(cache=True, nogil=True)
def top_k_mask(values: np.ndarray, k: int, min_value: float, mask: np.ndarray) -> int:
    """Mark in mask (n,) bool the values >= min_value, at most the k largest of them; returns the count.

    Ties at the cut favour the lower position.
    """
    n_candidates = 0
    for i in range(values.shape[0]):
        mask[i] = values[i] >= min_value
        n_candidates += mask[i]
    if n_candidates <= k:
        return n_candidates
    heap_scores = np.empty(k, np.float64)
    heap_keys = np.empty(k, np.int64)
    size = 0
    for i in range(values.shape[0]):
        if mask[i]:
            size = heap_push(heap_scores, heap_keys, size, k, values[i], i)
            mask[i] = False
    for j in range(size):
        mask[heap_keys[j]] = True
    return size


@numba.njit(cache=True, nogil=True)
def splitmix64(state: np.uint64) -> np.uint64:
    """The splitmix64 output function: a well-mixed 64-bit value of `state` (seed counters with it)."""
    z = state + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def sample_positions(length: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct positions of range(length) drawn uniformly (partial Fisher-Yates), int64.

    Deterministic in `seed`; numba's own generator would cost seconds of compilation.
    """
    positions = np.arange(length)
    state = splitmix64(np.uint64(seed))
    for j in range(count):
        state = splitmix64(state)
        other = j + np.int64(state % np.uint64(length - j))
        positions[j], positions[other] = positions[other], positions[j]
    return positions[:count].copy()


@numba.njit(cache=True, nogil=True)
def radix_argsort(keys: np.ndarray, key_bits: int) -> np.ndarray:
    """Stable argsort (n,) int64 of non-negative integer keys below 2**key_bits (LSD radix, 8 bits a pass)."""
    n = keys.shape[0]
    order = np.arange(n)
    scratch = np.empty(n, np.int64)
    counts = np.empty(257, np.int64)
    shift = 0
    while shift < key_bits:
        counts[:] = 0
        for i in range(n):
            counts[((keys[order[i]] >> shift) & 255) + 1] += 1
        for d in range(256):
            counts[d + 1] += counts[d]
        for i in range(n):
            digit = (keys[order[i]] >> shift) & 255
            scratch[counts[digit]] = order[i]
            counts[digit] += 1
        order, scratch = scratch, order
        shift += 8
    return order
