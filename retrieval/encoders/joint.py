"""One forward pass for a document's pooled vector and its token vectors (encode once).

A collection with a dense encoder and a multivector field of the same model needs, for every
text, the pooled sentence embedding (the dense stage) and the contextual token embeddings
(MaxSim reranking). Both leave the same transformer pass: sentence-transformers' forward
returns `token_embeddings` (the transformer's output) and `sentence_embedding` (after the
model's pooling and normalisation) together. `SharedPassEncoder` runs that pass once per batch
on the dense encoder's own loaded model (one copy in memory) and gives

- the pooled vectors exactly as `SentenceTransformerEncoder` gives them (unit rows), and
- the token matrices exactly as the projection-free `SentenceTransformerTokenEncoder` gives
  them: padding dropped (attention mask), optional [CLS]/[SEP] and punctuation dropped by token
  id, rows L2-normalised.

Texts are sorted by length before batching (as sentence-transformers does), so padding is
minimal; masking and normalisation run on the whole (batch, length, dim) tensor. A
late-interaction checkpoint (its own projection and query expansion) cannot share the dense
pass and keeps its own `SentenceTransformerTokenEncoder`.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from lamina.retrieval.encoders.dense import SentenceTransformerEncoder


@runtime_checkable
class JointEncoder(Protocol):
    """A token encoder that can also give a dense encoder's pooled vectors from the same pass."""

    name: str
    dim: int

    def shares_pass_with(self, dense: Any) -> bool:
        """True when `dense` is the encoder whose pooled vectors this pass reproduces."""

    def encode_documents_joint(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """(n, dense dim) unit pooled vectors and n token matrices (n_i, dim), one pass."""

    def encode_queries_joint(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """As `encode_documents_joint`, for queries."""


class SharedPassEncoder:
    """Token vectors (and pooled vectors) of a `SentenceTransformerEncoder`'s model, one pass per batch."""

    def __init__(self, dense: SentenceTransformerEncoder, *, skip_special: bool = False,
                 skip_punctuation: bool = False, batch_size: int | None = None) -> None:
        import torch

        self.dense = dense
        self.model = dense.model
        self.name = dense.name
        self.path = dense.path
        self.late_interaction = False
        self.batch_size = batch_size or dense.batch_size
        self.dim = int(self.model[0].get_embedding_dimension())
        self._lock = dense._lock  # one model, one lock: torch modules are not re-entrant
        self._skip = torch.tensor(skipped_token_ids(self.model.tokenizer, skip_special, skip_punctuation),
                                  dtype=torch.long)

    def shares_pass_with(self, dense: Any) -> bool:
        return dense is self.dense

    def _pass(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Pooled vectors (n, dense dim) and token matrices of texts, one forward per batch."""
        import torch

        if not len(texts):
            return np.empty((0, self.dense.dim), np.float32), []
        texts = [t[:self.dense.max_chars] for t in texts]
        order = np.argsort([-len(t) for t in texts], kind="stable")
        pooled: list[np.ndarray] = []
        tokens: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            self.model.eval()
            for start in range(0, len(texts), self.batch_size):
                batch = [texts[i] for i in order[start:start + self.batch_size]]
                out = self.model(self.model.preprocess(batch))
                pooled.append(_unit(out["sentence_embedding"]).numpy())
                tokens.extend(_token_rows(out, self._skip))
        inverse = np.argsort(order)
        dense = np.ascontiguousarray(np.concatenate(pooled)[inverse], dtype=np.float32)
        return dense, [tokens[i] for i in inverse]

    def encode_documents_joint(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        return self._pass(texts)

    def encode_queries_joint(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        return self._pass(texts)  # the projection-free token space has no query-side prefix

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._pass(texts)[1]

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self._pass(texts)[1]


def _unit(x: Any) -> Any:
    import torch

    return torch.nn.functional.normalize(x.float(), p=2, dim=-1)


def _token_rows(out: dict[str, Any], skip: Any) -> list[np.ndarray]:
    """Unit token rows of one batch's forward output, padding and skipped ids removed."""
    import torch

    keep = out["attention_mask"].bool()
    if skip.numel():
        keep &= ~torch.isin(out["input_ids"], skip)
    rows = _unit(out["token_embeddings"])[keep].numpy()
    return [np.ascontiguousarray(m) for m in np.split(rows, np.cumsum(keep.sum(1).numpy())[:-1])]


def skipped_token_ids(tokenizer: Any, skip_special: bool, skip_punctuation: bool) -> list[int]:
    """Ids of the tokens a `MultiVectorMask(skip_special, skip_punctuation)` would drop."""
    words: list[str] = []
    if skip_special:
        words += [tok for tok in (tokenizer.cls_token, tokenizer.sep_token, tokenizer.bos_token,
                                  tokenizer.eos_token) if tok]
    if skip_punctuation:
        vocab = tokenizer.get_vocab()
        words += [p for p in string.punctuation if p in vocab]
    return sorted({int(tokenizer.convert_tokens_to_ids(w)) for w in words})
