"""Token (multivector) encoders: text to one L2-normalised vector per token, for MaxSim reranking.

Both kinds of model run through sentence-transformers' `MultiVectorEncoder` (new in
sentence-transformers 5.x, present in the installed 6.2), loaded offline from a local directory:

- a late-interaction checkpoint (a saved `MultiVectorEncoder`, a PyLate save, a Stanford-NLP
  ColBERT with `HF_ColBERT` in its config) loads as it was trained: its projection, query and
  document prefixes, query expansion and punctuation skiplist all come from the checkpoint;
- anything else (the default `all-MiniLM-L6-v2`, any sentence-transformers or bare transformers
  model directory) gives its contextual token embeddings as they leave the transformer, with no
  projection: `MultiVectorEncoder` would otherwise append a randomly initialised 128-d one,
  useful only after training. Every token is kept by default: on Cranfield, MiniLM MaxSim
  scored nDCG@10 0.542 with all tokens, 0.537 without punctuation and 0.534 without [CLS]/[SEP]
  and punctuation (exhaustive, 225 queries), at 12 % more rows. A `MultiVectorMask` can drop
  [CLS]/[SEP] (`skip_special`) and punctuation (`skip_punctuation`) from queries and documents
  alike. Rows are L2-normalised.

Padding never reaches the output (the mask starts from the attention mask). A text left with no
token (empty, or only skipped tokens) gives a (0, dim) matrix; the reranker treats such a
document as having nothing to match and rejects such a query.
"""

from __future__ import annotations

import json
import os
import string
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from lamina.index.types import DEFAULT_ENCODER
from lamina.retrieval.encoders.dense import CHARS_PER_TOKEN_BOUND, load_dense_encoder, resolve_model_path
from lamina.retrieval.encoders.joint import SharedPassEncoder
from lamina.retrieval.encoders.threads import ensure_torch_threads

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_cache: dict[tuple[str, bool, bool], SentenceTransformerTokenEncoder | SharedPassEncoder] = {}
_cache_lock = threading.Lock()


@runtime_checkable
class TokenEncoder(Protocol):
    """The multivector encoder role: one (n_i, dim) float32 matrix of unit rows per text."""

    name: str
    dim: int

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token matrices (n_i, dim) float32 of documents."""

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token matrices (m_i, dim) float32 of queries."""


def is_late_interaction_checkpoint(path: str | Path) -> bool:
    """True when `path` holds a model trained for late interaction (its own projection and masks)."""
    path = Path(path)
    st_config = path / "config_sentence_transformers.json"
    if st_config.is_file():
        try:
            if json.loads(st_config.read_text()).get("model_type") in ("MultiVectorEncoder", "ColBERT"):
                return True
        except ValueError:
            pass
    hf_config = path / "config.json"
    if hf_config.is_file():
        try:
            return "HF_ColBERT" in (json.loads(hf_config.read_text()).get("architectures") or [])
        except ValueError:
            return False
    return False


class SentenceTransformerTokenEncoder:
    """Token embeddings of a local model through sentence-transformers' `MultiVectorEncoder`."""

    def __init__(self, name: str = DEFAULT_ENCODER, *, skip_special: bool = False, skip_punctuation: bool = False,
                 batch_size: int = 32, device: str | None = None) -> None:
        ensure_torch_threads()
        from sentence_transformers import MultiVectorEncoder

        self.name = name
        self.path = resolve_model_path(name)
        self.batch_size = batch_size
        self.late_interaction = is_late_interaction_checkpoint(self.path)
        if self.late_interaction:
            self.model = MultiVectorEncoder(self.path, device=device or "cpu", local_files_only=True)
        else:
            self.model = MultiVectorEncoder(
                modules=self._projection_free_modules(skip_special, skip_punctuation), device=device or "cpu")
        self.dim = int(self.model.get_embedding_dimension())
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads

    def _projection_free_modules(self, skip_special: bool, skip_punctuation: bool) -> list:
        """Transformer -> scoring mask -> per-token L2 normalisation: the backbone's own token space."""
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.base.modules import Normalize, Transformer
        from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

        if (Path(self.path) / "modules.json").is_file():
            # the Transformer module of a sentence-transformers model keeps its max_seq_length
            transformer = SentenceTransformer(self.path, device="cpu", local_files_only=True)[0]
        else:
            transformer = Transformer(self.path, model_kwargs={"local_files_only": True},
                                      processor_kwargs={"local_files_only": True},
                                      config_kwargs={"local_files_only": True})
        if not isinstance(transformer, Transformer):
            raise TypeError(f"the first module of {self.path} is {type(transformer).__name__}, not a Transformer")
        tokenizer = transformer.tokenizer
        skip: list[str] = []
        if skip_special:
            skip += [tok for tok in (tokenizer.cls_token, tokenizer.sep_token, tokenizer.bos_token, tokenizer.eos_token)
                     if tok]
        if skip_punctuation:
            vocab = tokenizer.get_vocab()
            skip += [p for p in string.punctuation if p in vocab]  # others would map to [UNK]
        mask = MultiVectorMask(skiplist_words=sorted(set(skip)), skiplist_tasks=["query", "document"])
        return [transformer, mask, Normalize(module_input_name="token_embeddings")]

    def _encode(self, texts: Sequence[str], task: str) -> list[np.ndarray]:
        if not len(texts):
            return []
        encode = self.model.encode_query if task == "query" else self.model.encode_document
        limit = int(self.model.max_seq_length or 512) * CHARS_PER_TOKEN_BOUND  # see dense.py
        with self._lock:
            out = encode([t[:limit] for t in texts], batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False,
                         normalize_embeddings=True)
        return [np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1, self.dim) for matrix in out]

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token matrices (n_i, dim) float32, unit rows, padding and skipped tokens removed."""
        return self._encode(texts, "document")

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token matrices (m_i, dim) float32 of queries (a late-interaction checkpoint may expand them)."""
        return self._encode(texts, "query")


def load_token_encoder(name: str = DEFAULT_ENCODER, *, skip_special: bool = False,
                       skip_punctuation: bool = False) -> SentenceTransformerTokenEncoder | SharedPassEncoder:
    """The token encoder for `name`, loaded once per process and option set.

    A late-interaction checkpoint gets its own model; any other model shares the dense
    encoder's loaded model and forward pass (`SharedPassEncoder`: encode once).
    """
    key = (name, skip_special, skip_punctuation)
    with _cache_lock:
        if key not in _cache:
            if is_late_interaction_checkpoint(resolve_model_path(name)):
                _cache[key] = SentenceTransformerTokenEncoder(name, skip_special=skip_special,
                                                              skip_punctuation=skip_punctuation)
            else:
                _cache[key] = SharedPassEncoder(load_dense_encoder(name), skip_special=skip_special,
                                                skip_punctuation=skip_punctuation)
        return _cache[key]
