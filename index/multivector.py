"""The token store: contextual token vectors of every document, for late-interaction reranking.

Multivector (ColBERT-style) reranking scores a first-stage candidate by MaxSim over its token
vectors (Khattab & Zaharia, SIGIR'20), so every document's token matrix must be at hand at query
time. Martinico, Nardini, Rulli & Venturini ("Multivector Reranking in the Era of Strong
First-Stage Retrievers", ECIR 2026) rerank a few dozen candidates per query, which makes the
store a random-access array of per-document row ranges rather than a token-level search index.
Rows are kept as float16 or compressed (product quantisation, Jégou et al., TPAMI'11, with or
without an OPQ rotation or a coarse centroid whose residual is quantised, as ColBERTv2 keeps
tokens) through faiss's standalone codec interface (`sa_encode`/`sa_decode`), and decoded on
the fly for the candidates being scored; see `TokenCodec` for the codecs and their sizes.

Layout on disk: a root directory owned by one store, made of immutable segments and a manifest.

    root/CURRENT                 JSON manifest: format, dim, codec, generation, seq, segments,
                                 tombstones, codebook, {relative path: sha256} of every file
    root/seg-<gen>/ids.npy       (n,) int64 document ids, in append order
    root/seg-<gen>/offsets.npy   (n+1,) int64 row offsets: document i owns rows [o[i], o[i+1])
    root/seg-<gen>/tokens.npy    (T, d) float16 rows            (raw segments)
    root/seg-<gen>/codes.npy     (T, code_size) uint8 codes     (encoded segments)
    root/tombstones-<gen>.npy    sorted int64 ids deleted since their segment was written
    root/codec-<gen>.faiss       the trained codec of the encoded segments: faiss's serialisation, or
                                 a ResidualStack's (after an 8-byte "LTCunit1" header when it
                                 decodes to unit rows, see TokenCodec)

`save` writes only what changed since the last save (the documents added, as one new segment,
and the tombstones), each file to a temporary name, fsynced, renamed, then replaces CURRENT
atomically (`lamina.index.snapshot.write_atomic`); a crash at any point leaves CURRENT naming the
previous complete version, and files no manifest names are removed on the next save. A full
rewrite into one segment (compaction) happens when dead rows pass a quarter of the store, after
the codec is trained, or when saving into another directory. Token arrays load with
`np.load(mmap_mode="r")`: only the rows of the candidates being scored are paged in.

The store is the source of truth (ARCHITECTURE.md): a document's token matrix is kept in RocksDB under
the vector name `TOKENS_VECTOR` as `pack_tokens` bytes, so this store can always be rebuilt from
it (`TokenStore.from_packed` over `Store.iter_vectors`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numba
import numpy as np

from lamina.index.errors import CorruptIndex, InvalidArgument, NotFound
from lamina.index.snapshot import MANIFEST, fsync_path, sha256_file, write_atomic
from lamina.index.token_crc import CRC_FILE, check_gathered, document_crcs

TOKENS_VECTOR = "tokens"
FORMAT = "lamina-tokens/1"

# Dead rows beyond this fraction of the store make the next save a full rewrite.
_COMPACT_FRACTION = 0.25
# k-means of each sub-quantiser sees at most this many token rows (faiss samples 256 per centroid).
_MAX_TRAIN_ROWS = 65_536
# A trained codec whose decoded rows are renormalised starts with these bytes (then faiss's own).
_UNIT_HEADER = b"LTCunit1"
# Training rows within this of norm 1 are unit rows (float16 storage rounds norms by ~1e-3).
_UNIT_TOLERANCE = 1e-2
# Alternations of rotation and PQ training when learning an OPQ rotation (faiss's default is 50).
_OPQ_ITERATIONS = 12
# Rows encoded per faiss call (bounds the encoder's distance tables to a few hundred MB).
_ENCODE_BLOCK = 4096
# Bytes header of a packed token matrix: magic, number of tokens, dimension (little-endian).
_PACK_HEADER = struct.Struct("<4sII")
_PACK_MAGIC = b"LTK1"
_FLOAT16_MAX = float(np.finfo(np.float16).max)


# ---------------------------------------------------------------------- store bytes (RocksDB)
def pack_tokens(tokens: np.ndarray) -> bytes:
    """Bytes of a token matrix (n, d) for the store: a 12-byte header (magic, n, d), then float16 rows.

    float16 is what the token store keeps anyway; values must be finite and within float16 range.
    """
    matrix = _as_token_matrix(tokens, None, "token matrix")
    return _PACK_HEADER.pack(_PACK_MAGIC, matrix.shape[0], matrix.shape[1]) + matrix.astype("<f2").tobytes()


def unpack_tokens(data: bytes) -> np.ndarray:
    """The (n, d) float32 token matrix of `pack_tokens` bytes; InvalidArgument if they are not such bytes."""
    if len(data) < _PACK_HEADER.size:
        raise InvalidArgument(f"packed tokens have {len(data)} bytes, fewer than the {_PACK_HEADER.size}-byte header")
    magic, n, d = _PACK_HEADER.unpack_from(data)
    if magic != _PACK_MAGIC:
        raise InvalidArgument(f"packed tokens start with {magic!r}, not {_PACK_MAGIC!r}")
    expected = _PACK_HEADER.size + 2 * n * d
    if len(data) != expected:
        raise InvalidArgument(f"packed tokens of shape ({n}, {d}) need {expected} bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<f2", offset=_PACK_HEADER.size).reshape(n, d).astype(np.float32)


def _as_token_matrix(tokens: Any, dim: int | None, what: str) -> np.ndarray:
    """`tokens` as a C-contiguous (n, dim) float32 array within float16 range, or InvalidArgument."""
    try:
        matrix = np.ascontiguousarray(tokens, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not numeric: {exc}") from None
    if matrix.ndim != 2 or (dim is not None and matrix.shape[1] != dim):
        want = "(n, d)" if dim is None else f"(n, {dim})"
        raise InvalidArgument(f"{what} has shape {matrix.shape}, expected {want}")
    if matrix.size and not (np.isfinite(matrix).all() and np.abs(matrix).max() <= _FLOAT16_MAX):
        raise InvalidArgument(f"{what} has NaN, infinite or beyond-float16 values")
    return matrix


# ---------------------------------------------------------------------- pure helpers
def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated integer ranges [starts[i], starts[i] + lengths[i]) as one int64 array.

    starts, lengths: (n,) integers; the result has lengths.sum() entries. One np.repeat instead
    of a Python loop over documents.
    """
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    firsts = np.cumsum(lengths) - lengths  # where each range begins in the output
    return np.repeat(starts - firsts, lengths) + np.arange(total, dtype=np.int64)


def lengths_to_offsets(lengths: np.ndarray) -> np.ndarray:
    """(n+1,) int64 offsets of consecutive blocks of the given (n,) lengths."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


# ---------------------------------------------------------------------- codec
_PQ_SPEC = re.compile(r"^pq(\d+)(?:x(\d+))?$")
_OPQ_SPEC = re.compile(r"^opq(\d+)(?:x(\d+))?$")
_IVFPQ_SPEC = re.compile(r"^ivf(\d+)(?:x(\d+))?pq(\d+)(?:x(\d+))?$")
_PCA_SPEC = re.compile(r"^pca(\d+)sq(4|6|8)$")
_STACK_FACTORY = re.compile(r"^Stack(\d+)x(\d+),PQ(\d+)x(\d+)$")  # what an ivf<L>x<S>pq<M> spec resolves to
_MAX_STAGES = 4  # coarse stages of a residual stack
# Named codecs: a short name for the codec measured best at a size (bench/RESULTS.md).
_ALIASES = {"rq32": "ivf16384x2pq24x9", "rq64": "ivf1024pq96x5"}


def _sub_quantisers(spec: str, dim: int, m: int, bits: int) -> None:
    if m <= 0 or dim % m:
        raise InvalidArgument(f"codec {spec!r}: {m} sub-quantisers do not divide dimension {dim}")
    if not 1 <= bits <= 16:
        raise InvalidArgument(f"codec {spec!r}: bits per sub-quantiser must be in [1, 16]")


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _add_rows(rows: np.ndarray, table: np.ndarray, ids: np.ndarray) -> None:
    """rows[i] += table[ids[i]] for every i, in place."""
    for i in range(rows.shape[0]):
        row = ids[i]
        for j in range(rows.shape[1]):
            rows[i, j] += table[row, j]


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _normalise_rows(rows: np.ndarray) -> None:
    """Scale every row of rows (n, d) float32 to unit length in place; zero rows stay zero."""
    for i in range(rows.shape[0]):
        total = np.float32(0.0)
        for j in range(rows.shape[1]):
            total += rows[i, j] * rows[i, j]
        if total > 0.0:
            scale = np.float32(1.0 / np.sqrt(total))
            for j in range(rows.shape[1]):
                rows[i, j] *= scale


_STACK_MAGIC = b"LTCstack"  # a serialised ResidualStack starts with these bytes
_STACK_HEADER = struct.Struct("<IIIII")  # dim, stages, centroids a stage, PQ sub-quantisers, PQ bits
_KMEANS_ITERATIONS = 20


class ResidualStack:
    """Residual vector quantisation with a PQ tail: `stages` k-means codebooks of `lists`
    centroids, each quantising what the previous ones left (the residual), then a product
    quantiser of `m` x `bits` for the last residual. A row decodes to the sum of its centroids
    and its PQ reconstruction.

    One coarse stage is ColBERTv2's centroid + residual (faiss's IVF,PQ codec, which
    `TokenCodec` uses for it). A second stage of 16,384 centroids costs 2 bytes of the PQ budget
    and lowered the squared error of MiniLM tokens more than those bytes of PQ did (0.118 ->
    0.100 at 32 bytes, bench/RESULTS.md). faiss's own multi-stage residual quantisers either
    search with beams (minutes per 100k rows here) or build an inverted list per centroid
    combination; this keeps greedy stages of exhaustive search, which faiss runs as BLAS.

    The faiss standalone-codec methods (`train`, `sa_encode`, `sa_decode`, `sa_code_size`) make
    it usable where `TokenCodec` holds a faiss index. Codes: each stage's centroid number as a
    little-endian uint8 (lists <= 256) or uint16, then the PQ code.
    """

    def __init__(self, d: int, stages: int, lists: int, m: int, bits: int) -> None:
        self.d, self.stages, self.lists = d, stages, lists
        self._id_dtype = np.dtype(np.uint8 if lists <= 256 else "<u2")
        self._pq_index = faiss.IndexPQ(d, m, bits)  # holds the PQ, and serialises it with faiss
        self.pq = self._pq_index.pq
        self.centroids: list[np.ndarray] = []  # a (lists, d) float32 array a stage, once trained
        self._search: list[faiss.IndexFlatL2] = []

    def sa_code_size(self) -> int:
        return self.stages * self._id_dtype.itemsize + int(self.pq.code_size)

    def train(self, rows: np.ndarray) -> None:
        residual = np.array(rows, dtype=np.float32, copy=True)
        if len(residual) < self.lists:
            raise RuntimeError(f"{self.lists} centroids need at least as many training rows")
        centroids = []
        for stage in range(self.stages):
            kmeans = faiss.Kmeans(self.d, self.lists, niter=_KMEANS_ITERATIONS, seed=1234 + stage,
                                  max_points_per_centroid=256, verbose=False)
            kmeans.train(residual)
            centroids.append(np.ascontiguousarray(kmeans.centroids, dtype=np.float32))
            residual -= centroids[-1][kmeans.index.search(residual, 1)[1][:, 0]]
        self.pq.cp.seed = 1234
        self.pq.train(residual)
        self._pq_index.is_trained = True
        self._set_centroids(centroids)

    def _set_centroids(self, centroids: list[np.ndarray]) -> None:
        self._search, self.centroids = [], []
        for table in centroids:
            index = faiss.IndexFlatL2(self.d)
            index.add(table)
            self._search.append(index)
            # decoding reads the centroids in place in the flat index: one copy, not two
            self.centroids.append(faiss.rev_swig_ptr(index.get_xb(), index.ntotal * self.d).reshape(-1, self.d))

    def memory_bytes(self) -> int:
        return sum(c.nbytes for c in self.centroids) + 4 * int(self.pq.centroids.size())

    def sa_encode(self, rows: np.ndarray) -> np.ndarray:
        residual = np.array(rows, dtype=np.float32, copy=True)
        ids = []
        for table, index in zip(self.centroids, self._search, strict=True):
            nearest = index.search(residual, 1)[1][:, 0]
            residual -= table[nearest]
            ids.append(nearest.astype(self._id_dtype))
        stage_bytes = np.stack(ids, axis=1).view(np.uint8).reshape(len(rows), -1)
        return np.concatenate([stage_bytes, self.pq.compute_codes(residual)], axis=1)

    def sa_decode(self, codes: np.ndarray) -> np.ndarray:
        width = self.stages * self._id_dtype.itemsize
        ids = np.ascontiguousarray(codes[:, :width]).view(self._id_dtype)
        rows = self.pq.decode(np.ascontiguousarray(codes[:, width:]))
        for stage, table in enumerate(self.centroids):
            _add_rows(rows, table, ids[:, stage])  # numpy's rows += table[ids] gathers a copy first: 5x slower
        return rows

    def to_bytes(self) -> bytes:
        pq = faiss.serialize_index(self._pq_index).tobytes()
        header = _STACK_HEADER.pack(self.d, self.stages, self.lists, self.pq.M, self.pq.nbits)
        return _STACK_MAGIC + header + b"".join(c.astype("<f4").tobytes() for c in self.centroids) + pq

    @classmethod
    def from_bytes(cls, data: bytes) -> ResidualStack:
        """The stack `to_bytes` wrote; ValueError when the bytes are not one."""
        start = len(_STACK_MAGIC) + _STACK_HEADER.size
        if not data.startswith(_STACK_MAGIC) or len(data) < start:
            raise ValueError("not a residual stack codec")
        d, stages, lists, m, bits = _STACK_HEADER.unpack_from(data, len(_STACK_MAGIC))
        stop = start + stages * lists * d * 4
        if len(data) <= stop:
            raise ValueError(f"truncated: {len(data)} bytes for {stages} x {lists} centroids of dimension {d}")
        centroids = np.frombuffer(data, dtype="<f4", count=stages * lists * d, offset=start)
        index = faiss.deserialize_index(np.frombuffer(data[stop:], dtype=np.uint8))  # of its own class already
        if not isinstance(index, faiss.IndexPQ) or index.d != d or index.pq.M != m or index.pq.nbits != bits:
            raise ValueError("its product quantiser does not match its header")
        stack = cls(d, stages, lists, m, bits)
        stack._pq_index, stack.pq = index, index.pq
        stack._set_centroids([np.array(c, dtype=np.float32) for c in centroids.reshape(stages, lists, d)])
        return stack


def _new_codec(dim: int, factory: str) -> faiss.Index | ResidualStack:
    """An untrained codec: a faiss index from its factory string, or a `ResidualStack`."""
    if match := _STACK_FACTORY.match(factory):
        stages, lists, m, bits = (int(g) for g in match.groups())
        return ResidualStack(dim, stages, lists, m, bits)
    return faiss.index_factory(dim, factory)


class TokenCodec:
    """How token rows are kept: float16, or one of the compressed codecs below (faiss codecs).

    - "float16": 2 * dim bytes a token, exact up to half precision;
    - "pq<M>" / "pq<M>x<bits>": product quantisation (Jégou et al., TPAMI'11), M sub-quantisers
      of `bits` bits (8 by default): M * bits / 8 bytes a token;
    - "opq<M>" / "opq<M>x<bits>": the same after a learned rotation (OPQ, Ge et al., CVPR'13) that
      balances the variance across the sub-spaces: same size;
    - "ivf<L>pq<M>" / "ivf<L>pq<M>x<bits>": residual quantisation as ColBERTv2 / PLAID keep token
      vectors: a coarse k-means centroid out of L (its id takes 1 byte for L <= 256, 2 for
      L <= 65,536, counted in the size) plus a PQ code of the residual;
    - "ivf<L>x<S>pq<M>x<bits>": S such coarse stages (up to 4), each quantising the residual the
      previous ones left, then the PQ code (`ResidualStack`);
    - "pca<D>sq<bits>": a PCA to D dimensions, then a per-dimension scalar quantiser of 4, 6 or 8 bits;
    - "rq32", "rq64": the residual codecs measured best on MiniLM tokens within 32 and 64 bytes
      (aliases of "ivf16384x2pq24x9", 31 bytes, and "ivf1024pq96x5", 62 bytes; rq32 needs at
      least 16,384 token rows to train, and training its two stages of 16,384 centroids on
      65,536 rows and encoding 260k tokens takes two to four minutes on two cores);
    - "faiss:<factory string>": any faiss index factory string with a standalone codec (e.g.
      "faiss:RQ8x8" for additive residual quantisation).

    `bytes_per_token` is the full stored size of a token, coarse ids included. Training sees up
    to 65,536 token rows; the trained codec is serialised with faiss (`to_bytes`). A codec trained
    on unit rows (normalised token embeddings, the default encoders' output) renormalises what it
    decodes (`decode`).
    """

    def __init__(self, spec: str, dim: int) -> None:
        self.spec = spec
        self.dim = dim
        self.factory = self._factory(spec, dim)
        self._code_size = 2 * dim if self.factory is None else int(_new_codec(dim, self.factory).sa_code_size())
        self._index: faiss.Index | ResidualStack | None = None
        self._faiss_bytes: int | None = None  # memory_bytes of a trained faiss codec
        # True when the codec was trained on unit rows: decoded rows are then put back on the unit
        # sphere (see `decode`); recorded with the trained codec (`to_bytes`)
        self.unit_rows = False
        # faiss's fp16 scalar quantiser: its codes are IEEE half floats, and it widens them with
        # F16C in C++, several times faster than numpy's float16 -> float32 cast (bit-identical)
        self._half = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16)

    @staticmethod
    def _factory(spec: str, dim: int) -> str | None:
        """The faiss factory string of `spec` (None for float16), or InvalidArgument naming the problem."""
        if spec == "float16":
            return None
        named = _ALIASES.get(spec, spec)
        if match := _PQ_SPEC.match(named):
            m, bits = int(match.group(1)), int(match.group(2) or 8)
            _sub_quantisers(spec, dim, m, bits)
            return f"PQ{m}x{bits}"
        if match := _OPQ_SPEC.match(named):
            m, bits = int(match.group(1)), int(match.group(2) or 8)
            _sub_quantisers(spec, dim, m, bits)
            return f"OPQ{m},PQ{m}x{bits}"
        if match := _IVFPQ_SPEC.match(named):
            lists, stages = int(match.group(1)), int(match.group(2) or 1)
            m, bits = int(match.group(3)), int(match.group(4) or 8)
            if not 1 <= lists <= 65_536:
                raise InvalidArgument(f"codec {spec!r}: the number of coarse centroids must be in [1, 65536]")
            if not 1 <= stages <= _MAX_STAGES:
                raise InvalidArgument(f"codec {spec!r}: the number of coarse stages must be in [1, {_MAX_STAGES}]")
            _sub_quantisers(spec, dim, m, bits)
            return f"IVF{lists},PQ{m}x{bits}" if stages == 1 else f"Stack{stages}x{lists},PQ{m}x{bits}"
        if match := _PCA_SPEC.match(named):
            out = int(match.group(1))
            if not 1 <= out <= dim:
                raise InvalidArgument(f"codec {spec!r}: PCA to {out} dimensions out of {dim}")
            return f"PCA{out},SQ{match.group(2)}"
        if spec.startswith("faiss:") and len(spec) > 6:
            factory = spec[6:]
            try:
                if faiss.index_factory(dim, factory).sa_code_size() <= 0:
                    raise RuntimeError("it has no standalone codec")
            except RuntimeError as exc:
                raise InvalidArgument(f"codec {spec!r} is not a faiss codec for dimension {dim}: {exc}") from None
            return factory
        raise InvalidArgument(f"unknown token codec {spec!r}; expected 'float16', 'pq<M>[x<bits>]', "
                              f"'opq<M>[x<bits>]', 'ivf<L>[x<S>]pq<M>[x<bits>]', 'pca<D>sq<bits>', "
                              f"{', '.join(repr(a) for a in _ALIASES)} or 'faiss:<factory>'")

    @property
    def compressed(self) -> bool:
        return self.factory is not None

    @property
    def trained(self) -> bool:
        return self._index is not None

    @property
    def bytes_per_token(self) -> int:
        """Bytes of one stored row once encoded (float16: 2 * dim)."""
        return self._code_size

    def train(self, sample: np.ndarray) -> None:
        """Fit the codec on token rows (n, dim) float32; n must reach the codec's centroid count."""
        if not self.compressed:
            return
        index = _new_codec(self.dim, self.factory)
        if isinstance(index, faiss.IndexPreTransform):
            for i in range(index.chain.size()):
                transform = faiss.downcast_VectorTransform(index.chain.at(i))
                if isinstance(transform, faiss.OPQMatrix):
                    transform.niter = _OPQ_ITERATIONS  # faiss's 50 rounds of PQ training: minutes on a store
        inner = index.index if isinstance(index, faiss.IndexPreTransform) else index
        inner = inner if isinstance(inner, ResidualStack) else faiss.downcast_index(inner)
        if hasattr(inner, "do_polysemous_training"):
            # IndexPQ anneals a code permutation for polysemous search by default: a search
            # feature the codec never uses, and 10-100x the cost of the k-means itself
            inner.do_polysemous_training = False
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        try:
            index.train(sample)
        except RuntimeError as exc:  # too few points for the centroids, mostly
            raise InvalidArgument(f"cannot train codec {self.spec!r} on {len(sample)} token rows: {exc}") from None
        self._index, self._faiss_bytes = index, None
        norms = np.linalg.norm(sample, axis=1)
        self.unit_rows = bool(len(norms)) and bool(np.abs(norms - 1.0).max() <= _UNIT_TOLERANCE)

    def memory_bytes(self) -> int:
        """Resident bytes of the trained codec: its centroids and tables (0 for float16)."""
        if self._index is None:
            return 0
        if isinstance(self._index, ResidualStack):
            return self._index.memory_bytes()
        if self._faiss_bytes is None:  # a faiss codec holds what it serialises; measured once
            self._faiss_bytes = len(faiss.serialize_index(self._index))
        return self._faiss_bytes

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """Codes (n, code_size) uint8 of rows (n, dim) float32."""
        assert self._index is not None, "train the codec before encoding"
        if not len(rows):
            return np.empty((0, self.bytes_per_token), dtype=np.uint8)
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        # faiss's PQ encoder scores a whole batch against every sub-centroid at once: rows x M x
        # 2**bits floats (25 GB for 262k rows at PQ24x10), so large batches go in blocks
        return np.concatenate([self._index.sa_encode(rows[i: i + _ENCODE_BLOCK])
                               for i in range(0, len(rows), _ENCODE_BLOCK)])

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Rows (n, dim) float32 of codes (n, code_size) uint8."""
        assert self._index is not None, "train the codec before decoding"
        if not len(codes):
            return np.empty((0, self.dim), dtype=np.float32)
        rows = self._index.sa_decode(np.ascontiguousarray(codes, dtype=np.uint8))
        if self.unit_rows:
            # Quantisation shrinks some rows more than others (a centroid is an average), and
            # MaxSim's max over a document's rows favours the rows that shrank least: back on the
            # sphere the tokens were on, the max compares directions only. Free (no stored
            # bytes), and it halved the nDCG@10 loss of 32-byte codes on Cranfield.
            _normalise_rows(rows)
        return rows

    def widen(self, rows: np.ndarray) -> np.ndarray:
        """Rows (n, dim) float32 of float16 rows (n, dim)."""
        if not len(rows):
            return np.empty((0, self.dim), dtype=np.float32)
        return self._half.sa_decode(np.ascontiguousarray(rows, dtype=np.float16).view(np.uint8))

    def to_bytes(self) -> bytes:
        """The trained codec: faiss's serialisation, after a header when it decodes to unit rows
        (codecs without the header, as every codec written before it, decode as faiss does)."""
        assert self._index is not None
        if isinstance(self._index, ResidualStack):
            data = self._index.to_bytes()
        else:
            data = faiss.serialize_index(self._index).tobytes()
        return _UNIT_HEADER + data if self.unit_rows else data

    def load_bytes(self, data: bytes) -> None:
        unit_rows = data.startswith(_UNIT_HEADER)
        if unit_rows:
            data = data[len(_UNIT_HEADER):]
        try:
            if data.startswith(_STACK_MAGIC):
                index = ResidualStack.from_bytes(data)
            else:
                index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except (RuntimeError, ValueError) as exc:
            raise CorruptIndex(f"token codec of {self.spec!r} is unreadable: {exc}") from None
        if index.d != self.dim:
            raise CorruptIndex(f"codec of dimension {index.d} for a store of dimension {self.dim}")
        self._index, self.unit_rows, self._faiss_bytes = index, unit_rows, None


# ---------------------------------------------------------------------- segments
@dataclass(frozen=True)
class _Segment:
    """Documents written together: ids (n,) int64, offsets (n+1,) int64 and rows.

    `rows` is (T, dim) float16 when `encoded` is False, else (T, code_size) uint8 codes; a memory
    map for a segment read from disk. `name` is its directory under the root, None until saved.
    `crcs` (n,) uint32, a segment read from disk only: each document's CRC32C, checked on every
    read of its rows (`_take`, index/token_crc.py).
    """

    ids: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray
    encoded: bool
    name: str | None = None
    crcs: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class _View:
    """Everything a reader needs, replaced as a whole by writers (readers never see a half update).

    lookup_ids (N,) sorted int64 every stored id (live or tombstoned), with the segment and row
    of each in lookup_seg (N,) int32 and lookup_row (N,) int64; tombstones sorted int64. The
    codec travels with the segments: retraining it re-encodes them, and a reader must decode
    the codes of its view with the codec that wrote them.
    """

    codec: TokenCodec
    segments: tuple[_Segment, ...]
    lookup_ids: np.ndarray
    lookup_seg: np.ndarray
    lookup_row: np.ndarray
    tombstones: np.ndarray
    live_docs: int
    live_tokens: int
    dead_tokens: int


def _empty_view(codec: TokenCodec) -> _View:
    e = np.empty(0, dtype=np.int64)
    return _View(codec, (), e, np.empty(0, dtype=np.int32), e, e, 0, 0, 0)


def _decode(codec: TokenCodec, segment: _Segment, rows: np.ndarray) -> np.ndarray:
    """Rows of `segment` as float32: decoded codes, or widened float16."""
    return codec.decode(rows) if segment.encoded else codec.widen(rows)


def _take(segment: _Segment, docs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The rows of documents `docs` (n,) (row numbers in `segment`, `lengths` (n,) rows each),
    back to back: gathered with one np.take, then, for a segment read from disk, checked
    against each document's CRC32C (the gathered copy is what is checked and served)."""
    rows = np.take(segment.rows, ranges(segment.offsets[docs], lengths), axis=0)
    if segment.crcs is None:
        return rows
    return check_gathered(rows, lengths, segment.crcs[docs], segment.ids[docs], f"segment {segment.name}")


def _merged(view: _View) -> _Segment:
    """The live documents of `view` as one in-memory segment (codes stay codes, nothing decoded)."""
    encoded = view.codec.trained
    ids, lengths, rows = [], [], []
    for s in view.segments:
        keep = ~np.isin(s.ids, view.tombstones) if len(view.tombstones) else np.ones(len(s.ids), bool)
        ids.append(s.ids[keep])
        lengths.append(s.lengths[keep])
        docs = np.flatnonzero(keep)
        rows.append(_take(s, docs, s.lengths[docs]))
    width = view.codec.bytes_per_token if encoded else view.codec.dim
    return _Segment(
        np.concatenate(ids) if ids else np.empty(0, np.int64),
        lengths_to_offsets(np.concatenate(lengths) if lengths else np.empty(0, np.int64)),
        np.concatenate(rows) if rows else np.empty((0, width), np.uint8 if encoded else np.float16),
        encoded)


def _build_lookup(segments: Sequence[_Segment]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not segments:
        e = np.empty(0, dtype=np.int64)
        return e, np.empty(0, dtype=np.int32), e
    ids = np.concatenate([s.ids for s in segments])
    seg = np.concatenate([np.full(len(s.ids), i, dtype=np.int32) for i, s in enumerate(segments)])
    row = np.concatenate([np.arange(len(s.ids), dtype=np.int64) for s in segments])
    order = np.argsort(ids, kind="stable")
    return ids[order], seg[order], row[order]


class TokenStore:
    """Token matrices of documents by int64 id: add, tombstone, fetch packed, persist, compact.

    Ids are the store's internal ids, never reused: adding an id the store holds (even
    tombstoned) raises InvalidArgument. A compressed codec is trained once `train_size` token
    rows are held (or by an explicit `train`); until then rows stay float16, so a small
    collection is exact, never badly quantised. Thread-safe: writers serialise on a lock and
    publish a new immutable view; readers use whichever view is current.
    """

    def __init__(self, dim: int, codec: str = "float16", *, train_size: int = 32_768) -> None:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
            raise InvalidArgument(f"token dimension must be a positive integer, got {dim!r}")
        if train_size <= 0:
            raise InvalidArgument(f"train_size must be positive, got {train_size}")
        self.dim = int(dim)
        self.train_size = int(train_size)
        self._view = _empty_view(TokenCodec(codec, self.dim))
        self._lock = threading.RLock()
        # Persistence state: the directory this store mirrors, the generation its CURRENT names,
        # and whether the next save must rewrite everything (codec trained, compaction).
        self._root: Path | None = None
        self._generation = 0
        self._seq = 0
        self._rewrite = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, ids: np.ndarray, token_matrices: Sequence[np.ndarray], *, dim: int | None = None,
              codec: str = "float16", train_size: int = 32_768) -> TokenStore:
        """A store holding `token_matrices` (list of (n_i, d) float32) under `ids` (n,) int64.

        A compressed codec is trained on these rows at once, whatever `train_size` says (it
        raises InvalidArgument when they are fewer than the codec's centroids, 2**bits for PQ).
        """
        if dim is None:
            if not len(token_matrices):
                raise InvalidArgument("cannot infer the token dimension of an empty build; pass dim")
            dim = int(np.shape(token_matrices[0])[-1])
        store = cls(dim, codec, train_size=train_size)
        store.add(ids, token_matrices, train=False)
        if store.codec.compressed:
            store.train()
        return store

    @classmethod
    def from_packed(cls, records: Iterable[tuple[np.ndarray, Sequence[bytes]]], dim: int, *,
                    codec: str = "float16", train_size: int = 32_768) -> TokenStore:
        """Rebuild from the store's bytes: batches of (ids (n,) int64, `pack_tokens` bytes), as
        `Store.iter_vectors(collection, TOKENS_VECTOR)` yields them."""
        store = cls(dim, codec, train_size=train_size)
        for ids, raws in records:
            store.add(ids, [unpack_tokens(raw) for raw in raws])
        return store

    # ------------------------------------------------------------------ sizes
    @property
    def codec(self) -> TokenCodec:
        """The codec of the current rows (replaced, never changed in place, when retrained)."""
        return self._view.codec

    def __len__(self) -> int:
        """Live documents."""
        return self._view.live_docs

    @property
    def num_tokens(self) -> int:
        """Token rows of the live documents."""
        return self._view.live_tokens

    @property
    def encoded(self) -> bool:
        """True once rows are kept as codes of a trained codec."""
        return self.codec.trained

    @property
    def bytes_per_token(self) -> int:
        """Bytes one token row takes on disk now: 2 * dim (float16) or the codec's code size."""
        return self.codec.bytes_per_token if self.codec.trained else 2 * self.dim

    def stored_bytes(self) -> int:
        """Bytes of every stored row, ids and offsets (dead rows included until compaction)."""
        return sum(s.rows.nbytes + s.ids.nbytes + s.offsets.nbytes for s in self._view.segments)

    def memory_bytes(self) -> int:
        """Resident bytes: id maps, offsets, tombstones, the codec and rows not memory-mapped from disk."""
        view = self._view
        resident = sum(s.ids.nbytes + s.offsets.nbytes + (0 if isinstance(s.rows, np.memmap) else s.rows.nbytes)
                       for s in view.segments)
        return (resident + view.lookup_ids.nbytes * 2 + view.lookup_seg.nbytes + view.tombstones.nbytes
                + view.codec.memory_bytes())

    def ids(self) -> np.ndarray:
        """Sorted int64 ids of the live documents."""
        view = self._view
        return np.setdiff1d(view.lookup_ids, view.tombstones, assume_unique=True)

    # ------------------------------------------------------------------ lookups
    @staticmethod
    def _find(view: _View, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(segment (n,) int32, row (n,) int64, live (n,) bool) of each id; segment -1 if never stored."""
        seg = np.full(len(ids), -1, dtype=np.int32)
        row = np.full(len(ids), -1, dtype=np.int64)
        if not len(view.lookup_ids) or not len(ids):
            return seg, row, np.zeros(len(ids), dtype=bool)
        pos = np.minimum(np.searchsorted(view.lookup_ids, ids), len(view.lookup_ids) - 1)
        found = view.lookup_ids[pos] == ids
        seg[found], row[found] = view.lookup_seg[pos[found]], view.lookup_row[pos[found]]
        live = found & ~np.isin(ids, view.tombstones) if len(view.tombstones) else found
        return seg, row, live

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """(n,) bool: which of `ids` are live documents of the store."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return self._find(self._view, ids)[2]

    def get_packed(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token rows of `ids` packed: tokens (T, dim) float32 and offsets (n+1,) int64.

        Document i of `ids` owns tokens[offsets[i]:offsets[i+1]]; an id that is not live (never
        added, or deleted) owns no rows. Rows are gathered segment by segment with one fancy
        index each, and decoded on the fly when the store is encoded.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        view = self._view
        seg, row, live = self._find(view, ids)
        lengths = np.zeros(len(ids), dtype=np.int64)
        for s in np.unique(seg[live]):
            sel = live & (seg == s)
            lengths[sel] = view.segments[s].lengths[row[sel]]
        offsets = lengths_to_offsets(lengths)
        used = np.unique(seg[live])
        if len(used) == 1:  # the usual case after a compaction: rows land in order, no scatter
            segment = view.segments[used[0]]
            # np.take is several times faster than fancy indexing for row gathers
            return _decode(view.codec, segment, _take(segment, row[live], lengths[live])), offsets
        out = np.empty((int(offsets[-1]), self.dim), dtype=np.float32)
        for s in used:
            segment = view.segments[s]
            sel = np.flatnonzero(live & (seg == s))
            dst = ranges(offsets[sel], lengths[sel])
            out[dst] = _decode(view.codec, segment, _take(segment, row[sel], lengths[sel]))
        return out, offsets

    def get(self, ids: np.ndarray) -> list[np.ndarray]:
        """Token matrices (n_i, dim) float32 of `ids`; NotFound names the ids that are not live."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        live = self.contains(ids)
        if not live.all():
            missing = ids[~live]
            raise NotFound(f"token store holds no live document with id(s) {missing[:10].tolist()}"
                           + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
        tokens, offsets = self.get_packed(ids)
        return np.split(tokens, offsets[1:-1])

    def iter_blocks(self, max_tokens: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every live document, in blocks: (ids (n,) int64, tokens (T, dim) float32, offsets (n+1,) int64).

        A block holds whole documents and about `max_tokens` rows (more when one document is
        longer); exhaustive scoring streams a store through this without loading it whole.
        """
        view = self._view
        for segment in view.segments:
            lengths = segment.lengths
            live = ~np.isin(segment.ids, view.tombstones) if len(view.tombstones) else np.ones(len(lengths), bool)
            rows = np.flatnonzero(live)
            start = 0
            while start < len(rows):
                ends = np.cumsum(lengths[rows[start:]])
                stop = start + max(1, int(np.searchsorted(ends, max_tokens, side="right")))
                block = rows[start:stop]
                offsets = lengths_to_offsets(lengths[block])
                yield segment.ids[block], _decode(view.codec, segment, _take(segment, block, lengths[block])), offsets
                start = stop

    # ------------------------------------------------------------------ writes
    def add(self, ids: np.ndarray, token_matrices: Sequence[np.ndarray], *, train: bool = True) -> None:
        """Add documents: ids (n,) int64 and one (n_i, dim) float32 matrix each (n_i may be 0).

        Raises InvalidArgument for a shape mismatch, non-finite values, an id repeated in the
        batch or an id the store already holds. With `train`, a compressed codec is trained
        once the store holds `train_size` rows.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(token_matrices):
            raise InvalidArgument(f"{len(ids)} ids for {len(token_matrices)} token matrices")
        if not len(ids):
            return
        matrices = [_as_token_matrix(m, self.dim, f"token matrix of id {int(i)}") for i, m in zip(ids, token_matrices)]
        if len(np.unique(ids)) != len(ids):
            raise InvalidArgument("ids repeat within the batch")
        lengths = np.fromiter((len(m) for m in matrices), dtype=np.int64, count=len(matrices))
        rows = np.concatenate(matrices) if lengths.sum() else np.empty((0, self.dim), np.float32)
        with self._lock:
            view = self._view
            held = self._find(view, ids)[0] >= 0
            if held.any():  # a replay of what the store holds already: skipped if the same
                ids, lengths, rows = self._without_held(ids, lengths, rows, held)
                if not len(ids):
                    return
            if view.codec.trained:
                segment = _Segment(ids, lengths_to_offsets(lengths), view.codec.encode(rows), True)
            else:
                segment = _Segment(ids, lengths_to_offsets(lengths), rows.astype(np.float16), False)
            self._publish(view.codec, view.segments + (segment,), view.tombstones, appended=segment)
            codec = self.codec
            if train and codec.compressed and not codec.trained and self.num_tokens >= self.train_size:
                self.train()

    def _without_held(self, ids: np.ndarray, lengths: np.ndarray, rows: np.ndarray,
                      held: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The batch less the held ids whose stored tokens equal the new ones as this store keeps
        them (float16, or its codec's round trip, of either); InvalidArgument for other tokens."""
        held_rows = np.repeat(held, lengths)
        mine = rows[held_rows]
        stored, stored_offsets = self.get_packed(ids[held])
        same = np.array_equal(np.diff(stored_offsets), lengths[held])
        if same and len(mine):
            half = mine.astype(np.float16).astype(np.float32)
            forms = [half]
            codec = self._view.codec
            if codec.trained:
                forms += [codec.decode(codec.encode(mine)), codec.decode(codec.encode(half))]
            same = bool(np.logical_or.reduce([(stored == f).all(axis=1) for f in forms]).all())
        if not same:
            raise InvalidArgument(f"token store already holds id(s) {ids[held][:10].tolist()} with other "
                                  "tokens (ids are never reused)")
        return ids[~held], lengths[~held], rows[~held_rows]

    def delete(self, ids: np.ndarray) -> None:
        """Tombstone `ids`; ids the store does not hold (or already tombstoned) are ignored."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        with self._lock:
            view = self._view
            live = self._find(view, ids)[2]
            if live.any():
                self._publish(view.codec, view.segments, np.union1d(view.tombstones, ids[live]))

    def train(self, sample: np.ndarray | None = None) -> None:
        """Train the compressed codec and re-encode every stored row; the next save rewrites the store.

        sample: (n, dim) float32 token rows; by default up to 65,536 rows drawn from the store.
        Retraining a trained codec decodes the old codes first (a second quantisation error).
        """
        with self._lock:
            view = self._view
            if not view.codec.compressed:
                return
            if sample is None:
                sample = self._training_sample(view)
            codec = TokenCodec(view.codec.spec, self.dim)
            codec.train(_as_token_matrix(sample, self.dim, "training sample"))
            segments = tuple(
                replace(s, rows=codec.encode(_decode(view.codec, s, _take(s, np.arange(len(s.ids)), s.lengths))),
                        encoded=True, name=None, crcs=None)
                for s in view.segments)
            self._publish(codec, segments, view.tombstones)
            self._rewrite = True

    def _training_sample(self, view: _View) -> np.ndarray:
        total = sum(len(s.rows) for s in view.segments)
        rng = np.random.default_rng(1234)
        take = np.sort(rng.choice(total, size=min(total, _MAX_TRAIN_ROWS), replace=False))
        parts, base = [], 0
        for s in view.segments:
            local = take[(take >= base) & (take < base + len(s.rows))] - base
            parts.append(_decode(view.codec, s, np.take(s.rows, local, axis=0)))
            base += len(s.rows)
        return np.concatenate(parts) if parts else np.empty((0, self.dim), np.float32)

    def compact(self) -> None:
        """Drop tombstoned rows: rewrite the live documents as one segment.

        A store saved to a directory publishes the rewrite there (crash-safe, via `save`);
        an in-memory store rebuilds its arrays.
        """
        with self._lock:
            if self._root is not None:
                self._rewrite = True
                self.save(self._root, seq=self._seq)
                return
            view = self._view
            self._publish(view.codec, (_merged(view),), np.empty(0, np.int64))

    def _publish(self, codec: TokenCodec, segments: tuple[_Segment, ...], tombstones: np.ndarray,
                 appended: _Segment | None = None) -> None:
        """Install a new view. `appended`: the one segment added to the current view, merged into
        the sorted lookup in O(N) instead of re-sorting it."""
        view = self._view
        if appended is not None:
            order = np.argsort(appended.ids)
            new_ids = appended.ids[order]
            at = np.searchsorted(view.lookup_ids, new_ids)
            self._view = replace(
                view, segments=segments,
                lookup_ids=np.insert(view.lookup_ids, at, new_ids),
                lookup_seg=np.insert(view.lookup_seg, at, np.int32(len(segments) - 1)),
                lookup_row=np.insert(view.lookup_row, at, order.astype(np.int64)),
                live_docs=view.live_docs + len(new_ids), live_tokens=view.live_tokens + int(appended.offsets[-1]))
            return
        lookup_ids, lookup_seg, lookup_row = _build_lookup(segments)
        tombstones = np.ascontiguousarray(tombstones, dtype=np.int64)
        pos = np.searchsorted(lookup_ids, tombstones)
        held = pos < len(lookup_ids)
        held[held] = lookup_ids[pos[held]] == tombstones[held]
        tombstones, pos = tombstones[held], pos[held]  # a tombstone of a compacted-away id is moot
        seg, row = lookup_seg[pos], lookup_row[pos]
        dead_tokens = sum(int(segments[s].lengths[row[seg == s]].sum()) for s in np.unique(seg))
        total_tokens = sum(int(s.offsets[-1]) for s in segments)
        self._view = _View(codec, segments, lookup_ids, lookup_seg, lookup_row, tombstones,
                           len(lookup_ids) - len(tombstones), total_tokens - dead_tokens, dead_tokens)

    # ------------------------------------------------------------------ persistence
    def save(self, root: str | Path, *, seq: int = 0, meta: dict[str, Any] | None = None) -> None:
        """Persist into `root` crash-safely and make it this store's directory.

        Writes only the documents added since the last save into `root` (a new segment) plus
        the tombstones, unless a full rewrite is due (another directory, codec newly trained,
        dead rows past a quarter, or `compact`). `seq` is the store sequence number covered.
        """
        root = Path(root)
        with self._lock:
            view = self._view
            root.mkdir(parents=True, exist_ok=True)
            self._remove_unreferenced(root)
            same_root = self._root is not None and self._root.resolve() == root.resolve()
            rewrite = (not same_root or self._rewrite
                       or view.dead_tokens > _COMPACT_FRACTION * max(view.live_tokens + view.dead_tokens, 1))
            generation = (self._generation if same_root else self._read_generation(root)) + 1
            files: dict[str, str] = {}
            if rewrite:
                merged = _merged(view)
                segments = (self._write_segment(root, f"seg-{generation:08d}", merged, files),) if len(merged.ids) else ()
                tombstones = np.empty(0, np.int64)
            else:
                segments = []
                old_files = self._current_files(root)
                pending = [s for s in view.segments if s.name is None]
                for s in view.segments:
                    if s.name is not None:
                        segments.append(s)
                        files.update({k: v for k, v in old_files.items() if k.startswith(s.name + "/")})
                if pending:
                    merged = _merged(replace(view, segments=tuple(pending)))
                    if len(merged.ids):
                        segments.append(self._write_segment(root, f"seg-{generation:08d}", merged, files))
                segments = tuple(segments)
                # tombstones of pending documents were applied by not writing them
                persisted = np.concatenate([s.ids for s in segments]) if segments else np.empty(0, np.int64)
                tombstones = view.tombstones[np.isin(view.tombstones, persisted)]
            tomb_name = None
            if len(tombstones):
                tomb_name = f"tombstones-{generation:08d}.npy"
                self._write_file(root / tomb_name, lambda fh: np.save(fh, tombstones))
                files[tomb_name] = sha256_file(root / tomb_name)
            codec_name = None
            if view.codec.trained:
                codec_name = f"codec-{generation:08d}.faiss"
                data = view.codec.to_bytes()
                self._write_file(root / codec_name, lambda fh: fh.write(data))
                files[codec_name] = sha256_file(root / codec_name)
            fsync_path(root)
            manifest = {
                "format": FORMAT, "dim": self.dim, "codec": view.codec.spec, "train_size": self.train_size,
                "generation": generation, "seq": int(seq),
                "segments": [{"dir": s.name, "docs": len(s.ids), "tokens": int(s.offsets[-1]), "encoded": s.encoded}
                             for s in segments],
                "tombstones": tomb_name, "codebook": codec_name, "files": files, "meta": meta or {},
            }
            write_atomic(root / MANIFEST, json.dumps(manifest, indent=1).encode())
            # from here on the new version is the current one
            self._root, self._generation, self._seq, self._rewrite = root, generation, int(seq), False
            self._publish(view.codec, tuple(self._reopen(root, s) for s in segments), tombstones)
            self._remove_unreferenced(root)

    @classmethod
    def load(cls, root: str | Path, *, verify: bool = True) -> TokenStore:
        """Open the store saved in `root`; token rows are memory-mapped, not read.

        `verify` checks every file against its checksum in the manifest (reads every byte once);
        without it only shapes are checked. Raises CorruptIndex when the files do not match the
        manifest, NotFound when `root` holds no store.
        """
        root = Path(root)
        manifest = cls._read_manifest(root)
        if verify:
            for rel, digest in manifest["files"].items():
                path = root / rel
                if not path.exists():
                    raise CorruptIndex(f"token store file {path} is missing")
                if sha256_file(path) != digest:
                    raise CorruptIndex(f"token store file {path} fails its checksum")
        try:
            store = cls(manifest["dim"], manifest["codec"], train_size=manifest.get("train_size", 32_768))
            if manifest["codebook"]:
                store.codec.load_bytes((root / manifest["codebook"]).read_bytes())
            segments = []
            for entry in manifest["segments"]:
                segment = store._read_segment(root, entry["dir"], bool(entry["encoded"]))
                if len(segment.ids) != entry["docs"] or int(segment.offsets[-1]) != entry["tokens"]:
                    raise CorruptIndex(f"segment {entry['dir']} holds {len(segment.ids)} documents and "
                                       f"{int(segment.offsets[-1])} rows, the manifest says {entry}")
                segments.append(segment)
            tombstones = np.load(root / manifest["tombstones"]) if manifest["tombstones"] else np.empty(0, np.int64)
        except CorruptIndex:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise CorruptIndex(f"token store in {root} is unreadable: {exc}") from None
        if any(s.encoded for s in segments) and not store.codec.trained:
            raise CorruptIndex(f"token store in {root} has encoded segments but no codebook")
        store._publish(store.codec, tuple(segments), tombstones.astype(np.int64))
        if len(np.unique(store._view.lookup_ids)) != len(store._view.lookup_ids):
            raise CorruptIndex(f"token store in {root} holds an id in two segments")
        store._root, store._generation, store._seq = root, int(manifest["generation"]), int(manifest["seq"])
        return store

    @property
    def seq(self) -> int:
        """Store sequence number covered by the last save or load."""
        return self._seq

    @staticmethod
    def _read_manifest(root: Path) -> dict[str, Any]:
        path = root / MANIFEST
        if not path.exists():
            raise NotFound(f"no token store in {root} ({MANIFEST} is missing)")
        try:
            manifest = json.loads(path.read_bytes())
            if manifest.get("format") != FORMAT:
                raise CorruptIndex(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
            for key in ("dim", "codec", "generation", "seq", "segments", "tombstones", "codebook", "files"):
                manifest[key]  # noqa: B018 - required keys
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptIndex(f"token store manifest {path} is unreadable: {exc}") from None
        return manifest

    @classmethod
    def _read_generation(cls, root: Path) -> int:
        try:
            return int(cls._read_manifest(root)["generation"])
        except (NotFound, CorruptIndex):
            return 0

    @classmethod
    def _current_files(cls, root: Path) -> dict[str, str]:
        try:
            return dict(cls._read_manifest(root)["files"])
        except (NotFound, CorruptIndex):
            return {}

    def _read_segment(self, root: Path, name: str, encoded: bool) -> _Segment:
        directory = root / name
        ids = np.load(directory / "ids.npy")
        offsets = np.load(directory / "offsets.npy")
        rows = np.load(directory / ("codes.npy" if encoded else "tokens.npy"), mmap_mode="r")
        width = self.codec.bytes_per_token if encoded else self.dim
        if (ids.dtype != np.int64 or offsets.dtype != np.int64 or ids.ndim != 1 or offsets.shape != (len(ids) + 1,)
                or rows.ndim != 2 or rows.shape[1] != width or offsets[0] != 0 or offsets[-1] != len(rows)
                or (len(ids) and np.any(np.diff(offsets) < 0))):
            raise CorruptIndex(f"segment {directory} has inconsistent ids {ids.shape}, offsets {offsets.shape} "
                               f"and rows {rows.shape}")
        # a segment saved before rows carried CRCs gets them from its rows now, which the open
        # has just checked against their SHA-256 (the collection's snapshot, or `verify`)
        crcs = np.load(directory / CRC_FILE) if (directory / CRC_FILE).exists() else document_crcs(rows, offsets)
        if crcs.shape != ids.shape:
            raise CorruptIndex(f"segment {directory} has {crcs.shape} CRCs for {len(ids)} documents")
        return _Segment(ids, offsets, rows, encoded, name, crcs.astype(np.uint32))

    def _reopen(self, root: Path, segment: _Segment) -> _Segment:
        """The saved segment memory-mapped from disk, so that RAM holds no copy of its rows."""
        if isinstance(segment.rows, np.memmap) and segment.name is not None:
            return segment
        return self._read_segment(root, segment.name, segment.encoded)

    def _write_segment(self, root: Path, name: str, segment: _Segment, files: dict[str, str]) -> _Segment:
        """Write `segment` as directory `name` via a temporary directory renamed into place."""
        tmp = root / (name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        arrays = {"ids.npy": segment.ids, "offsets.npy": segment.offsets,
                  ("codes.npy" if segment.encoded else "tokens.npy"): segment.rows,
                  CRC_FILE: document_crcs(segment.rows, segment.offsets)}
        for fname, array in arrays.items():
            self._write_file(tmp / fname, lambda fh, a=array: np.save(fh, np.ascontiguousarray(a)), rename=False)
            files[f"{name}/{fname}"] = sha256_file(tmp / fname)
        fsync_path(tmp)
        final = root / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return replace(segment, name=name)

    @staticmethod
    def _write_file(path: Path, write: Any, *, rename: bool = True) -> None:
        """Write `path` through `write(fh)` and fsync it; with `rename`, via a temporary name."""
        target = path.with_name(path.name + ".tmp") if rename else path
        with open(target, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if rename:
            os.replace(target, path)

    @classmethod
    def _remove_unreferenced(cls, root: Path) -> None:
        """Delete files of interrupted or superseded saves: whatever CURRENT does not name."""
        referenced = {rel.split("/", 1)[0] for rel in cls._current_files(root)}
        for entry in root.iterdir():
            if entry.name == MANIFEST or entry.name in referenced:
                continue
            if entry.name.startswith(("seg-", "tombstones-", "codec-")) or entry.name == MANIFEST + ".tmp":
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
