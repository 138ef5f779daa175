"""The roles the indexes play, one small typed Protocol each, with their semantics stated.

Shared by every role:
- ids are int64 internal ids handed out by the store (`lamina.index.store`); an index never sees
  document ids, and ids are never reused (a deleted id does not come back).
- scores are larger-is-better: the inner product, or minus the squared L2 distance (dense), or
  the sparse dot product. Results are (nq, k) float32 scores and (nq, k) int64 ids, best first,
  padded with -inf and -1 where fewer than k qualify (`lamina.index.topk.padded`).
- errors are `lamina.index.errors`: InvalidArgument for a bad shape, dimension, k or knob,
  CorruptIndex from `load` for damaged files; nothing is changed by a call that raises.
- `allowed`: sorted unique int64 ids (`lamina.index.ids`) the results are restricted to, the
  hook filtered and multi-tenant search use; None admits every live id.
- `params`: the per-query knobs of the backend (nprobe, efSearch, max_postings, query_cut, ...);
  an unknown or invalid knob is InvalidArgument, checked once per distinct set (`CheckedParams`).
- `save(directory)` writes plain files into the directory it is given, which the caller
  publishes (`lamina.index.snapshot`); `load` is a classmethod that reads them back, with a
  backend-specific signature (the factory that calls it uniformly is still to come).

Implemented by `DenseIndex` (`dense.py`) and `SpannIndex` (`spann/`) for VectorIndex,
`SparseIndex` (`sparse/`) for SparseVectorIndex and `TenantIndex` (`tenants/`) for TenantVectorIndex.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np


@runtime_checkable
class VectorIndex(Protocol):
    """A dense first stage: vectors (n, d) float32 under int64 ids."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (n, d) float32 under new ids (n,) int64; a wrong shape or dimension is
        InvalidArgument. Ids must be new: SpannIndex rejects a repeated or held id
        (InvalidArgument), DenseIndex trusts the write path (the store hands each id out once).
        A replay of the store's log passes the backend's `skip_held` option (DenseIndex) or
        `seq` (SpannIndex), which skips ids already held with the same vector."""

    def delete(self, ids: np.ndarray) -> None:
        """Remove ids; ids the index does not hold are ignored (a delete is idempotent)."""

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of each query (nq, d) float32: scores (nq, k) float32 and ids (nq, k) int64,
        best first, -inf / -1 padded. Each live id appears at most once per row.

        `allowed` restricts the results to those ids. `params` holds per-query knobs.
        """

    def save(self, directory: Path) -> None:
        """Write the index's files into `directory` (the caller publishes the snapshot)."""

    def __len__(self) -> int:
        """Number of live vectors."""

    def memory_bytes(self) -> int:
        """Resident bytes of the index structures (not files left on disk, e.g. SPANN postings)."""


@runtime_checkable
class SparseVectorIndex(Protocol):
    """A learned-sparse first stage: `SparseBatch` rows (term ids, weights) under int64 ids."""

    def add(self, ids: np.ndarray, vectors: Any) -> None:
        """Add sparse rows under ids (n,) int64; an id already held is replaced."""

    def delete(self, ids: np.ndarray) -> None:
        """Remove ids; ids the index does not hold are ignored."""

    def search(
        self,
        queries: Any,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of each sparse query, as `VectorIndex.search` (scores are dot products)."""

    def save(self, directory: Path) -> None:
        """Write the index's files into `directory`."""

    def __len__(self) -> int:
        """Number of live rows."""

    def memory_bytes(self) -> int:
        """Resident bytes of the index arrays."""


@runtime_checkable
class TenantVectorIndex(Protocol):
    """A dense index whose every search runs inside one tenant's vectors."""

    def add(self, ids: np.ndarray, vectors: np.ndarray, tenants: Any) -> None:
        """Add vectors (n, d) float32 under new ids (n,) int64, each owned by its tenant (one name,
        or one per row; None: no tenant)."""

    def delete(self, ids: np.ndarray) -> None:
        """Remove ids from every tenant; ids the index does not hold are ignored."""

    def search(
        self,
        queries: np.ndarray,
        k: int,
        tenant: str,
        *,
        allowed: np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among `tenant`'s vectors, as `VectorIndex.search`; an unknown tenant has no
        vectors (all -1). Rows hold min(k, the tenant's allowed vectors) results."""

    def tenant_ids(self, tenant: str) -> np.ndarray:
        """The tenant's ids, sorted unique int64 (empty for an unknown tenant)."""

    def save(self, directory: Path) -> None:
        """Write the index's files into `directory`."""

    def __len__(self) -> int:
        """Number of live vectors."""

    def memory_bytes(self) -> int:
        """Resident bytes of the index structures."""


Checked = TypeVar("Checked")


class CheckedParams(Generic[Checked]):
    """Per-query search parameters validated once per distinct set: a search takes microseconds,
    so re-checking the same few numbers on every call would show. `check(params)` validates and
    converts (raising InvalidArgument); its results are remembered for up to `limit` sets."""

    def __init__(self, check: Callable[[Mapping[str, Any] | None], Checked], limit: int = 64) -> None:
        self._check = check
        self._limit = limit
        self._seen: dict[tuple, Checked] = {}

    def __call__(self, params: Mapping[str, Any] | None) -> Checked:
        key: tuple | None = tuple((name, type(value), value) for name, value in (params or {}).items())
        try:
            return self._seen[key]
        except KeyError:  # a new set: checked below, then remembered
            pass
        except TypeError:  # unhashable (then invalid below anyway): checked, not remembered
            key = None
        checked = self._check(params)
        if key is not None and len(self._seen) < self._limit:
            self._seen[key] = checked
        return checked
