"""The encoder role: text in, vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class DenseEncoder(Protocol):
    name: str
    dim: int

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 document embeddings."""

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32 query embeddings."""
