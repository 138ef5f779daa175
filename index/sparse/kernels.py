"""Small numba building blocks shared by the build and search kernels.

A radix argsort, a seeded sampler, float16
decoding (numba has no float16 type: the forward index's float16 weights reach the
kernels as their uint16 bits) and a cache prefetch hint. The bounded top-k heap and top-k
selection moved to `lamina.index.topk` and are re-exported here.

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
from lamina.index.topk import heap_drain, heap_push, top_k_mask, top_k_positions, worse  # noqa: F401 (moved: re-exported)

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
