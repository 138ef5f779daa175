"""A cache of posting lists already checked against their CRC32C, in this process's own memory.

Why it is safe to skip the check on a hit. A list enters the cache by being *copied* out of the
posting file (the memory map, or a pread buffer) into an anonymous mapping of this process, at
the list's own offset in the file; the CRC32C is then computed over that copy, and only when it
matches is the list marked verified. From then on the search kernel scores the copy, never the
file: the bytes a hit hands out are the very bytes that were checked, in memory no file, disk,
page-cache eviction or re-read can change (a later bad sector, or another process writing the
file, changes the page cache, not this copy). A verified range is never written again (a miss
only writes the ranges of lists not yet verified, and lists never share bytes: each starts on
its own page), so a reader holding the arena sees checked bytes for every list it was handed.
This is what RocksDB's block cache does: a block's checksum is verified when it is read from
the file, and hits are served from the cached, already-verified copy. What it does not cover,
RAM that flips bits after the check, is the job of ECC memory, as it is for every database.

The check of the file itself is unchanged on a miss (copy, then check the copy, so that no byte
can change between check and use), and `lamina index verify` still reads the whole file.

Admission on the second miss. Copying a list in costs more than checking it in place (the page
faults of fresh anonymous memory, then the copy: measured cold, where every read is a first
read, a copy-on-first-miss cache doubled p50). So a list's first miss only marks it seen, and
the search checks its lists in place as without a cache; a list missed again is copied in. A
one-off read (a cold query, a scan) costs what the check always cost; a list read repeatedly
is checked twice, then never again while it stays cached (the "doorkeeper" of TinyLFU-style
caches, keeping one-hit lists out).

Memory: the arena is as large as the posting file but lazily backed (an anonymous mapping costs
only the pages written), and the lists admitted are bounded by `budget` bytes. Once full, the
cache admits nothing more: a search whose lists are all cached is a hit, any other is checked in
place as without a cache (`lists` returns None), so a working set larger than the budget costs
what the check always cost, never more (an earlier version started a fresh arena instead, and
paid the page faults of refilling it again and again). `clear` starts over: searches in flight
keep the old arena (they hold a reference to it), so nothing is ever unmapped or rewritten under
a reader. A budget of 0 turns the cache off: every read is checked in place.
"""

from __future__ import annotations

import mmap
import threading
from dataclasses import dataclass

import numba
import numpy as np

#: directory columns (postings.OFFSET, LENGTH, COUNT, CRC), repeated here to avoid a cycle
_OFFSET, _LENGTH, _COUNT = 0, 1, 2


@numba.njit(nogil=True)
def _copy_ranges(src: np.ndarray, src_starts: np.ndarray, dst: np.ndarray, dst_starts: np.ndarray,
                 lengths: np.ndarray) -> None:
    for i in range(lengths.shape[0]):
        dst[dst_starts[i]: dst_starts[i] + lengths[i]] = src[src_starts[i]: src_starts[i] + lengths[i]]


@numba.njit(nogil=True)
def _scan(directory: np.ndarray, verified: np.ndarray, seen: np.ndarray, heads: np.ndarray,
          mark: bool) -> tuple[int, int, int]:
    """(non-empty lists, of which not verified, of which never seen) among `heads`; with `mark`,
    marks the unverified ones seen. One call instead of a handful of numpy ones: the hot path."""
    nonempty = pending = unseen = 0
    for i in range(heads.shape[0]):
        h = heads[i]
        if directory[h, 2] > 0:
            nonempty += 1
            if not verified[h]:
                pending += 1
                if not seen[h]:
                    unseen += 1
                    if mark:
                        seen[h] = True
    return nonempty, pending, unseen


@dataclass
class _Arena:
    """One lazily backed copy of the posting file's layout and which of its lists are verified."""

    buffer: np.ndarray  # (file size rounded to 8,) uint8 over an anonymous mapping
    verified: np.ndarray  # (H,) bool
    seen: np.ndarray  # (H,) bool: missed once already (admitted on the next miss)
    resident: int = 0  # bytes of the lists admitted

    @classmethod
    def empty(cls, size: int, n_lists: int) -> _Arena:
        size = max(8, (size + 7) // 8 * 8)
        # private anonymous memory (Python's default for -1 is shared, i.e. shmem): lazily backed
        arena = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20))
        return cls(np.frombuffer(arena, dtype=np.uint8), np.zeros(n_lists, dtype=bool),
                   np.zeros(n_lists, dtype=bool))


class VerifiedCache:
    """Verified copies of the lists of one posting file (directory (H, 4) int64, file of `size`
    bytes), at most `budget` bytes of lists; see the module docstring for why hits skip the check."""

    def __init__(self, directory: np.ndarray, size: int, budget: int) -> None:
        self.directory = directory
        self.size = size
        self.budget = int(budget)
        self._arena = _Arena.empty(size, len(directory))
        self._lock = threading.Lock()  # admissions only: a hit takes no lock
        self.hits = 0  # non-empty lists handed out without a read or a check
        self.first = 0  # searches that missed a list for the first time (checked in place)
        self.full = 0  # searches that missed once the budget was spent (checked in place)

    @property
    def resident_bytes(self) -> int:
        return self._arena.resident

    def lists(self, heads: np.ndarray, fetch, check) -> np.ndarray | None:
        """The arena (a uint8 buffer in the posting file's layout) in which every non-empty list of
        `heads` (k,) int64 is a verified copy, or None when some are missed for the first time or
        do not fit in what is left of the budget (the caller checks them in place).
        `fetch(heads)` returns (buffer, bases): the lists of those heads as stored, unchecked; `check(heads, rows, buffer, bases)` raises DamagedLists
        for the ones that fail their CRC32C (then none of this call's lists is marked verified)."""
        arena = self._arena
        nonempty, pending, _ = _scan(self.directory, arena.verified, arena.seen, heads, False)
        if not pending:  # the warm path: no lock, no check
            self.hits += nonempty
            return arena.buffer
        with self._lock:
            arena = self._arena  # another admission may have replaced or filled it meanwhile
            nonempty, pending, unseen = _scan(self.directory, arena.verified, arena.seen, heads, True)
            if not pending:
                self.hits += nonempty
                return arena.buffer
            if unseen:  # a first miss: checked in place this time (now marked seen)
                self.first += 1
                return None
            counts = self.directory[heads, _COUNT]
            miss = np.flatnonzero(~arena.verified[heads] & (counts > 0))
            need = int(self.directory[heads[miss], _LENGTH].sum())
            if arena.resident + need > self.budget and arena.resident:
                self.full += 1
                return None
            missed = np.unique(heads[miss])
            rows = self.directory[missed]
            src, bases = fetch(missed)
            _copy_ranges(src, np.ascontiguousarray(bases, dtype=np.int64), arena.buffer,
                         np.ascontiguousarray(rows[:, _OFFSET]), np.ascontiguousarray(rows[:, _LENGTH]))
            check(missed, rows, arena.buffer, rows[:, _OFFSET])  # the copy is what gets checked
            arena.verified[missed] = True
            arena.resident += int(rows[:, _LENGTH].sum())
            self.hits += nonempty - len(missed)
            return arena.buffer

    def clear(self) -> None:
        """Forget every verified copy (readers in flight keep theirs): cold-cache measurements."""
        with self._lock:
            self._arena = _Arena.empty(self.size, len(self.directory))
