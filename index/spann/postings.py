"""The posting file: every head's posting list, each starting on a 4 KiB page.

    list h, at byte directory[h, OFFSET] (a multiple of 4096), directory[h, LENGTH] bytes:
        ids       COUNT x int64, little-endian
        vectors   COUNT x dim x {float32 | float16 | int8}, little-endian, row-major
    directory[h] = (offset, length, count, CRC32C of the list's `length` bytes), int64 (H, 4)

Ids and vectors are stored apart inside a list (struct of arrays), each one contiguous run.
Page alignment means a list of up to 4 KiB costs one page read, as on the SSDs SPANN was
designed for. The directory lives in memory (and in a .npy beside the file, checked at open).
Every list a reader hands out is checked against its CRC32C first (`checksum.mismatched_lists`,
all of a query's lists in one call): a list that fails raises `DamagedLists`, a DataLoss naming
its heads, and is never scored. Searches (`lists`) go through a `verified.VerifiedCache` when it
has a budget: each list is copied into process memory and checked there once, and later
searches score that checked copy (see verified.py for why that is sound); the update and
compaction paths (`read_raw`) check the bytes in place. `verify_postings` checks the whole file.

The writer goes through a temporary name, fsyncs and renames, so the final name only ever
holds a complete file. The reader merges lists that sit close in the file into one read, puts
several reads in flight (every range announced to the kernel with posix_fadvise(WILLNEED)
before the preads, or preads from a thread pool) and reads into one buffer. Searches score
the lists in that buffer where they lie (`kernels.scan_lists`); the update and compaction
paths gather ids and vectors from it with one index array each.
"""

from __future__ import annotations

import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from lamina.index.errors import CorruptIndex, DataLoss, InvalidArgument
from lamina.index.spann.checksum import crc32c, mismatched_lists
from lamina.index.spann.config import IO_MODES
from lamina.index.spann.verified import VerifiedCache
from lamina.index.snapshot import fsync_path

PAGE_SIZE = 4096
# Fewer reads than this are issued from the calling thread: a hand-off to the pool costs more
# than a pread served from the page cache.
_PARALLEL_READS = 4
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)
_WILLNEED_MAP = getattr(mmap, "MADV_WILLNEED", None)
# A query reads whole lists, each announced first (WILLNEED): the kernel's readahead around a
# missing page would only read the neighbouring lists as well, so it is turned off.
_RANDOM_MAP = getattr(mmap, "MADV_RANDOM", None)
_RANDOM_FILE = getattr(os, "POSIX_FADV_RANDOM", None)
OFFSET, LENGTH, COUNT, CRC = range(4)
_LE = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int8": np.dtype("i1")}
_IDS = np.dtype("<i8")


class Codec:
    """How vectors are stored in the file: float32, float16, or int8 with a per-dimension scale."""

    def __init__(self, dtype: str, dim: int, scale: np.ndarray | None = None) -> None:
        if dtype not in _LE:
            raise InvalidArgument(f"unknown posting dtype {dtype!r}")
        if dtype == "int8" and (scale is None or np.shape(scale) != (dim,)):
            raise InvalidArgument(f"int8 postings need a per-dimension scale of shape ({dim},)")
        self.dtype = dtype
        self.dim = dim
        self.scale = None if scale is None else np.ascontiguousarray(scale, dtype=np.float32)
        self.storage = _LE[dtype]

    @classmethod
    def fit(cls, dtype: str, vectors: np.ndarray) -> Codec:
        """A codec for `vectors` (n, d) float32; int8 scales each dimension to its largest |value|."""
        dim = vectors.shape[1]
        if dtype != "int8":
            return cls(dtype, dim)
        peak = np.abs(vectors).max(axis=0) if len(vectors) else np.ones(dim, dtype=np.float32)
        return cls(dtype, dim, np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32))

    @property
    def entry_bytes(self) -> int:
        return _IDS.itemsize + self.dim * self.storage.itemsize

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Stored form (n, d) of float32 vectors (n, d)."""
        if self.dtype == "int8":
            assert self.scale is not None
            return np.clip(np.rint(vectors / self.scale), -127, 127).astype(self.storage)
        return vectors.astype(self.storage)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """float32 vectors (n, d) from their stored form (n, d)."""
        if self.dtype == "int8":
            assert self.scale is not None
            return codes.astype(np.float32) * self.scale
        return codes.astype(np.float32, copy=self.dtype != "float32")


def encode_list(ids: np.ndarray, vectors: np.ndarray, codec: Codec) -> bytes:
    """The bytes of one list: ids (n,) int64 then vectors (n, d) float32 in the codec's form."""
    return np.ascontiguousarray(ids, dtype=_IDS).tobytes() + np.ascontiguousarray(codec.encode(vectors)).tobytes()


class PostingWriter:
    """Writes lists in head order to `path`, through `path.tmp`; `finish()` publishes the file.

    Use as a context manager: leaving it with an exception removes the temporary file and
    leaves whatever `path` held before untouched.
    """

    def __init__(self, path: Path, codec: Codec) -> None:
        self.path = Path(path)
        self.codec = codec
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._fh = open(self._tmp, "wb")
        self._offset = 0
        self._rows: list[tuple[int, int, int, int]] = []

    def write_list(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append the next head's list: ids (n,) int64, vectors (n, d) float32 (n may be 0)."""
        if not len(ids):
            self._rows.append((self._offset, 0, 0, 0))
            return
        data = encode_list(ids, vectors, self.codec)
        padding = -len(data) % PAGE_SIZE
        self._fh.write(data)
        if padding:
            self._fh.write(bytes(padding))
        self._rows.append((self._offset, len(data), len(ids), crc32c(data)))
        self._offset += len(data) + padding

    def finish(self) -> np.ndarray:
        """fsync, rename into place; return the directory (H, 4) int64."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
        fsync_path(self.path.parent)
        return np.array(self._rows, dtype=np.int64).reshape(-1, 4)

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PostingWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is not None:
            self.abort()


class DamagedLists(DataLoss):
    """Posting lists whose bytes fail their CRC32C: `heads` (k,) int64 names them."""

    def __init__(self, path: Path, heads: np.ndarray) -> None:
        self.heads = np.asarray(heads, dtype=np.int64)
        shown = self.heads[:10].tolist()
        super().__init__(f"{len(self.heads)} posting list(s) of {path} fail their CRC32C: heads {shown}"
                         + (" ..." if len(self.heads) > 10 else ""))


@dataclass
class IOStats:
    """Reads issued by searches: lists read, bytes read, pread calls (approximate under concurrency),
    lists checked against their CRC32C (empty ones included), lists that failed, lists served
    from the verified cache without a second check."""

    lists: int = 0
    bytes: int = 0
    reads: int = 0
    checked: int = 0
    damaged: int = 0
    cache_hits: int = 0


@dataclass
class RawLists:
    """Lists as stored, read into one buffer: list j starts at byte bases[j] (a multiple of 8)
    and holds counts[j] int64 ids then counts[j] rows in the codec's form; bases[j] means
    nothing when counts[j] is 0."""

    buffer: np.ndarray  # (bytes,) uint8, a multiple of 8 long
    bases: np.ndarray  # (k,) int64
    counts: np.ndarray  # (k,) int64


class PostingReader:
    """Reads lists of one posting file by head number: from a read-only memory map (io="mmap"),
    or with several preads in flight into a buffer (io="pread")."""

    def __init__(self, path: Path, directory: np.ndarray, codec: Codec, *, io: str = "mmap",
                 io_threads: int = 1, coalesce_bytes: int = 16384, verify: bool = True,
                 cache_bytes: int = 0) -> None:
        if io not in IO_MODES:
            raise InvalidArgument(f"unknown posting I/O mode {io!r}; expected one of {', '.join(IO_MODES)}")
        self.path = Path(path)
        self.directory = directory
        self.codec = codec
        self.io = io
        self.coalesce_bytes = coalesce_bytes
        self.verify = verify  # check each list's CRC32C before handing it out (off: benchmarks only)
        self.stats = IOStats()
        self._io_threads = io_threads
        self._pool: ThreadPoolExecutor | None = None
        self._map: mmap.mmap | None = None
        self._mapped: np.ndarray | None = None  # the whole file as uint8, over the mapping
        self._fd = os.open(self.path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size
        if io == "mmap" and self.size:
            self._map = mmap.mmap(self._fd, self.size, access=mmap.ACCESS_READ)
            self._mapped = np.frombuffer(self._map, dtype=np.uint8)
            if _RANDOM_MAP is not None:
                self._map.madvise(_RANDOM_MAP)
        if _RANDOM_FILE is not None:
            os.posix_fadvise(self._fd, 0, 0, _RANDOM_FILE)
        if io_threads > 1:
            self._pool = ThreadPoolExecutor(io_threads, thread_name_prefix="spann-io")
        # searches score verified copies of their lists, checked once when copied in (verified.py)
        self.cache = VerifiedCache(directory, self.size, cache_bytes) if verify and cache_bytes > 0 else None

    def close(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        if getattr(self, "_map", None) is not None:
            self._mapped = None
            try:
                self._map.close()
            except BufferError:  # an array still views it: the mapping goes with the last view
                pass
            self._map = None
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1

    def lists(self, heads: np.ndarray) -> RawLists:
        """The lists of `heads` (k,) int64 for the search kernel: the mapped file itself, every
        list's range announced to the kernel first (madvise WILLNEED, so that pages not yet
        cached are read in parallel), or with io="pread" a buffer they were read into."""
        if self.cache is not None:
            before = self.cache.hits
            buffer = self.cache.lists(heads, self._fetch_unchecked, self._check)
            self.stats.cache_hits += self.cache.hits - before
            self.stats.lists += self.cache.hits - before  # lists counts what searches scanned
            if buffer is not None:
                rows = self.directory[heads]
                return RawLists(buffer, rows[:, OFFSET], rows[:, COUNT])
        return self._lists(heads, self.verify)

    def _fetch_unchecked(self, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lists of `heads` as stored, not checked (the verified cache checks its copy)."""
        raw = self._lists(heads, False)
        return raw.buffer, raw.bases

    def _lists(self, heads: np.ndarray, verify: bool) -> RawLists:
        if self._map is None or self._mapped is None:
            return self.read_raw(heads, verify=verify)
        rows = self.directory[heads]
        lists = total = 0
        advise = self._map.madvise if _WILLNEED_MAP is not None else None
        for start, length, count in rows[:, (OFFSET, LENGTH, COUNT)].tolist():
            if count:  # one call a list: coalescing first cost more than the calls
                if advise is not None:
                    advise(_WILLNEED_MAP, start, length)
                lists += 1
                total += length
        self.stats.lists += lists
        self.stats.reads += lists
        self.stats.bytes += total
        if verify:
            self._check(heads, rows, self._mapped, rows[:, OFFSET])
        return RawLists(self._mapped, rows[:, OFFSET], rows[:, COUNT])

    def _check(self, heads: np.ndarray, rows: np.ndarray, buffer: np.ndarray, bases: np.ndarray) -> None:
        """Raise DamagedLists for the lists of `heads` whose bytes at `bases` of `buffer` fail their CRC32C."""
        bad = mismatched_lists(buffer, rows, bases)
        self.stats.checked += len(heads)
        if len(bad):
            self.stats.damaged += len(bad)
            raise DamagedLists(self.path, np.asarray(heads)[bad])

    def release_pages(self) -> None:
        """Unmap the file's pages from this process (MADV_DONTNEED; the page cache keeps them), so
        that `posix_fadvise(DONTNEED)` can evict them, and forget the verified copies: how a
        cold-cache benchmark starts cold."""
        if self.cache is not None:
            self.cache.clear()
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def __del__(self) -> None:  # a reader replaced by compaction closes once no search holds it
        self.close()

    def read(self, heads: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ids (n,) int64, vectors (n, d) float32) of each head in `heads` (k,) int64, in order."""
        ids, vectors, counts = self.read_concat(heads)
        bounds = np.cumsum(counts)[:-1]
        return list(zip(np.split(ids, bounds), np.split(vectors, bounds)))

    def read_raw(self, heads: np.ndarray, *, verify: bool | None = None) -> RawLists:
        """The lists of `heads` (k,) int64 as stored, in one buffer (see `RawLists`).

        Lists are read in file order, those within `coalesce_bytes` of each other in one pread.
        """
        rows = self.directory[heads]
        counts = rows[:, COUNT].copy()
        bases = np.zeros(len(heads), dtype=np.int64)
        todo = np.flatnonzero(counts > 0)
        if not len(todo):
            return RawLists(np.empty(0, dtype=np.uint8), bases, counts)
        by_offset = todo[np.argsort(rows[todo, OFFSET], kind="stable")]
        starts = rows[by_offset, OFFSET]
        ends = starts + rows[by_offset, LENGTH]
        fresh = _starts_read(starts, ends, self.coalesce_bytes)
        first = np.flatnonzero(fresh)
        read_starts = starts[first]
        read_lengths = np.maximum.reduceat(ends, first) - read_starts
        # each read lands at an 8-byte aligned place of one buffer, so ids view as int64 in place
        slots = (read_lengths + 7) // 8 * 8
        read_bases = np.concatenate([[0], np.cumsum(slots)[:-1]])
        buffer = np.empty(int(slots.sum()), dtype=np.uint8)
        self._pread_into(buffer, read_bases, read_starts, read_lengths)
        which_read = np.cumsum(fresh) - 1
        bases[by_offset] = read_bases[which_read] + (starts - read_starts[which_read])
        self.stats.lists += len(todo)
        self.stats.reads += len(first)
        self.stats.bytes += int(read_lengths.sum())
        if self.verify if verify is None else verify:
            self._check(heads, rows, buffer, bases)
        return RawLists(buffer, bases, counts)

    def read_concat(self, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The lists of `heads` (k,) int64 back to back, in that order: ids (m,) int64, vectors
        (m, d) float32 and each list's count (k,) int64.

        The ids and vectors are gathered from `read_raw`'s buffer with one index array each.
        """
        raw = self.read_raw(heads)
        counts = raw.counts
        present = counts > 0
        if not present.any():
            return np.empty(0, dtype=np.int64), np.empty((0, self.codec.dim), dtype=np.float32), counts
        # every entry's place in the buffer, computed for all lists at once (no loop over lists)
        entry_list = np.repeat(np.arange(len(heads))[present], counts[present])
        rank = np.arange(len(entry_list)) - np.repeat(np.cumsum(counts[present]) - counts[present], counts[present])
        id_words = raw.bases[entry_list] // 8 + rank
        itemsize, dim = self.codec.storage.itemsize, self.codec.dim
        first_code = (raw.bases + 8 * counts) // itemsize
        row_starts = first_code[entry_list] + rank * dim
        codes = raw.buffer.view(self.codec.storage)
        # rows of the vector blocks start at arbitrary element offsets: view every offset as a row
        rows_view = np.lib.stride_tricks.as_strided(codes, shape=(len(codes) - dim + 1, dim),
                                                    strides=(itemsize, itemsize), writeable=False)
        ids = np.take(raw.buffer.view(np.int64), id_words)
        return ids, self.codec.decode(rows_view[row_starts]), counts  # np.take would copy the strided view

    def _pread_into(self, buffer: np.ndarray, bases: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> None:
        jobs = list(zip(bases.tolist(), offsets.tolist(), lengths.tolist()))
        view = memoryview(buffer)

        def run(indices: np.ndarray) -> None:
            for i in indices.tolist():
                base, offset, length = jobs[i]
                got = os.preadv(self._fd, [view[base: base + length]], offset)
                if got != length:
                    raise CorruptIndex(f"posting file {self.path} is truncated: wanted {length} bytes at {offset}, "
                                       f"got {got}")

        if self._pool is None or len(jobs) < _PARALLEL_READS:
            if len(jobs) > 1 and _WILLNEED is not None:
                # ask the kernel for every range up front: the reads proceed in parallel on the
                # device while the preads below consume them in order (free when cached)
                for _, offset, length in jobs:
                    os.posix_fadvise(self._fd, offset, length, _WILLNEED)
            run(np.arange(len(jobs)))
            return
        # one task per group of reads keeps the thread hand-offs few while several are in flight
        groups = np.array_split(np.arange(len(jobs)), min(len(jobs), self._io_threads))
        for future in [self._pool.submit(run, group) for group in groups]:
            future.result()


def _starts_read(starts: np.ndarray, ends: np.ndarray, gap: int) -> np.ndarray:
    """Mask (n,) bool over byte ranges in file order: which start a new read, because the gap
    after everything before them exceeds `gap` bytes (the others join the previous read)."""
    reach = np.maximum.accumulate(ends)
    fresh = np.ones(len(starts), dtype=bool)
    fresh[1:] = starts[1:] - reach[:-1] > gap
    return fresh


def check_directory(directory: np.ndarray, file_size: int, codec: Codec) -> list[str]:
    """Structural problems of a list directory against its file: alignment, lengths, bounds."""
    problems = []
    if directory.ndim != 2 or directory.shape[1] != 4:
        return [f"list directory has shape {directory.shape}, expected (H, 4)"]
    counts, lengths, offsets = directory[:, COUNT], directory[:, LENGTH], directory[:, OFFSET]
    bad = np.flatnonzero((counts < 0) | (lengths != counts * codec.entry_bytes))
    if len(bad):
        problems.append(f"{len(bad)} list(s) have a length that does not match their count, first head {bad[0]}")
    bad = np.flatnonzero((offsets < 0) | (offsets % PAGE_SIZE != 0))
    if len(bad):
        problems.append(f"{len(bad)} list(s) do not start on a page boundary, first head {bad[0]}")
    ends = offsets + lengths
    if len(ends) and ends.max() > file_size:
        head = int(np.argmax(ends))
        problems.append(f"posting file is truncated: {file_size} bytes, list of head {head} ends at {int(ends[head])}")
    return problems


def verify_postings(path: Path, directory: np.ndarray, codec: Codec) -> list[str]:
    """Every problem of a posting file: structure first, then each list's CRC32C."""
    path = Path(path)
    if not path.exists():
        return [f"posting file {path} is missing"]
    size = path.stat().st_size
    problems = check_directory(directory, size, codec)
    if problems:
        return problems
    bad: list[int] = []
    with open(path, "rb") as fh:
        for head in np.flatnonzero(directory[:, COUNT] > 0):
            offset, length, _, crc = (int(v) for v in directory[head])
            fh.seek(offset)
            if crc32c(fh.read(length)) != crc:
                bad.append(int(head))
    if bad:
        problems.append(f"{len(bad)} posting list(s) fail their checksum: heads {bad[:10]}"
                        + (" ..." if len(bad) > 10 else ""))
    return problems
