"""Global BM25 statistics of a sharded collection: the shards' raw counts added up on the router.

One node keeps two kinds of BM25 statistics (`lamina.retrieval.tenant_bm25`): the collection's
(`BM25Stats`: documents, total length, df per term), which weigh documents without a tenant and
unbound (admin) queries; and each tenant's (`TenantCorpusStats`), which length-normalise the tenant's
documents and weigh queries bound to it. Shards partition the documents, so every count is a sum
over shards. The router gathers:

- the collection's statistics once and keeps them (`merge_collection`; writes through it add theirs);
- a tenant's document count and total length (for a write) or those and its df of a query's terms
  (for a tenant-bound query), afresh each time (`GlobalTenantStats`): a delete or an update on any
  shard subtracts from a tenant's counts, and the router does not see which versions that removes.

`GlobalTenantStats` answers the reads `tenant_bm25` makes of a `TenantCorpusStats` (`corpus`, `df`,
`average_lengths`) from those sums, so the router computes a tenant's average length and idf with
one node's own code, to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from lamina.index.errors import FailedPrecondition, InvalidArgument, LaminaError
from lamina.index.sparse import SparseBatch, TenantCorpusStats
from lamina.index.types import Document, as_document
from lamina.retrieval.encoders.sparse import BM25Stats

TenantPart = Mapping[str, tuple[int, int, np.ndarray]]  # tenant -> (documents, total length, df of the terms)


def merge_collection(parts: Iterable[Mapping[str, Any]], vocab_size: int) -> BM25Stats:
    """The collection's BM25 statistics of every shard (`BM25Stats.to_dict` each) added up."""
    n_docs, total, df = 0, 0, np.zeros(vocab_size, np.int64)
    for part in parts:
        s = BM25Stats.from_dict(part)
        n_docs, total, df = n_docs + s.n_docs, total + s.total_length, df + s.df
    return BM25Stats(vocab_size, n_docs, total, df)


class GlobalTenantStats(TenantCorpusStats):
    """Read-only per-tenant statistics summed over shards, for the tenants and `terms` gathered
    (`Shard.tenant_stats`); `df` answers for those terms only."""

    def __init__(self, vocab_size: int, parts: Iterable[TenantPart], terms: np.ndarray) -> None:
        super().__init__(vocab_size)
        self.terms = np.unique(np.asarray(terms, dtype=np.int64))
        self._corpus: dict[str, tuple[int, int]] = {}
        self._df: dict[str, np.ndarray] = {}
        for part in parts:
            for tenant, (n_docs, total, df) in part.items():
                n0, t0 = self._corpus.get(tenant, (0, 0))
                self._corpus[tenant] = (n0 + int(n_docs), t0 + int(total))
                self._df[tenant] = self._df.get(tenant, 0) + np.asarray(df, dtype=np.int64)

    @property
    def tenants(self) -> list[str]:
        return sorted(self._corpus)

    def corpus(self, tenant: str) -> tuple[int, int]:
        return self._corpus.get(tenant, (0, 0))

    def df(self, tenant: str, terms: np.ndarray) -> np.ndarray:
        terms = np.asarray(terms, dtype=np.int64)
        pos = np.searchsorted(self.terms, terms)
        if len(terms) and (pos.max() >= len(self.terms) or not np.array_equal(self.terms[pos], terms)):
            raise FailedPrecondition("document frequencies of terms that were not gathered from the shards")
        found = self._df.get(tenant)
        return np.zeros(len(terms), np.int64) if found is None else found[pos]

    def __len__(self) -> int:
        return sum(n for n, _ in self._corpus.values())

    def add(self, *args: Any, **kwargs: Any) -> None:
        raise FailedPrecondition("global tenant statistics are gathered from the shards, not counted")

    remove = add


def bm25_rows(rows: Sequence[Any], tenant: str | None) -> tuple[list[str], list[str | None]]:
    """The texts one node's BM25 counts in a write of `rows` (as `Collection.upsert` binds them to
    `tenant`), with each one's tenant; rows one node would refuse before encoding are left out
    (those the router can tell: not a point, another tenant's, a non-string or empty text)."""
    texts: list[str] = []
    tenants: list[str | None] = []
    for row in rows:
        try:
            doc = row if isinstance(row, Document) else as_document(row)
        except LaminaError:
            continue
        if tenant is not None and doc.tenant not in (None, tenant):
            continue
        owner = tenant if tenant is not None else doc.tenant
        if not isinstance(doc.text, str) or not doc.text or (owner is not None and not isinstance(owner, str)):
            continue
        texts.append(doc.text)
        tenants.append(owner or None)
    return texts, tenants


def tenant_averages(stats: GlobalTenantStats, tenants: Sequence[str], lengths: np.ndarray) -> dict[str, float]:
    """Per tenant of a write batch: the average length one node normalises its documents by (its
    global documents with the batch's counted in), by `TenantCorpusStats.average_lengths`."""
    if not len(tenants):
        return {}
    averages = stats.average_lengths(tenants, lengths)
    return {t: float(a) for t, a in zip(tenants, averages)}


def fixed_averages(averages: Mapping[str, float], stats: TenantCorpusStats, tenants: Sequence[str],
                   lengths: np.ndarray) -> np.ndarray:
    """On a shard: the router's average length for each document's tenant, (n,) float64; a tenant
    the router did not send (it would have refused the row) falls back to the shard's own."""
    out = np.array([averages.get(t, np.nan) for t in tenants], dtype=np.float64)
    missing = np.isnan(out)
    if missing.any():
        local = stats.average_lengths(tenants, lengths)
        out[missing] = local[missing]
    return out


def query_terms(counts: SparseBatch) -> np.ndarray:
    """The distinct term ids of an encoded query's counts (one row)."""
    if len(counts) != 1:
        raise InvalidArgument(f"a query is one row, got {len(counts)}")
    return np.unique(counts.indices.astype(np.int64))
