"""The role every first-stage index plays, as one small typed Protocol.

Ids are int64 internal ids handed out by the store (`lamina.index.store`); the index never
sees document ids. Scores are larger-is-better; a missing result has id -1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np


@runtime_checkable
class VectorIndex(Protocol):
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (n, d) float32 under ids (n,) int64. Ids are never reused."""

    def delete(self, ids: np.ndarray) -> None:
        """Remove ids; ids the index does not hold are ignored."""

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of each query (nq, d): scores (nq, k) float32 and ids (nq, k) int64.

        `allowed` (sorted int64 ids) restricts the results to those ids: the hook that
        filtered and multi-tenant search use. `params` holds per-query knobs.
        """

    def save(self, directory: Path) -> None:
        """Write the index's files into `directory` (the caller publishes the snapshot)."""

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
