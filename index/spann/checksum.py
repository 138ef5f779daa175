"""CRC32C of posting lists, from google-crc32c's hardware-accelerated C library.

`crc32c(data)` checks one buffer (a written list, `lamina index verify`); `crc32c_ranges` checks
every list a query read in one call: a numba loop calls the library's `crc32c_extend` on each
byte range in place (the memory map or the pread buffer: nothing copied, the GIL released), so
that the bytes are in cache when the search kernel scores them right after. google-crc32c's
Python functions take only `bytes` (a copy of each list); its bundled library is loaded with
ctypes instead, and the Python function is the fallback when that library cannot be found.
"""

from __future__ import annotations

import ctypes
import glob
import os

import google_crc32c
import numba
import numpy as np


def _load_library() -> ctypes.CDLL | None:
    libs = os.path.join(os.path.dirname(os.path.dirname(google_crc32c.__file__)), "google_crc32c.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libcrc32c*.so*"))) + ["libcrc32c.so.1"]:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


_LIB = _load_library()
if _LIB is not None:
    _extend = _LIB.crc32c_extend
    _extend.restype = ctypes.c_uint32
    _extend.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t]

    @numba.njit(nogil=True)
    def _ranges(address: int, starts: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> None:
        for i in range(starts.shape[0]):
            out[i] = _extend(0, address + starts[i], lengths[i]) if lengths[i] else 0

    @numba.njit(nogil=True)
    def _mismatches(address: int, rows: np.ndarray, bases: np.ndarray, bad: np.ndarray) -> int:
        """rows (k, 4) of the list directory (offset, length, count, crc), each list at bases[i]
        bytes from address: fills bad[:n] with the positions whose CRC32C differs, returns n."""
        n = 0
        for i in range(rows.shape[0]):
            length = rows[i, 1]
            if length and _extend(0, address + bases[i], length) != (rows[i, 3] & 0xFFFFFFFF):
                bad[n] = i
                n += 1
        return n


def crc32c(data: bytes | np.ndarray) -> int:
    """CRC32C of a buffer."""
    return int(google_crc32c.value(data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()))


def crc32c_ranges(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC32C (k,) uint32 of the byte ranges buffer[starts[i]: starts[i] + lengths[i]] of a uint8
    buffer (k,); 0 for an empty range. Ranges must lie inside the buffer (the caller checked the
    list directory against the file at open)."""
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    out = np.zeros(len(starts), dtype=np.uint32)
    if not len(starts):
        return out
    if len(buffer) and (starts.min() < 0 or (starts + lengths).max() > len(buffer)):
        raise ValueError("a checksummed range lies outside the buffer")
    if _LIB is not None:
        _ranges(buffer.ctypes.data, starts, lengths, out)
    else:  # pragma: no cover - the wheel bundles the library
        for i, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist())):
            out[i] = google_crc32c.value(buffer[start: start + length].tobytes()) if length else 0
    return out


def mismatched_lists(buffer: np.ndarray, rows: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """Positions (m,) int64 of the lists whose bytes fail their CRC32C: list i of `rows` (k, 4)
    int64 directory rows (offset, length, count, crc) lies at byte bases[i] of the uint8 buffer,
    which must hold it (the directory was checked against the file at open). One call for all of
    a query's lists: the hot path."""
    bad = np.empty(len(rows), dtype=np.int64)
    if _LIB is not None:
        n = _mismatches(buffer.ctypes.data, rows, np.ascontiguousarray(bases, dtype=np.int64), bad)
        return bad[:n]
    crcs = crc32c_ranges(buffer, bases, rows[:, 1])  # pragma: no cover
    return np.flatnonzero(crcs != rows[:, 3].astype(np.uint32))
