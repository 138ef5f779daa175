"""How many OpenMP threads a faiss call gets: all of them for big work, one for small work.

An OpenMP fork-join costs more than a small head search or a leaf k-means, and when the cores
are busy (a server's other threads, a build beside a test run) a parallel region waits for a
scheduler slice: a 0.05 ms head search or a 2 ms leaf k-means then takes tens of milliseconds.
faiss's BLAS is the OpenMP build of OpenBLAS, so the same setting governs its matrix products.
libgomp keeps the setting per thread, so limiting one call never limits another thread's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import faiss

# Below this much work (multiply-adds, roughly) a call runs on the calling thread alone.
SMALL_WORK = 1 << 24


@contextmanager
def omp_threads(n: int | None) -> Iterator[None]:
    """Run faiss with `n` OpenMP threads on this thread for the block (None: unchanged)."""
    if n is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    if previous == n:  # the common case of a small call on a single-threaded caller
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def threads_for(work: int) -> int | None:
    """1 for work below SMALL_WORK, else None (faiss's default)."""
    return 1 if work < SMALL_WORK else None
