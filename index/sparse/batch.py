"""Sparse vectors as CSR arrays, and the checks every sparse input goes through.

A `SparseBatch` holds n sparse vectors over a vocabulary of term ids:

    indptr  (n + 1,) int64    row i owns entries indptr[i]:indptr[i + 1]
    indices (nnz,)   int32    term ids, strictly increasing within a row
    values  (nnz,)   float32  weights, finite and > 0

That is the layout of `scipy.sparse.csr_matrix`, so a batch converts to and from scipy
without copies where dtypes agree. `canonical_batch` brings any batch to that form
(rows sorted, duplicate terms summed, zeros dropped) and rejects what the index cannot
hold: NaN or infinite weights, negative weights, term ids outside the vocabulary.
A batch that is canonical and valid already (every batch a search builds from one
query, typically) is recognised by a single numba pass (`canonical_status`), so the
checks cost microseconds per query, not a dozen numpy calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from lamina.index.errors import InvalidArgument

CANONICAL = 0  # valid, canonical, every row non-empty
CANONICAL_WITH_EMPTY_ROWS = 1  # valid and canonical, some row has no terms
NOT_CANONICAL = 2  # unsorted, duplicate or zero entries, or invalid: take the numpy path


@dataclass(frozen=True, eq=False)
class SparseBatch:
    """n sparse vectors in CSR form (see the module docstring for shapes and dtypes)."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        indptr = np.ascontiguousarray(self.indptr, dtype=np.int64)
        raw = np.asarray(self.indices)
        if raw.dtype != np.int32 and raw.size and (raw.min() < 0 or raw.max() > np.iinfo(np.int32).max):
            bad = raw.max() if raw.max() > np.iinfo(np.int32).max else raw.min()
            raise InvalidArgument(f"sparse term id {int(bad)} is outside [0, {np.iinfo(np.int32).max}]")
        indices = np.ascontiguousarray(raw, dtype=np.int32)
        values = np.ascontiguousarray(self.values, dtype=np.float32)
        if indptr.ndim != 1 or len(indptr) < 1 or indices.ndim != 1 or values.ndim != 1:
            raise InvalidArgument("a sparse batch needs 1-d indptr (n + 1,), indices (nnz,) and values (nnz,)")
        if len(indices) != len(values):
            raise InvalidArgument(f"sparse batch has {len(indices)} indices but {len(values)} values")
        if indptr[0] != 0 or indptr[-1] != len(indices) or (len(indptr) > 2 and (indptr[1:] < indptr[:-1]).any()):
            raise InvalidArgument(
                f"sparse batch indptr must rise from 0 to nnz={len(indices)}, got {indptr[:4]}...{indptr[-1:]}"
            )
        object.__setattr__(self, "indptr", indptr)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, n: int = 0) -> SparseBatch:
        """n vectors without terms."""
        return cls(np.zeros(n + 1, np.int64), np.empty(0, np.int32), np.empty(0, np.float32))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[int, float] | tuple[Sequence[int], Sequence[float]]]) -> SparseBatch:
        """Build from rows given as {term: weight} or (terms, weights); not canonicalised."""
        lengths: list[int] = []
        all_indices: list[np.ndarray] = []
        all_values: list[np.ndarray] = []
        for row in rows:
            if isinstance(row, Mapping):
                terms, weights = list(row.keys()), list(row.values())
            else:
                terms, weights = row
            try:
                t = np.asarray(terms, dtype=np.int64).reshape(-1)
                w = np.asarray(weights, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(f"sparse vector is not numeric: {exc}") from None
            if len(t) != len(w):
                raise InvalidArgument(f"sparse vector has {len(t)} terms but {len(w)} weights")
            if len(t) and (t.min() < np.iinfo(np.int32).min or t.max() > np.iinfo(np.int32).max):
                bad = t.max() if t.max() > np.iinfo(np.int32).max else t.min()
                raise InvalidArgument(f"term id {int(bad)} does not fit a 32-bit term id")
            lengths.append(len(t))
            all_indices.append(t.astype(np.int32))
            all_values.append(w.astype(np.float32))
        indptr = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        if not lengths:
            return cls.empty()
        return cls(indptr, np.concatenate(all_indices), np.concatenate(all_values))

    @classmethod
    def from_scipy(cls, matrix: Any) -> SparseBatch:
        """From any scipy.sparse matrix or array (converted to CSR)."""
        csr = matrix.tocsr()
        return cls(csr.indptr, csr.indices, csr.data)

    @staticmethod
    def concat(batches: Sequence[SparseBatch]) -> SparseBatch:
        """Rows of every batch, in order."""
        if not batches:
            return SparseBatch.empty()
        offsets = np.cumsum([0] + [b.nnz for b in batches[:-1]])
        indptr = np.concatenate([[0]] + [b.indptr[1:] + off for b, off in zip(batches, offsets, strict=True)])
        return SparseBatch(indptr, np.concatenate([b.indices for b in batches]),
                           np.concatenate([b.values for b in batches]))

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(terms, weights) of row i, views into the batch."""
        s, e = self.indptr[i], self.indptr[i + 1]
        return self.indices[s:e], self.values[s:e]

    def row_lengths(self) -> np.ndarray:
        """(n,) int64 number of stored terms of each row."""
        return np.diff(self.indptr)

    def take(self, rows: np.ndarray) -> SparseBatch:
        """The batch of the given rows (n_rows,) int, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # entry j of the output comes from starts[row of j] + (j - indptr[row of j])
        src = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1], dtype=np.int64)
        return SparseBatch(indptr, self.indices[src], self.values[src])

    def to_scipy(self, vocab_size: int) -> Any:
        """A scipy.sparse.csr_matrix (n, vocab_size) float32 sharing the arrays."""
        import scipy.sparse

        return scipy.sparse.csr_matrix((self.values, self.indices, self.indptr), shape=(len(self), vocab_size))

    def to_dicts(self) -> list[dict[int, float]]:
        """Rows as {term: weight}; for small batches, tests and debugging."""
        return [dict(zip(t.tolist(), v.tolist(), strict=True)) for t, v in (self.row(i) for i in range(len(self)))]


@numba.njit(cache=True, nogil=True)
def canonical_status(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, vocab_size: int) -> int:
    """One pass over a CSR batch: CANONICAL, CANONICAL_WITH_EMPTY_ROWS or NOT_CANONICAL.

    Canonical means every weight finite and > 0 and every row's term ids strictly
    increasing within [0, vocab_size). NaN fails `value > 0`, so it is caught too.
    """
    status = CANONICAL
    for i in range(indptr.shape[0] - 1):
        s, e = indptr[i], indptr[i + 1]
        if s == e:
            status = CANONICAL_WITH_EMPTY_ROWS
            continue
        previous = -1
        for p in range(s, e):
            term = indices[p]
            value = values[p]
            if term <= previous or term >= vocab_size or not (value > 0.0) or value == np.inf:
                return NOT_CANONICAL
            previous = term
    return status


def canonical_batch(batch: SparseBatch, vocab_size: int, what: str = "document") -> SparseBatch:
    """Check `batch` against a vocabulary and return it in canonical CSR form.

    Rows come back with strictly increasing term ids, duplicate terms summed and zero
    weights dropped. Raises InvalidArgument naming the row (`what` i) for a NaN or
    infinite weight, a negative weight, or a term id outside [0, vocab_size).
    """
    if not isinstance(batch, SparseBatch):
        raise InvalidArgument(f"{what} vectors must be a SparseBatch, got {type(batch).__name__}")
    if batch.nnz == 0 or canonical_status(batch.indptr, batch.indices, batch.values, vocab_size) != NOT_CANONICAL:
        return batch
    row_of = np.repeat(np.arange(len(batch), dtype=np.int64), batch.row_lengths())
    values = batch.values
    bad = ~np.isfinite(values)
    if bad.any():
        raise InvalidArgument(f"{what} {int(row_of[np.argmax(bad)])} has a NaN or infinite weight")
    bad = values < 0
    if bad.any():
        at = int(np.argmax(bad))
        raise InvalidArgument(
            f"{what} {int(row_of[at])} has negative weight {float(values[at]):g} for term {int(batch.indices[at])};"
            " sparse weights must be >= 0"
        )
    indices = batch.indices
    bad = (indices < 0) | (indices >= vocab_size)
    if bad.any():
        at = int(np.argmax(bad))
        raise InvalidArgument(
            f"{what} {int(row_of[at])} has term id {int(indices[at])} outside the vocabulary [0, {vocab_size})"
        )
    key = row_of * vocab_size + indices
    if np.all(key[1:] > key[:-1]) and np.all(values > 0):
        return batch  # already canonical: the common case costs two passes
    keep = values > 0
    key, values, row_of = key[keep], values[keep], row_of[keep]
    unique_keys, inverse = np.unique(key, return_inverse=True)
    summed = np.bincount(inverse, weights=values.astype(np.float64), minlength=len(unique_keys))
    rows = unique_keys // vocab_size
    indptr = np.zeros(len(batch) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(batch)), out=indptr[1:])
    return SparseBatch(indptr, (unique_keys % vocab_size).astype(np.int32), summed.astype(np.float32))


def check_queries(queries: SparseBatch, vocab_size: int) -> SparseBatch:
    """Canonical query batch; a query without a positive weight is INVALID_ARGUMENT.

    An empty query (for example text that tokenises to nothing, or only to terms the
    encoder weighs zero) raises InvalidArgument("query i has no terms ..."): an index
    cannot rank documents for it, and an empty answer would look like "no match".
    """
    if isinstance(queries, SparseBatch) and queries.nnz \
            and canonical_status(queries.indptr, queries.indices, queries.values, vocab_size) == CANONICAL:
        return queries  # the common case: one numba pass
    queries = canonical_batch(queries, vocab_size, what="query")
    empty = queries.row_lengths() == 0
    if empty.any():
        raise InvalidArgument(f"query {int(np.argmax(empty))} has no terms: no term of the vocabulary "
                              "has a positive weight in it")
    return queries


# ---------------------------------------------------------------------------- store bytes
def pack_sparse(indices: np.ndarray, values: np.ndarray) -> bytes:
    """Bytes of one sparse vector for the store: nnz int32 term ids, then nnz float32 weights."""
    indices = np.ascontiguousarray(indices, dtype="<i4")
    values = np.ascontiguousarray(values, dtype="<f4")
    if len(indices) != len(values):
        raise InvalidArgument(f"sparse vector has {len(indices)} term ids but {len(values)} weights")
    return indices.tobytes() + values.tobytes()


def unpack_sparse(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Term ids (nnz,) int32 and weights (nnz,) float32 of `pack_sparse` bytes."""
    if len(data) % 8:
        raise InvalidArgument(f"packed sparse vector has {len(data)} bytes, not a multiple of 8")
    nnz = len(data) // 8
    return (np.frombuffer(data, dtype="<i4", count=nnz).astype(np.int32),
            np.frombuffer(data, dtype="<f4", offset=4 * nnz).astype(np.float32))


def batch_from_packed(raws: Sequence[bytes]) -> SparseBatch:
    """A SparseBatch of `pack_sparse` rows, in order."""
    if not raws:
        return SparseBatch.empty()
    rows = [unpack_sparse(raw) for raw in raws]
    lengths = np.fromiter((len(ids) for ids, _ in rows), dtype=np.int64, count=len(rows))
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return SparseBatch(indptr, np.concatenate([ids for ids, _ in rows]), np.concatenate([v for _, v in rows]))
