"""BM25 against a tenant's own corpus statistics (issue #23, "tenant-blind statistics").

A collection with the default BM25 sparse field keeps `TenantCorpusStats` beside its sparse index
(`CollectionIndexes.bm25_tenants`). The BM25 encoder runs with the idf on the query side
(`BM25Encoder(idf_side="query")`): a document stores its saturated term frequencies,
tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)), and a query its term weights times idf. Here:

- a document of tenant T is normalised by T's average length (its documents counted with the batch
  being written), not the collection's: `document_weights`;
- a tenant-bound text query weighs its terms by T's idf, log(1 + (N_T - df_T + 0.5) / (df_T + 0.5)),
  from T's document count and document frequencies: `query_weights`;
- `count` adds written, replayed or rebuilt documents to the statistics (a removal is subtracted by
  `CollectionIndexes.remove`, with the terms the sparse index holds for the version).

So nothing another tenant writes or deletes changes a tenant's scores. Documents without a tenant and
searches without one keep the collection-wide statistics of the encoder (`BM25Encoder.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from lamina.index.sparse import SparseBatch, TenantCorpusStats
from lamina.index.sparse.batch import batch_from_packed
from lamina.index.store import StoredDoc
from lamina.retrieval.encoders.sparse import BM25Encoder, bm25_document_weights, bm25_idf

SPARSE_VECTOR = "sparse"  # as lamina.retrieval.indexes.SPARSE_VECTOR


def applies(encoder: object) -> bool:
    """Whether per-tenant statistics can score `encoder`'s vectors: BM25 with the idf on the query
    side (document-side idf bakes the collection's idf into every stored weight), unless the encoder
    says `per_tenant = False` (the benchmark's collection-wide baseline)."""
    return isinstance(encoder, BM25Encoder) and encoder.idf_side == "query" and getattr(encoder, "per_tenant", True)


def document_weights(encoder: BM25Encoder, stats: TenantCorpusStats, texts: Sequence[str],
                     tenants: Sequence[str]) -> tuple[SparseBatch, np.ndarray]:
    """Stored weights (n rows) of tenants' documents, each normalised by its tenant's average length
    with this batch counted in, and their lengths (n,) int64. An encoder with a
    `tenant_average_lengths(stats, tenants, lengths)` method supplies those averages itself (a shard
    of a sharded collection: its tenants' averages over every shard, `lamina.retrieval.sharded`)."""
    counts, lengths = encoder.counts(texts)
    fixed = getattr(encoder, "tenant_average_lengths", None)  # a shard's: the router's global averages
    average = stats.average_lengths(tenants, lengths) if fixed is None else fixed(stats, tenants, lengths)
    relative = lengths / np.maximum(average, 1e-9)  # dl / avgdl_T, passed as the length over avgdl 1
    ones = np.ones(encoder.vocab_size, np.float64)
    return bm25_document_weights(counts, relative, ones, 1.0, encoder.k1, encoder.b), lengths


def query_weights(encoder: BM25Encoder, stats: TenantCorpusStats, tenant: str, text: str) -> SparseBatch:
    """The query row of `text` for a search bound to `tenant`: term counts (or 1, by the encoder's
    query_weighting) times the tenant's idf; terms the tenant's documents lack weigh idf(df=0)."""
    counts, _ = encoder.counts([text])
    n_docs, _ = stats.corpus(tenant)
    idf = bm25_idf(stats.df(tenant, counts.indices), n_docs)
    base = np.ones_like(counts.values) if encoder.query_weighting == "binary" else counts.values
    return SparseBatch(counts.indptr, counts.indices, (base * idf).astype(np.float32))


def count(stats: TenantCorpusStats, encoder: BM25Encoder, docs: Sequence[StoredDoc],
          lengths: np.ndarray | None = None) -> None:
    """Count the tenants' documents among `docs` (with an iid and a text) into `stats`. Without
    `lengths` (replay, rebuild) the texts are tokenised here; with them (the write path, aligned
    with `docs`, -1 for a document not counted) the terms come from the stored sparse vectors."""
    if lengths is None:
        owned = [d for d in docs if d.tenant is not None and d.text]
        if not owned:
            return
        counts, found = encoder.counts([d.text for d in owned])
        terms, lengths_owned = counts, found
    else:
        keep = [i for i, d in enumerate(docs) if d.tenant is not None and lengths[i] >= 0]
        if not keep:
            return
        owned = [docs[i] for i in keep]
        terms = batch_from_packed([d.vectors.get(SPARSE_VECTOR, b"") for d in owned])
        lengths_owned = np.asarray(lengths, dtype=np.int64)[keep]
    iids = np.array([d.iid for d in owned], dtype=np.int64)
    stats.add(iids, [d.tenant for d in owned], terms, lengths_owned)
