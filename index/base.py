"""The role every first-stage index plays, as one small typed Protocol.

Ids are int64 internal ids handed out by the store (`lamina.index.store`); the index never
sees document ids. Scores are larger-is-better; a missing result has id -1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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
