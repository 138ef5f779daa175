"""CRC32C of a token store's documents, checked on every read of a saved segment.

A saved segment's rows are memory-mapped: the store checks each file against its SHA-256 when
it opens (or the collection's snapshot does), but the bytes a later read sees come from the page
cache, which a disk that went bad since, or a write to the file, can change after that check.
So each document's rows carry a CRC32C (written beside the rows, `crc32c.npy`, one uint32 a
document), and a read checks the rows it *gathered* (the private copy `np.take` made, the very
bytes it then decodes and returns) against them: what is checked is what is served, and no
byte can change in between. A document that fails raises DamagedTokens, a DataLoss naming it.

All of a read's documents are checked in one call (`crc32c_ranges`: a numba loop over the
byte ranges calling google-crc32c's hardware-accelerated library, nothing copied).
"""

from __future__ import annotations

import numpy as np

from lamina.index.errors import DataLoss
from lamina.index.spann.checksum import crc32c_ranges

CRC_FILE = "crc32c.npy"


class DamagedTokens(DataLoss):
    """Token rows that fail their CRC32C: `ids` (k,) int64 names the documents."""

    def __init__(self, where: str, ids: np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        super().__init__(f"token rows of {len(self.ids)} document(s) in {where} fail their CRC32C: ids "
                         f"{self.ids[:10].tolist()}{' ...' if len(self.ids) > 10 else ''}; rebuild the "
                         "collection's token store from the store (`lamina store repair`, or a restore)")


def _as_bytes(rows: np.ndarray) -> np.ndarray:
    """The rows (T, w) of a C-contiguous array as one flat uint8 view (no copy)."""
    return np.ascontiguousarray(rows).reshape(-1).view(np.uint8)


def document_crcs(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """CRC32C (n,) uint32 of each document's rows: rows[offsets[i]:offsets[i+1]] of rows (T, w)."""
    width = rows.shape[1] * rows.dtype.itemsize if rows.ndim == 2 else 0
    starts = offsets[:-1].astype(np.int64) * width
    return crc32c_ranges(_as_bytes(rows), starts, np.diff(offsets).astype(np.int64) * width)


def check_gathered(gathered: np.ndarray, lengths: np.ndarray, expected: np.ndarray, ids: np.ndarray,
                   where: str) -> np.ndarray:
    """`gathered` (T, w): the rows of documents `ids` (n,) back to back, lengths (n,) rows each;
    raise DamagedTokens for those whose CRC32C is not `expected` (n,) uint32; return `gathered`."""
    if not len(ids):
        return gathered
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    bad = np.flatnonzero(document_crcs(gathered, offsets) != expected.astype(np.uint32))
    if len(bad):
        raise DamagedTokens(where, ids[bad])
    return gathered
