"""Scan codes: a product-quantised copy of every dense vector, by id, for scanning a filter's ids.

A filter that leaves a few thousand ids of a large collection is answered by brute force over
those ids (`lamina.retrieval.planner`). Scoring every matching row exactly reads each row from
wherever it lies in memory: at 1% of 1M x 192 float32 vectors that is 10,000 scattered reads of
768 bytes, slower than the scan itself. `ScanCodes` keeps dim/4 bytes a vector (faiss's
`ProductQuantizer`, 8 bits a sub-quantiser, one per 4 dimensions), in a table indexed by id; the
planner scores every matching id from its code with a look-up table of the query (asymmetric
distance), keeps the best `m` and rescores those exactly. The idea is Qdrant's and Weaviate's
quantised brute force with oversampling and rescoring.

`ClusteredCodes` (below) is the same idea laid out in one numeric field's order (a clustering
key): a range over that field is then a contiguous run of 4-bit codes for faiss's fast-scan
kernel, with neither the filter's ids nor scattered reads.

Ids are the store's int64 iids, which grow from 0, so the table is a dense array grown by
doubling. An id the table has never seen (past its end or never encoded) ranks ahead of every
coded one, so a missing code can cost time but not a result. Deleted ids keep their codes; a filter
never yields them. Adding an id again replaces its code.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import faiss
import numba
import numpy as np
from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.types import METRICS

TRAIN_SAMPLE = 65_536  # vectors a codebook is trained on at most
MIN_TRAIN = 256  # vectors needed to train one (256 centroids a sub-quantiser)


def sub_quantizers(dim: int) -> int:
    """Sub-quantisers for `dim`: one per 4 dimensions when 4 divides dim, else the divisor of dim
    nearest dim / 4 (so that a code takes about dim / 4 bytes).

    Why 4 and not faiss's usual 8: on the 1M x 192 filter sweep (bench/RESULTS.md) a filter's
    nearest ids sit among thousands of about equally far ones, and 8-dimension sub-quantisers
    rank them too coarsely: with the best 1,024 codes rescored, recall@10 was 0.984-0.993 at 0.5-1%
    selectivity. With 4-dimension ones the best 256 give 1.000 in the same time: the scan costs
    ~1.4x more, and rescoring, which reads each candidate's row at memory latency, 1/4 as much."""
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(m - dim / 4), -m))


def training_rows(n: int, seed: int) -> np.ndarray:
    """The sorted rows of n a codebook is trained on: TRAIN_SAMPLE of them drawn with `seed`, or all."""
    if n <= TRAIN_SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, TRAIN_SAMPLE, replace=False))


_TOUCH_BLOCK = 256  # ids whose codes are loaded ahead of scoring


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def adc_scores(ids: np.ndarray, words: np.ndarray, seen: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Approximate cost (n,) float32 of each id (smaller is better): the sum over sub-quantisers
    of table[j, code byte j of the id]. An id without a code costs -inf, so that it is always kept.

    words (rows, w) uint64: each row's code, 8 bytes a word (zero bytes pad the last word; the
    table's rows for them are zero). seen: a bitmap (little-endian bit order) of the rows holding
    a code. table (8 * w, 256) float32.

    A filter's ids are scattered over the table, so each code is a cache miss. Scoring a code
    takes dozens of instructions, which leaves room for only a few misses in flight; so each
    block of ids is first touched (the first and last word of its code, which may lie in
    different cache lines) and then scored from cache: 4x faster on 5k-50k ids of 1M. Reading a
    code a word at a time, and the bitmap rather than a byte a row (1/8 of the cache lines),
    took another 25 % off.
    """
    n = ids.shape[0]
    n_rows = words.shape[0]
    n_words = words.shape[1]
    flat = table.ravel()
    out = np.empty(n, dtype=np.float32)
    sink = np.uint64(0)
    for block in range(0, n, _TOUCH_BLOCK):
        stop = min(n, block + _TOUCH_BLOCK)
        for i in range(block, stop):  # independent loads: many misses in flight at once
            row = ids[i]
            if 0 <= row < n_rows:
                sink += words[row, 0] + words[row, n_words - 1]
        for i in range(block, stop):
            row = ids[i]
            if row < 0 or row >= n_rows or (seen[row >> 3] >> (row & 7)) & 1 == 0:
                out[i] = -np.inf
                continue
            s0 = np.float32(0.0)  # four chains: the look-ups of one row do not wait on each other
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            for w in range(n_words):
                x = words[row, w]
                base = w * 2048  # 8 table rows of 256 a word
                s0 += flat[base + (x & 255)]
                s1 += flat[base + 256 + ((x >> 8) & 255)]
                s2 += flat[base + 512 + ((x >> 16) & 255)]
                s3 += flat[base + 768 + ((x >> 24) & 255)]
                s0 += flat[base + 1024 + ((x >> 32) & 255)]
                s1 += flat[base + 1280 + ((x >> 40) & 255)]
                s2 += flat[base + 1536 + ((x >> 48) & 255)]
                s3 += flat[base + 1792 + ((x >> 56) & 255)]
            out[i] = (s0 + s1) + (s2 + s3)
    if sink == np.uint64(0x9E3779B97F4A7C15):  # ~never: keeps the touching loads from being optimised away
        out[0] = np.float32(sink & np.uint64(1))
    return out


@numba.njit(cache=True, nogil=True)
def _set_bits(bits: np.ndarray, rows: np.ndarray) -> None:
    for row in rows:
        bits[row >> 3] |= np.uint8(1 << (row & 7))


class ScanCodes:
    """PQ codes of vectors by id; `candidates` picks the ids worth scoring exactly.

    dim / metric ("ip" or "l2"): the vectors'. n_sub: sub-quantisers (default `sub_quantizers`),
    each 8 bits, so a code is n_sub bytes. In memory a row is padded with zero bytes to a whole
    number of 8-byte words (none at dim 96, 192, 384, 768), which the kernel reads a word at a time.
    """

    def __init__(self, dim: int, metric: str = "ip", n_sub: int | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise InvalidArgument(f"dimension must be a positive integer, got {dim!r}")
        if metric not in METRICS:
            raise InvalidArgument(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        n_sub = sub_quantizers(dim) if n_sub is None else n_sub
        if isinstance(n_sub, bool) or not isinstance(n_sub, int) or n_sub <= 0 or dim % n_sub:
            raise InvalidArgument(f"sub-quantisers must be a positive divisor of the dimension {dim}, got {n_sub!r}")
        self.dim = dim
        self.metric = metric
        self.n_sub = n_sub
        self._pq = faiss.ProductQuantizer(dim, n_sub, 8)
        self.trained = False
        self._width = -(-n_sub // 8) * 8  # bytes a row takes in memory
        self._codes = np.zeros((0, self._width), dtype=np.uint8)
        self._seen = np.zeros(0, dtype=np.uint8)  # bitmap of the rows holding a code, 8 rows a byte

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidArgument(f"vectors have shape {vectors.shape}, the scan codes expect (n, {self.dim})")
        return vectors

    def train(self, vectors: np.ndarray, *, seed: int = 1234) -> None:
        """Learn the codebooks from (a sample of at most TRAIN_SAMPLE of) `vectors` (n >= 256)."""
        vectors = self._check(vectors)
        if len(vectors) < MIN_TRAIN:
            raise InvalidArgument(f"scan codes need at least {MIN_TRAIN} training vectors, got {len(vectors)}")
        if len(vectors) > TRAIN_SAMPLE:
            vectors = vectors[training_rows(len(vectors), seed)]
        self._pq.verbose = False
        self._pq.cp.seed = seed
        self._pq.cp.min_points_per_centroid = 1  # only silences faiss's warning below 9,984 vectors
        self._pq.train(vectors)
        self.trained = True

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Encode `vectors` under `ids` (int64 >= 0), replacing the codes they had."""
        if not self.trained:
            raise InvalidArgument("scan codes must be trained before vectors are added")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = self._check(vectors)
        if len(ids) != len(vectors):
            raise InvalidArgument(f"{len(ids)} ids for {len(vectors)} vectors")
        if not len(ids):
            return
        if ids.min() < 0:
            raise InvalidArgument(f"scan code ids must be >= 0, got {int(ids.min())}")
        top = int(ids.max()) + 1
        if top > len(self._codes):
            self._grow(max(top, 2 * len(self._codes), 1024))
        self._codes[ids, : self.n_sub] = self._pq.compute_codes(vectors)
        _set_bits(self._seen, ids)

    def _grow(self, rows: int) -> None:
        """Room for `rows` rows (a multiple of 8 is kept for the bitmap)."""
        rows = -(-rows // 8) * 8
        codes = np.zeros((rows, self._width), dtype=np.uint8)
        codes[: len(self._codes)] = self._codes
        seen = np.zeros(rows // 8, dtype=np.uint8)
        seen[: len(self._seen)] = self._seen
        self._codes, self._seen = codes, seen

    def table(self, query: np.ndarray) -> np.ndarray:
        """The query's look-up table (n_sub, 256) float32 of costs (smaller is better): minus the
        inner product for "ip", the squared distance of each sub-vector for "l2"."""
        query = np.ascontiguousarray(query, dtype=np.float32)
        if query.shape != (self.dim,):  # faiss reads dim floats from the pointer
            raise InvalidArgument(f"query has shape {query.shape}, the scan codes expect ({self.dim},)")
        table = np.zeros((self._width, 256), dtype=np.float32)  # the padding's rows stay zero
        if self.metric == "ip":
            self._pq.compute_inner_prod_table(faiss.swig_ptr(query), faiss.swig_ptr(table))
            np.negative(table, out=table)
        else:
            self._pq.compute_distance_table(faiss.swig_ptr(query), faiss.swig_ptr(table))
        return table

    def candidates(self, query: np.ndarray, ids: np.ndarray, m: int) -> np.ndarray:
        """The (at most) m ids of `ids` (int64) whose codes score best for `query` (d,), sorted
        ascending; all of `ids` when there are at most m. Ids without a code rank first."""
        if not self.trained:
            raise InvalidArgument("scan codes are not trained")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) <= m:
            return ids
        costs = adc_scores(ids, self._codes.view(np.uint64), self._seen, self.table(query))
        return np.sort(ids[np.argpartition(costs, m - 1)[:m]])

    def __len__(self) -> int:
        return int(np.bitwise_count(self._seen).sum())

    def memory_bytes(self) -> int:
        return int(self._codes.nbytes + self._seen.nbytes + 4 * self._pq.centroids.size())

    # ------------------------------------------------------------------ persistence
    FILES = ("scan.json", "scan_pq.faiss", "scan_codes.npy", "scan_seen.npy")

    def save(self, directory: Path) -> None:
        if not self.trained:
            raise InvalidArgument("untrained scan codes are not saved")
        faiss.write_ProductQuantizer(self._pq, str(directory / "scan_pq.faiss"))
        seen = np.unpackbits(self._seen, bitorder="little")  # a byte a row on disk
        top = int(np.flatnonzero(seen)[-1]) + 1 if len(self) else 0
        np.save(directory / "scan_codes.npy", self._codes[:top, : self.n_sub])
        np.save(directory / "scan_seen.npy", seen[:top])
        meta = {"dim": self.dim, "metric": self.metric, "n_sub": self.n_sub, "rows": top}
        (directory / "scan.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path, dim: int, metric: str) -> ScanCodes:
        """Open what `save` wrote; CorruptIndex when it is unreadable or was built for other vectors."""
        try:
            meta = json.loads((directory / "scan.json").read_text())
            pq = faiss.read_ProductQuantizer(str(directory / "scan_pq.faiss"))
            codes = np.load(directory / "scan_codes.npy")
            seen = np.load(directory / "scan_seen.npy")
        except Exception as exc:  # faiss raises RuntimeError, numpy ValueError, json ...
            raise CorruptIndex(f"scan codes in {directory} are unreadable: {exc}") from None
        if meta.get("dim") != dim or meta.get("metric") != metric or pq.d != dim or pq.M != meta.get("n_sub"):
            raise CorruptIndex(f"scan codes in {directory} were built for {meta}, not dim={dim} {metric}")
        if codes.shape != (meta["rows"], pq.M) or codes.dtype != np.uint8 or seen.shape != (meta["rows"],):
            raise CorruptIndex(f"scan codes in {directory} hold {codes.shape}, manifest says ({meta['rows']}, {pq.M})")
        self = cls(dim, metric, int(pq.M))
        self._pq = pq
        self.trained = True
        self._grow(len(codes))
        self._codes[: len(codes), : self.n_sub] = codes
        rows = np.zeros(len(self._codes), dtype=bool)
        rows[: len(seen)] = seen != 0
        self._seen = np.packbits(rows, bitorder="little")
        return self


# ---------------------------------------------------------------------- codes in a field's order
_BLOCK = 32  # codes a fast-scan block interleaves (faiss's bbs)
# faiss's pq4 layout puts code i of a block's first 16 (and, in the high nibbles, i + 16) at lane
# PERM[i] of each 16-byte half (pq4_fast_scan.cpp, perm0 inverted)
_LANE = np.array([0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15], dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def pack_blocks(codes: np.ndarray, n_sub: int, out: np.ndarray) -> None:
    """Lay out 4-bit PQ codes (n, n_sub / 2) uint8, two sub-quantisers a byte, low nibble
    first (faiss's flat layout), as faiss's fast-scan blocks: per block of 32 codes and pair
    of sub-quantisers, 32 bytes, the first 16 holding the even sub-quantiser of codes i and
    i + 16 (low / high nibble) at lane _LANE[i], the next 16 the odd one. out: ceil(n / 32) *
    16 * n_sub bytes; the rows past n in the last block are zero."""
    n = codes.shape[0]
    width = n_sub // 2
    for block in range((n + _BLOCK - 1) // _BLOCK):
        base = block * 16 * n_sub
        first = block * _BLOCK
        for s in range(width):
            p = base + s * 32
            for i in range(16):
                lo = codes[first + i, s] if first + i < n else np.uint8(0)
                hi = codes[first + i + 16, s] if first + i + 16 < n else np.uint8(0)
                lane = _LANE[i]
                out[p + lane] = (lo & 15) | ((hi & 15) << 4)
                out[p + 16 + lane] = (lo >> 4) | (hi & 240)


class ClusteredCodes:
    """4-bit PQ codes of every vector laid out in the order of one numeric field's values, so
    that a range filter over that field is a contiguous run of codes (Milvus's clustering key,
    ClickHouse's sort key; Qdrant and Weaviate scan scattered codes).

    `ScanCodes` scores a filter's ids where they lie: one scattered read and 48 table look-ups
    a code, ~25 ns, which is most of a 0.5-1 % filter's time on 1M vectors. Here the run is
    handed to faiss's fast-scan kernel (4-bit codes, look-up tables held in SIMD registers,
    32 codes at a time), which ranks 10k codes in ~30 µs; the filter is two binary searches.
    A code takes dim / 4 bytes (one sub-quantiser of 16 centroids per 2 dimensions), like
    ScanCodes'.

    The copy is a snapshot: it answers only while the field's (value, id) pairs are the very
    arrays it was built from (`PayloadIndex.value_order` replaces them on every change), so a
    write to the field, a timestamp value or a tombstone sends range filters back to the
    scattered scan until `build` runs again. Build cost on 1M x 192: ~5 s (training and
    encoding).
    """

    def __init__(self, field: str, dim: int, metric: str = "ip") -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0 or dim % 2:
            raise InvalidArgument(f"clustered codes need an even positive dimension, got {dim!r}")
        if metric not in METRICS:
            raise InvalidArgument(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        self.field = field
        self.dim = dim
        self.metric = metric
        self.n_sub = dim // 2
        self._faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
        self._pq = faiss.ProductQuantizer(dim, self.n_sub, 4)
        self.values = np.empty(0, dtype=np.float64)
        self.ids = np.empty(0, dtype=np.int64)
        self._blocks = np.empty(0, dtype=np.uint8)
        # a fast-scan index a thread, fed the blocks of one run; it keeps the largest run's copy (up
        # to clustered_threshold codes: 24 MB at 500k x 48 bytes), as letting a run of 24 MB go
        # after its query made the next one 3.5x slower (page faults on a fresh copy)
        self._scratch = threading.local()

    def build(self, values: np.ndarray, ids: np.ndarray, vectors_of: Callable[[np.ndarray], np.ndarray], *,
              seed: int = 1234, chunk: int = 65_536) -> None:
        """Encode the vectors of `ids` in the order of `values` (the pairs `PayloadIndex.value_order`
        gives: sorted by value, one value an id). vectors_of(ids) -> (n, dim) float32."""
        values = np.asarray(values)
        ids = np.asarray(ids)
        if values.shape != ids.shape or values.ndim != 1:
            raise InvalidArgument(f"values {values.shape} and ids {ids.shape} must be matching 1-d arrays")
        if len(values) > 1 and np.any(values[1:] < values[:-1]):
            raise InvalidArgument("clustered codes need the pairs sorted by value")
        if len(np.unique(ids)) != len(ids):
            raise InvalidArgument(f"field {self.field!r} holds several values for some ids; "
                                  "a clustering key must have one value an id")
        if len(ids) < MIN_TRAIN:
            raise InvalidArgument(f"clustered codes need at least {MIN_TRAIN} vectors, got {len(ids)}")
        pq = faiss.ProductQuantizer(self.dim, self.n_sub, 4)
        pq.cp.seed = seed
        pq.verbose = False
        pq.train(self._vectors(vectors_of, ids[training_rows(len(ids), seed)]))
        codes = np.empty((len(ids), pq.code_size), dtype=np.uint8)
        for start in range(0, len(ids), chunk):  # a loop over chunks bounds the float32 copies
            codes[start:start + chunk] = pq.compute_codes(self._vectors(vectors_of, ids[start:start + chunk]))
        blocks = np.empty(-(-len(ids) // _BLOCK) * 16 * self.n_sub, dtype=np.uint8)
        pack_blocks(codes, self.n_sub, blocks)
        self._pq, self.values, self.ids, self._blocks = pq, values, ids, blocks
        self._scratch = threading.local()

    def _vectors(self, vectors_of: Callable[[np.ndarray], np.ndarray], ids: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors_of(ids), dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise InvalidArgument(f"vectors_of returned shape {vectors.shape}, expected ({len(ids)}, {self.dim})")
        return vectors

    def current(self, pairs: tuple[np.ndarray, np.ndarray] | None) -> bool:
        """Whether the codes were built from exactly these (values, ids) arrays."""
        return pairs is not None and len(self.ids) > 0 and pairs[1] is self.ids and pairs[0] is self.values

    def span(self, lo: float, lo_inclusive: bool, hi: float, hi_inclusive: bool) -> tuple[int, int]:
        """The positions [start, stop) of the ids whose value lies in the interval."""
        start = int(np.searchsorted(self.values, lo, side="left" if lo_inclusive else "right"))
        stop = int(np.searchsorted(self.values, hi, side="right" if hi_inclusive else "left"))
        return start, max(start, stop)

    def candidates(self, query: np.ndarray, start: int, stop: int, m: int) -> np.ndarray:
        """The (at most) m ids of positions [start, stop) whose codes score best for `query`
        (d,), sorted ascending; all of them when there are at most m."""
        if stop - start <= m:
            return np.sort(self.ids[start:stop])
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dim:
            raise InvalidArgument(f"query has {query.shape[1]} dimensions, the clustered codes expect {self.dim}")
        first = start // _BLOCK * _BLOCK  # whole blocks: the run starts up to 31 codes early
        block_bytes = 16 * self.n_sub
        begin, end = first // _BLOCK * block_bytes, -(-stop // _BLOCK) * block_bytes
        index = self._index_for_thread()
        index.codes.resize(end - begin)
        faiss.rev_swig_ptr(index.codes.get(), end - begin)[:] = self._blocks[begin:end]
        index.ntotal = stop - first  # faiss skips the rows past ntotal in the last block
        index.ntotal2 = -(-index.ntotal // _BLOCK) * _BLOCK
        _, rows = index.search(query, m + start - first)
        rows = rows[0]
        rows = rows[rows >= start - first][:m]  # drops -1 padding and the codes before the run
        return np.sort(self.ids[first + rows])

    def _index_for_thread(self) -> faiss.IndexPQFastScan:
        index = getattr(self._scratch, "index", None)
        if index is None:
            index = faiss.IndexPQFastScan(self.dim, self.n_sub, 4, self._faiss_metric, _BLOCK)
            index.pq = self._pq
            index.is_trained = True
            self._scratch.index = index
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def memory_bytes(self) -> int:
        """The codes and the codebooks (the (value, id) pairs are the payload index's own arrays)."""
        return int(self._blocks.nbytes + 4 * self._pq.centroids.size())

    # ------------------------------------------------------------------ persistence
    @staticmethod
    def _digest(values: np.ndarray, ids: np.ndarray) -> int:
        return zlib.crc32(np.ascontiguousarray(ids).tobytes(), zlib.crc32(np.ascontiguousarray(values).tobytes()))

    def save(self, directory: Path) -> None:
        """Write the codebooks and the blocks, with a digest of the (value, id) pairs they follow
        (the payload index saves the pairs themselves)."""
        if not len(self.ids):
            raise InvalidArgument("clustered codes that were never built are not saved")
        faiss.write_ProductQuantizer(self._pq, str(directory / "clustered_pq.faiss"))
        np.save(directory / "clustered_blocks.npy", self._blocks)
        meta = {"field": self.field, "dim": self.dim, "metric": self.metric, "n": len(self.ids),
                "digest": self._digest(self.values, self.ids)}
        (directory / "clustered.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path, field: str, dim: int, metric: str,
             pairs: tuple[np.ndarray, np.ndarray] | None) -> ClusteredCodes | None:
        """Open what `save` wrote, following `pairs` (the field's current (values, ids)); None when
        they are not the pairs the codes were laid out for (then build again). CorruptIndex when
        the files are unreadable or were written for another field or vectors."""
        def unreadable(exc: Exception) -> CorruptIndex:
            return CorruptIndex(f"clustered codes in {directory} are unreadable: {exc}")

        try:
            meta = json.loads((directory / "clustered.json").read_text())
            pq = faiss.read_ProductQuantizer(str(directory / "clustered_pq.faiss"))
        except Exception as exc:  # faiss raises RuntimeError, json ValueError ...
            raise unreadable(exc) from None
        self = cls(field, dim, metric)
        if (meta.get("field"), meta.get("dim"), meta.get("metric")) != (field, dim, metric) or pq.d != dim \
                or pq.M != self.n_sub or pq.nbits != 4:
            raise CorruptIndex(f"clustered codes in {directory} were built for {meta}, not {field!r} dim={dim} {metric}")
        n = int(meta.get("n", -1))
        if pairs is None or len(pairs[1]) != n or cls._digest(*pairs) != meta.get("digest"):
            return None  # laid out for other pairs: the blocks are not worth reading
        try:
            blocks = np.load(directory / "clustered_blocks.npy")
        except Exception as exc:  # numpy raises ValueError, OSError ...
            raise unreadable(exc) from None
        if blocks.dtype != np.uint8 or blocks.shape != (-(-n // _BLOCK) * 16 * self.n_sub,):
            raise CorruptIndex(f"clustered codes in {directory} hold {blocks.shape} bytes, not {n} codes' worth")
        self._pq, self.values, self.ids, self._blocks = pq, pairs[0], pairs[1], blocks
        return self
