"""Datasets of sparse vectors for `lamina bench sparse`: synthetic SPLADE-like, and BM25 over BEIR text.

A `SparseDataset` holds documents and queries as `SparseBatch`es over one vocabulary, so every
system of the benchmark indexes and searches exactly the same vectors. The specs:

- `synthetic-sparse:N[:NQ]` (`synthetic_sparse`): N documents of about 120 non-zeros over the
  30,522 terms of the BERT WordPiece vocabulary, NQ (default 1000) queries of 30-40 non-zeros.
  Term popularity is Zipfian (1 / (rank + 10), ranks scattered over the term ids); half of a
  document's terms are drawn from that distribution, the other half from one of a few hundred
  topics (each a popularity-weighted set of 300 terms), so terms co-occur as they do in text
  and Seismic's clustered blocks have something to find. Weights are positive, log-normal,
  larger for rarer terms (as SPLADE's are). A query takes the strongest half of a random
  document's terms (weights jittered) plus popular terms with small weights, so it has a few
  clearly relevant documents, as real queries do. Deterministic in `seed`, whatever N.
- a BEIR directory (`beir_sparse`, also spelled `beir:DIR`): documents get BM25 term weights
  from `BM25Encoder` fitted on the corpus (title + text), the judged queries its term counts,
  so the inner product the sparse systems compute is the BM25 score. The WordPiece token ids
  of corpus and queries are kept too, for bm25s to index the very same tokens with its own
  BM25 scorer. Queries that tokenise to nothing are dropped (and counted in `dropped_queries`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lamina.bench.datasets import default_cache_dir, load_beir
from lamina.index.sparse import SparseBatch, canonical_batch

BERT_VOCAB = 30522
SYNTHETIC_PREFIX = "synthetic-sparse:"
DEFAULT_QUERIES = 1000
_CHUNK = 100_000  # documents generated at a time: bounds the temporaries at ~200 MB
_TOPIC_TERMS = 300
_SYNTHETIC_VERSION = 1  # bump when the generator changes: cached datasets are keyed by it


@dataclass
class SparseDataset:
    """Sparse documents and queries over `vocab_size` terms, plus what a BEIR run needs.

    docs: (n rows) SparseBatch, canonical, weights > 0; queries: (nq rows), every row non-empty.
    For BEIR: doc_ids (n) and query_ids (nq) name the rows, qrels[qid][doc_id] = relevance,
    doc_tokens / query_tokens the WordPiece token ids (with repeats, special tokens dropped)
    of each text, and `vocab` the tokenizer's {token: id}.
    """

    name: str
    docs: SparseBatch
    queries: SparseBatch
    vocab_size: int
    doc_ids: list[str] | None = None
    query_ids: list[str] | None = None
    qrels: dict[str, dict[str, int]] | None = None
    doc_tokens: list[np.ndarray] | None = None
    query_tokens: list[np.ndarray] | None = None
    vocab: dict[str, int] | None = None
    dropped_queries: int = 0
    meta: dict[str, object] = field(default_factory=dict)

    def query(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(terms (m,) int32, weights (m,) float32) of query i."""
        return self.queries.row(i)


# ---------------------------------------------------------------------------- synthetic
class ZipfTerms:
    """Term ids drawn with probability about 1 / (rank + 10), the ranks shuffled over the term ids.

    The rank is the floor of a continuous variable of density proportional to 1 / (r + 10) on
    [0, V), drawn by inverting its distribution function: an exp per draw instead of a binary
    search in a 30k-entry table. `popularity` (V,) is the exact probability of each term id.
    """

    def __init__(self, vocab_size: int, rng: np.random.Generator) -> None:
        self.vocab_size = vocab_size
        self._span = np.log((vocab_size + 10.0) / 10.0)
        self.term_of_rank = rng.permutation(vocab_size)
        ranks = np.arange(vocab_size, dtype=np.float64)
        by_rank = np.log((ranks + 11.0) / (ranks + 10.0)) / self._span
        self.popularity = np.empty(vocab_size)
        self.popularity[self.term_of_rank] = by_rank

    def draw(self, rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
        """Term ids (size) int64."""
        ranks = (10.0 * np.exp(self._span * rng.random(size)) - 10.0).astype(np.int64)
        return self.term_of_rank[np.minimum(ranks, self.vocab_size - 1)]


def _unique_rows(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct terms of each row of terms (n, m): (indptr (n + 1,), indices)."""
    terms = np.sort(terms, axis=1)
    first = np.ones(terms.shape, dtype=bool)
    first[:, 1:] = terms[:, 1:] != terms[:, :-1]
    indptr = np.zeros(len(terms) + 1, np.int64)
    np.cumsum(first.sum(axis=1), out=indptr[1:])
    return indptr, terms[first].astype(np.int32)


def synthetic_sparse(n_docs: int, n_queries: int = DEFAULT_QUERIES, *, vocab_size: int = BERT_VOCAB,
                     doc_draws: int = 140, query_nnz: tuple[int, int] = (30, 40), n_topics: int = 500,
                     seed: int = 0) -> SparseDataset:
    """The `synthetic-sparse:N` dataset (see the module docstring).

    doc_draws term draws per document (half Zipfian, half topical; duplicates merge, so a
    document ends with about 120 distinct terms at the default); query_nnz the inclusive
    range of a query's draws (30-40: the strongest half of a source document plus popular
    terms; a repeat merges). The same arguments give the same vectors.
    """
    if n_docs <= 0 or n_queries <= 0:
        raise ValueError(f"synthetic-sparse needs N > 0 documents and queries, got {n_docs} and {n_queries}")
    setup = np.random.default_rng([seed, 0])
    zipf = ZipfTerms(vocab_size, setup)
    rarity = -np.log(zipf.popularity)
    rarity = (rarity - rarity.min()) / (rarity.max() - rarity.min())
    topics = zipf.draw(setup, (n_topics, _TOPIC_TERMS))

    indptrs, indices, values = [np.zeros(1, np.int64)], [], []
    for chunk, start in enumerate(range(0, n_docs, _CHUNK)):
        rng = np.random.default_rng([seed, 1, chunk])
        n = min(_CHUNK, n_docs - start)
        general = zipf.draw(rng, (n, doc_draws // 2))
        topical = topics[rng.integers(0, n_topics, n)[:, None],
                         rng.integers(0, _TOPIC_TERMS, (n, doc_draws - doc_draws // 2))]
        indptr, terms = _unique_rows(np.concatenate([general, topical], axis=1))
        weights = rng.lognormal(-1.0, 1.0, len(terms)) * (0.3 + 1.5 * rarity[terms])
        indptrs.append(indptr[1:] + indptrs[-1][-1])
        indices.append(terms)
        values.append(weights.astype(np.float32))
    docs = SparseBatch(np.concatenate(indptrs), np.concatenate(indices), np.concatenate(values))
    queries = _synthetic_queries(docs, n_queries, zipf, rarity, query_nnz, np.random.default_rng([seed, 2]))
    return SparseDataset(f"synthetic-sparse-{n_docs}", docs, queries, vocab_size,
                         meta={"seed": seed, "doc_nnz_mean": docs.nnz / n_docs,
                               "query_nnz_mean": queries.nnz / n_queries})


def _synthetic_queries(docs: SparseBatch, n_queries: int, zipf: ZipfTerms, rarity: np.ndarray,
                       query_nnz: tuple[int, int], rng: np.random.Generator) -> SparseBatch:
    """Queries from random source documents' strongest terms plus popular terms (canonical)."""
    rows = []
    for source, size in zip(rng.integers(0, len(docs), n_queries),
                            rng.integers(query_nnz[0], query_nnz[1] + 1, n_queries), strict=True):
        terms, weights = docs.row(int(source))
        strongest = np.argsort(-weights, kind="stable")[: size // 2]
        extra = zipf.draw(rng, size - len(strongest))
        rows.append((np.concatenate([terms[strongest], extra]),
                     np.concatenate([weights[strongest] * rng.uniform(0.5, 1.5, len(strongest)),
                                     rng.gamma(2.0, 0.2, len(extra)) * (0.2 + rarity[extra])])))
    return canonical_batch(SparseBatch.from_rows(rows), zipf.vocab_size, "query")


def parse_synthetic(spec: str) -> tuple[int, int]:
    """`synthetic-sparse:N[:NQ]` -> (N, NQ)."""
    parts = spec[len(SYNTHETIC_PREFIX):].split(":")
    if not spec.startswith(SYNTHETIC_PREFIX) or len(parts) not in (1, 2) \
            or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"bad dataset spec {spec!r}: expected synthetic-sparse:N[:NQ] with positive integers")
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else DEFAULT_QUERIES


# ---------------------------------------------------------------------------- BEIR with BM25
def beir_sparse(directory: str | Path, *, max_queries: int | None = None, k1: float = 1.2,
                b: float = 0.75) -> SparseDataset:
    """A BEIR directory as BM25 vectors over the all-MiniLM-L6-v2 WordPiece vocabulary (judged queries)."""
    from lamina.retrieval.encoders.sparse import BM25Encoder, special_token_ids

    directory = Path(directory).expanduser()
    beir = load_beir(directory)
    qids, texts = beir.judged_queries()
    if max_queries is not None:
        qids, texts = qids[:max_queries], texts[:max_queries]
    encoder = BM25Encoder(k1=k1, b=b).fit(beir.doc_texts)
    docs = encoder.encode_documents(beir.doc_texts)
    queries = encoder.encode_queries(texts)
    keep = np.flatnonzero(queries.row_lengths() > 0)
    queries = queries.take(keep)
    drop = special_token_ids(encoder.tokenizer)

    def token_ids(batch_texts: list[str]) -> list[np.ndarray]:
        encodings = encoder.tokenizer.encode_batch(batch_texts, add_special_tokens=False)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        return [row[~np.isin(row, drop)] for row in ids]

    return SparseDataset(
        f"beir-{directory.name}", docs, queries, encoder.vocab_size,
        doc_ids=list(beir.doc_ids), query_ids=[qids[i] for i in keep],
        qrels={qids[i]: beir.qrels[qids[i]] for i in keep},
        doc_tokens=token_ids(beir.doc_texts), query_tokens=token_ids([texts[i] for i in keep]),
        vocab=dict(encoder.tokenizer.get_vocab()), dropped_queries=len(qids) - len(keep),
        meta={"k1": k1, "b": b, "encoder": "bm25", "doc_nnz_mean": docs.nnz / max(1, len(docs)),
              "query_nnz_mean": queries.nnz / max(1, len(queries))})


def cached_synthetic(n_docs: int, n_queries: int, *, seed: int = 0, cache_dir: Path | None = None) -> SparseDataset:
    """`synthetic_sparse(n_docs, n_queries, seed=seed)`, kept as .npy files under `cache_dir`
    (default `datasets.default_cache_dir()`): a million documents take a minute to draw."""
    directory = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) \
        / f"sparse-v{_SYNTHETIC_VERSION}-{n_docs}-{n_queries}-{seed}"
    parts = ("indptr", "indices", "values")
    files = [directory / f"{what}-{part}.npy" for what in ("docs", "queries") for part in parts]
    if all(f.is_file() for f in files):
        arrays = [np.load(f) for f in files]
        docs, queries = SparseBatch(*arrays[:3]), SparseBatch(*arrays[3:])
        return SparseDataset(f"synthetic-sparse-{n_docs}", docs, queries, BERT_VOCAB,
                             meta={"seed": seed, "doc_nnz_mean": docs.nnz / n_docs,
                                   "query_nnz_mean": queries.nnz / n_queries})
    dataset = synthetic_sparse(n_docs, n_queries, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = [getattr(batch, part) for batch in (dataset.docs, dataset.queries) for part in parts]
    for path, array in zip(files, arrays, strict=True):
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, array)
        tmp.replace(path)  # a crash mid-write leaves no truncated cache entry
    return dataset


def check_sparse_spec(spec: str) -> None:
    """Raise ValueError unless spec is `synthetic-sparse:N[:NQ]`, `beir:DIR` or a BEIR directory."""
    if spec.startswith(SYNTHETIC_PREFIX):
        parse_synthetic(spec)
        return
    directory = Path(spec[len("beir:"):] if spec.startswith("beir:") else spec).expanduser()
    if not directory.is_dir():
        raise ValueError(f"dataset {spec!r} is neither synthetic-sparse:N[:NQ] nor a BEIR directory")
    for part in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        if not (directory / part).is_file():
            raise ValueError(f"{directory} is not a BEIR directory: {part} is missing")


def load_sparse_dataset(spec: str, *, max_queries: int | None = None,
                        cache_dir: Path | None = None) -> SparseDataset:
    """`synthetic-sparse:N[:NQ]`, `beir:DIR` or a BEIR directory path; at most max_queries queries.

    Synthetic datasets are cached (`cached_synthetic`); BEIR text is encoded at every call
    (BM25 needs no model: seconds for a corpus of Cranfield's size).
    """
    if spec.startswith(SYNTHETIC_PREFIX):
        n, n_queries = parse_synthetic(spec)
        return cached_synthetic(n, min(n_queries, max_queries or n_queries), cache_dir=cache_dir)
    check_sparse_spec(spec)
    return beir_sparse(Path(spec[len("beir:"):] if spec.startswith("beir:") else spec), max_queries=max_queries)
