"""One shard: a single-node `Collection` over its own data directory, as a Ray actor's state.

The router (`lamina.retrieval.sharded.collection`) sends a shard only what it owns. A shard:
- never loads the dense model: the router encodes texts and queries once, and sends vectors;
- encodes BM25 document weights against the *global* average lengths the router sends with each
  write (`GlobalBM25Encoder`): the collection's for documents without a tenant, each tenant's for
  its documents; and reports its raw corpus statistics, the collection's (document count, total
  length, document frequencies) and a tenant's (the same, for a query's terms), which add up across
  shards to one node's (`lamina.retrieval.sharded.bm25`);
- answers one first stage at a time (`stage`): its candidate list, not a fused one, so that the
  router fuses the merged lists exactly as one node fuses its own.

Ray restarts a dead shard actor with the same arguments: `__init__` then reopens the data
directory, and the `Collection` recovers from its snapshot and its store's log, as after a crash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from lamina.index.errors import FailedPrecondition
from lamina.index.sparse import TenantCorpusStats
from lamina.index.types import DEFAULT_ENCODER
from lamina.retrieval.collection import Database
from lamina.retrieval.encoders.base import DenseEncoder
from lamina.retrieval.encoders.dense import load_dense_encoder
from lamina.retrieval.encoders.sparse import DEFAULT_SPARSE_ENCODER, BM25Encoder, bm25_document_weights
from lamina.retrieval.query import SearchRequest
from lamina.retrieval.sharded.bm25 import fixed_averages

STATS_VECTOR = "bm25"


class GlobalBM25Encoder(BM25Encoder):
    """BM25 whose document weights use the average lengths the router set, i.e. one node's over
    every shard, instead of this shard's: `global_avgdl` for documents without a tenant,
    `tenant_avgdl` (tenant -> average) for a tenant's (`tenant_bm25.document_weights` asks
    `tenant_average_lengths`). None: this shard's own (route "tenant" keeps a tenant on one shard,
    whose own statistics are then the tenant's global ones). Queries are encoded by the router.
    Idf stays on the query side, so stored weights do not depend on other shards' df."""

    def __init__(self) -> None:
        super().__init__(idf_side="query")
        self.global_avgdl: float | None = None
        self.tenant_avgdl: dict[str, float] | None = None

    def tenant_average_lengths(self, stats: TenantCorpusStats, tenants: Sequence[str],
                               lengths: np.ndarray) -> np.ndarray:
        if self.tenant_avgdl is None:
            return stats.average_lengths(tenants, lengths)
        return fixed_averages(self.tenant_avgdl, stats, tenants, lengths)

    def encode_documents(self, texts: Sequence[str]) -> Any:
        if self.global_avgdl is None:
            return super().encode_documents(texts)
        counts, lengths = self.counts(texts)
        return bm25_document_weights(counts, lengths, np.ones(self.vocab_size), self.global_avgdl, self.k1, self.b)


class LazyEncoder:
    """A dense encoder whose dimension is known from the config: the model loads only if a shard is
    ever asked to embed a text itself (the router normally sends vectors)."""

    def __init__(self, name: str, dim: int, loader: Callable[[str], DenseEncoder] = load_dense_encoder) -> None:
        self.name, self.dim, self._loader, self._model = name, dim, loader, None

    def _get(self) -> DenseEncoder:
        if self._model is None:
            self._model = self._loader(self.name)
        return self._model

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._get().encode_documents(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._get().encode_queries(texts)


def _sparse_loader(name: str) -> Any:
    if name == DEFAULT_SPARSE_ENCODER:
        return GlobalBM25Encoder()
    from lamina.retrieval.encoders.sparse import load_sparse_encoder

    return load_sparse_encoder(name)


class Shard:
    """The state of one shard actor (`ray.remote(Shard)` in the router); every method is a remote call."""

    def __init__(self, data_dir: str, name: str, index: int, dim: int, create: Mapping[str, Any],
                 token_loader: Callable[[str], Any] | None = None) -> None:
        self.index = index
        self._write_lock = threading.Lock()  # a write sets the global avgdl for its own encoding
        encoder = create.get("encoder", DEFAULT_ENCODER)
        self.db = Database(Path(data_dir), encoder_loader=partial(LazyEncoder, dim=dim),
                           sparse_loader=_sparse_loader, token_loader=token_loader)
        kwargs = dict(create)
        kwargs["encoder"] = encoder
        self.coll = self.db.get_or_create_collection(name, dim=dim, **kwargs)

    def ping(self) -> int:
        return self.index

    def config(self) -> dict[str, Any]:
        return self.coll.config.to_dict()

    # ------------------------------------------------------------------ writes
    def upsert(self, points: list[Any], wait: bool, tenant: str | None, delete: Sequence[str],
               avgdl: float | None, tenant_avgdl: dict[str, float] | None = None) -> list[Any]:
        with self._write_lock:
            encoder = self.coll.sparse_encoder if self.coll._is_bm25 else None
            if isinstance(encoder, GlobalBM25Encoder):
                encoder.global_avgdl, encoder.tenant_avgdl = avgdl, tenant_avgdl
            try:
                return self.coll.upsert(points, wait=wait, tenant=tenant, delete=delete)
            finally:
                if isinstance(encoder, GlobalBM25Encoder):
                    encoder.tenant_avgdl = None  # only this write's tenants were sent

    def delete(self, ids: Sequence[str], wait: bool, tenant: str | None) -> list[str]:
        return self.coll.delete(ids, wait=wait, tenant=tenant)

    def snapshot(self) -> None:
        self.coll.snapshot()

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ reads
    def bm25_stats(self) -> dict[str, Any] | None:
        """This shard's raw BM25 statistics (None when the collection has no BM25 field)."""
        if not self.coll._is_bm25:
            return None
        return self.coll.sparse_encoder.stats.to_dict()

    def tenant_stats(self, tenants: Sequence[str], terms: np.ndarray) -> dict[str, tuple[int, int, np.ndarray]] | None:
        """This shard's raw per-tenant BM25 statistics: tenant -> (documents, total length, document
        frequencies of `terms`); None when the collection keeps none (no BM25 field)."""
        if not self.coll._tenant_bm25:
            return None
        terms = np.asarray(terms, dtype=np.int64)
        with self.coll._lock.read():  # TenantCorpusStats.df must not run during a write
            stats = self.coll.indexes.bm25_tenants
            if stats is None:
                return None
            return {t: (*stats.corpus(t), stats.df(t, terms)) for t in dict.fromkeys(tenants)}

    def stage(self, request: SearchRequest) -> tuple[list[str], np.ndarray, list[Any] | None, dict[str, Any] | None]:
        """One single-stage request (its query already encoded by the router): doc ids, scores, the
        hits themselves when the request wants payload, and the shard's explain."""
        result = self.coll.query(request)
        ids = [h.id for h in result.hits]
        scores = np.array([h.score for h in result.hits], dtype=np.float32)
        return ids, scores, (result.hits if request.with_payload else None), result.explain

    def get(self, ids: Sequence[str], with_vectors: bool, tenant: str | None) -> list[Any]:
        return self.coll.get(ids, with_vectors=with_vectors, tenant=tenant)

    def tokens(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Packed token matrices of documents (for the router's rerank): tokens (T, d), offsets (n+1,)."""
        store = self.coll.indexes.tokens
        if store is None:
            raise FailedPrecondition(f"collection {self.coll.name!r} keeps no token vectors")
        docs = self.coll.store.get_documents(self.coll.name, list(ids))
        iids = np.array([-1 if d is None else d.iid for d in docs], dtype=np.int64)
        return store.get_packed(iids)

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Dense vectors (n, dim) of documents, as this shard's `Collection` reads them for its own
        fusion feedback (rows of documents it no longer holds are zeros)."""
        docs = self.coll.store.get_documents(self.coll.name, list(ids))
        iids = np.array([-1 if d is None else d.iid for d in docs], dtype=np.int64)
        out = np.zeros((len(iids), self.coll.config.dim), np.float32)
        live = iids >= 0
        if live.any():
            with self.coll._lock.read():
                out[live] = self.coll._vectors_of(iids[live])
        return out

    def count(self, tenant: str | None, filter: Any) -> int:
        return self.coll.count(tenant=tenant, filter=filter)

    def facet(self, field: str, kind: str | None, limit: int, bins: Any, filter: Any, tenant: str | None) -> Any:
        return self.coll.facet(field, kind=kind, limit=limit, bins=bins, filter=filter, tenant=tenant)

    def tenants(self) -> dict[str, int]:
        return self.coll.tenants()

    def delete_tenant(self, tenant: str, wait: bool) -> int:
        return self.coll.delete_tenant(tenant, wait=wait)

    def stats(self) -> dict[str, Any]:
        return self.coll.stats()
