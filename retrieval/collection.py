"""Collections: upsert, delete, get and search over the store and its derived indexes.

A `Database` owns one data directory:

    <data_dir>/store/                  RocksDB: the source of truth (`lamina.index.store`)
    <data_dir>/indexes/<collection>/   index snapshots (`lamina.index.snapshot`)
    <data_dir>/catalog.json, .seq      what the directory acknowledged, checked against the store
                                       at open (`lamina.index.catalog`)
    <data_dir>/backups/<name>/         backups the server took (`Collections/Snapshot`)

A `Collection` writes each batch to the store first (one WriteBatch, synced when `wait`),
then applies it to its in-memory index as a delta. On open it loads the last snapshot and
replays the store's log after the snapshot's sequence number, so it answers exactly as it
did before a restart or a crash; a missing or corrupt snapshot is rebuilt from the store.
"""

from __future__ import annotations

import copy
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from lamina.index import deadline as request_deadline
from lamina.index.catalog import Catalog, HighWater, check_store, witnesses
from lamina.index.deadline import Deadline
from lamina.index.dense import DenseIndex
from lamina.index.errors import (
    CorruptIndex,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from lamina.index.facets import FacetResult, check_bins, check_facet, check_limit, facet
from lamina.index.filters import Filter, Match, as_filter
from lamina.index.locks import RWLock
from lamina.index.multivector import TOKENS_VECTOR, pack_tokens
from lamina.index.payload import intersect_sorted
from lamina.index.snapshot import read_manifest, verify_snapshot, write_snapshot
from lamina.index.spann import SpannIndex
from lamina.index.sparse import SparseBatch, TenantCorpusStats
from lamina.index.sparse.batch import batch_from_packed, pack_sparse
from lamina.index.store import IdsTaken, Store, StoredDoc
from lamina.index.types import (
    DEFAULT_ENCODER,
    CollectionConfig,
    Document,
    Hit,
    GraphConfig,
    IndexConfig,
    MultivectorConfig,
    RowResult,
    SparseConfig,
    as_document,
    as_vector,
    check_doc_id,
    check_metadata,
    check_name,
    check_text,
)
from lamina.retrieval.bounds import check_search_work
from lamina.retrieval.encoders.base import DenseEncoder
from lamina.retrieval.encoders.dense import load_dense_encoder
from lamina.retrieval.encoders.joint import JointEncoder
from lamina.retrieval.encoders.multivector import TokenEncoder
from lamina.retrieval.encoders.sparse import (
    DEFAULT_SPARSE_ENCODER,
    BM25Stats,
    SparseEncoder,
)
from lamina.retrieval.fusion import fuse, rocchio
from lamina.retrieval.indexes import (
    DENSE_VECTOR,
    OWNER_FIELD,
    SPARSE_VECTOR,
    CollectionIndexes,
)
from lamina.retrieval.maintenance import MaintenanceWorker, Rebuild
from lamina.retrieval.planner import QueryPlanner, split_planner_params
from lamina.retrieval.query import Query, Rerank, SearchRequest, SearchResult, Stage
from lamina.retrieval.rerank import rerank
from lamina.retrieval import tenant_bm25

log = logging.getLogger(__name__)

MAX_K = 10_000
MAX_BATCH = 10_000
SNAPSHOT_EVERY = 50_000  # writes applied since the last snapshot before taking a new one
FLOAT_PARAMS = frozenset({"heap_factor", "max_dist_ratio"})

# `lamina.rag` builds on this layer and registers its pipeline here when imported (as `lamina` does),
# so that `Collection.as_pipeline` offers it without an import running upwards.
_pipeline_factory: Callable[..., Any] | None = None


def register_pipeline_factory(factory: Callable[..., Any]) -> None:
    global _pipeline_factory
    _pipeline_factory = factory


class Collection:
    """One collection: its config, the indexes derived from the store, and the query pipeline."""

    def __init__(self, store: Store, config: CollectionConfig, index_dir: Path,
                 encoder_loader: Callable[[str], DenseEncoder] = load_dense_encoder,
                 sparse_loader: Callable[[str], SparseEncoder] | None = None,
                 token_loader: Callable[[str], TokenEncoder] | None = None) -> None:
        self.store = store
        self.config = config
        self.index_dir = index_dir
        self._encoder_loader = encoder_loader
        self._sparse_loader = sparse_loader or _load_sparse_encoder
        self._token_loader = token_loader or _load_token_encoder
        self._encoder: DenseEncoder | None = None
        self._sparse_encoder: SparseEncoder | None = None
        self._token_encoder: TokenEncoder | None = None
        self._lock = RWLock()
        self._writes_since_snapshot = 0
        self._snapshot_seq = 0
        self._snapshots_paused = False  # while a backup copies the index files (`lamina.retrieval.backup`)
        self._graph_side: Any = None
        self._maintenance = MaintenanceWorker(config.name)  # background builds and snapshots
        self._snapshot_mutex = threading.Lock()  # one snapshot at a time
        self._snapshot_queued = False
        self.indexes = self._open_indexes()
        self._remove_stale_spann()
        self.indexes.refresh_clustered(self._vectors_of)
        self._schedule_locked()  # e.g. an untrained index that the replay took past its threshold

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def _spann_dir(self) -> Path:
        return self.index_dir / "spann"

    @property
    def index(self) -> DenseIndex | SpannIndex:
        """The dense index (what the ANN benchmark measures)."""
        return self.indexes.dense

    # ------------------------------------------------------------------ index lifecycle
    def _open_indexes(self) -> CollectionIndexes:
        cfg = self.config
        indexes: CollectionIndexes | None = None
        seq = 0
        try:
            manifest = read_manifest(self.index_dir)
            if manifest is not None:
                directory = verify_snapshot(self.index_dir, manifest)
                indexes = CollectionIndexes.load(directory, cfg, self._spann_dir)
                seq = int(manifest["seq"])
        except CorruptIndex as exc:
            log.warning("collection %s: %s; rebuilding the indexes from the store", cfg.name, exc)
            indexes = None
        if indexes is None:
            return self._rebuild_indexes()
        self._restore_sparse_encoder(indexes.bm25)
        changes = self.store.changes_since(cfg.name, seq)
        indexes.replay(self.store, changes.removed, changes.added, partial(self._count_bm25, indexes),
                       changes.last_seq)
        self._snapshot_seq = seq
        self._writes_since_snapshot = len(changes.added) + len(changes.removed)
        return indexes

    def _rebuild_indexes(self) -> CollectionIndexes:
        seq = self.store.last_seq  # read before the scan: anything later is replayed again, harmlessly
        counted = TenantCorpusStats(self._sparse_vocab()) if self._is_bm25 else None
        indexes = CollectionIndexes.build(self.store, self.config, self._sparse_vocab(), self._token_dim(),
                                          self._spann_dir, on_documents=partial(self._fit_bm25, counted))
        if counted is not None:  # the per-tenant statistics _fit_bm25 counted
            indexes.bm25_tenants = counted
        self._snapshot_seq = 0
        self._writes_since_snapshot = max(len(indexes.dense), 1) if seq else 0
        return indexes

    def _remove_stale_spann(self) -> None:
        """SPANN directories no snapshot names (a background build a crash interrupted or made moot)."""
        dense = self.indexes.dense
        if not isinstance(dense, SpannIndex):
            return
        for path in self.index_dir.glob("spann*"):
            if path.is_dir() and path.resolve() != dense.path.resolve():
                shutil.rmtree(path, ignore_errors=True)

    def rebuild(self) -> None:
        """Rebuild every index from the store (e.g. to retrain IVF on today's data) and snapshot them.

        The new indexes are built without the write lock (searches and writes go on against the
        old ones; the writes meanwhile are replayed onto the new ones before the swap). A SPANN
        collection rebuilds in place, under the lock: its files live in one directory."""
        if self.config.index.kind == "spann":
            with self._lock.write():
                old, self.indexes = self.indexes, self._rebuild_indexes()
                self.indexes.retired += [old.dense, *old.retired]
            self.snapshot()
            return
        with self._lock.write():
            old = self.indexes
            old.pending.clear()  # background builds of parts of `old` are moot now
            rebuild = old.begin("all")
        fitted, scanned = self._bm25_copy(), set()
        counted = TenantCorpusStats(self._sparse_vocab()) if self._tenant_bm25 else None

        def count(docs: list[StoredDoc]) -> None:
            scanned.update(d.iid for d in docs)
            if fitted is not None:
                fitted.fit([d.text for d in docs if d.text])
            if counted is not None:
                tenant_bm25.count(counted, self.sparse_encoder, docs)

        try:
            new = CollectionIndexes.build(self.store, self.config, self._sparse_vocab(), self._token_dim(),
                                          self._spann_dir, on_documents=count)
        except BaseException:
            with self._lock.write():
                old.abandon(rebuild)
            raise
        with self._lock.write():
            old.abandon(rebuild)  # under the lock of the swap: no write falls between log and swap
            if counted is not None:
                new.bm25_tenants = counted  # before the replay, whose removals subtract from it

            def add(docs: list[StoredDoc]) -> None:
                new.add(docs, replayed=True)
                unseen = [d for d in docs if d.iid not in scanned]
                texts = [d.text for d in unseen if d.text]
                if fitted is not None and texts:
                    fitted.update(texts)
                if counted is not None and unseen:
                    tenant_bm25.count(counted, self.sparse_encoder, unseen)

            rebuild.replay(add, new.remove)
            if fitted is not None:
                self.sparse_encoder.stats = fitted.stats
            if self._query_table is not None:  # a learned sparse encoder's table, recounted from the store
                self._query_table.recount(batch_from_packed(raw) for _, raw in
                                          self.store.iter_vectors(self.name, SPARSE_VECTOR))
            self.indexes = new  # its clustered codes are laid out by the snapshot below
            self._writes_since_snapshot = max(self._writes_since_snapshot, 1)
            self._schedule_locked()
        self.snapshot()

    def _bm25_copy(self) -> Any:
        """A copy of the BM25 encoder whose statistics a background rebuild recounts (None: not BM25)."""
        return copy.copy(self.sparse_encoder) if self._is_bm25 else None

    # ------------------------------------------------------------------ background maintenance
    def _schedule_locked(self) -> None:
        """Start a background rebuild of every part whose maintenance fell due (under the write
        lock: the delta log of each starts here, before its build scans the store)."""
        indexes = self.indexes
        for part in indexes.due():
            rebuild = indexes.begin(part)
            if self._maintenance.submit(partial(self._rebuild_part, indexes, rebuild), f"{part} rebuild") is None:
                indexes.abandon(rebuild)

    def _rebuild_part(self, indexes: CollectionIndexes, rebuild: Rebuild) -> None:
        """The worker's job: build the part from the store unlocked, then replay and swap under the lock."""
        try:
            built = indexes.build_part(rebuild.part, self.store)
        except BaseException:
            with self._lock.write():
                indexes.abandon(rebuild)
            raise
        with self._lock.write():
            if self.indexes is not indexes:
                return
            indexes.finish(rebuild, built)
            self._writes_since_snapshot = max(self._writes_since_snapshot, 1)  # persist what was trained
            self._schedule_locked()

    def wait_for_maintenance(self, timeout: float | None = None) -> bool:
        """Wait until the background builds and snapshots under way have been swapped in or
        written; False if `timeout` seconds passed first."""
        return self._maintenance.wait(timeout)

    @property
    def maintenance_pending(self) -> list[str]:
        """The parts being rebuilt in the background now ("dense", "tokens", "tenants", "all")."""
        with self._lock.read():
            return sorted(self.indexes.pending)

    def snapshot(self) -> None:
        """Persist the indexes so that the next open replays nothing.

        The files are written under the read lock, from a consistent view (no write applies
        until they are written), while searches go on; only compacting the payload postings and
        laying the clustered codes out again take the write lock."""
        with self._snapshot_mutex:
            self._snapshot_queued = False
            with self._lock.write():
                if self._snapshots_paused:
                    return
                self.indexes.payload.compact()  # drops the tombstones, so that the clustered codes can follow the key
                self.indexes.refresh_clustered(self._vectors_of)  # before the write: the snapshot then holds them
            with self._lock.read():
                if not self._snapshots_paused:
                    self._write_snapshot()

    def pause_snapshots(self, paused: bool) -> None:
        """Take no index snapshot (which trims the log) while `paused`; writes go on."""
        with self._snapshot_mutex, self._lock.write():  # waits for a snapshot in progress
            self._snapshots_paused = paused

    def _write_snapshot(self) -> None:
        """Write the snapshot files and trim the log (under the read lock: no write runs meanwhile)."""
        seq = self.store.last_seq
        if self._is_bm25 or self._query_table is not None:
            self.indexes.bm25 = self.sparse_encoder.to_dict()
        self.indexes.seq = seq
        self.store.sync()  # the WAL durable up to `seq` first: a snapshot never covers more than the store
        write_snapshot(self.index_dir, seq, self.indexes.save, {"collection": self.config.name})
        self.indexes.release_retired()  # the snapshot names the swapped-in SPANN files now
        self.store.trim_log(self.config.name, seq)
        self._snapshot_seq = seq
        self._writes_since_snapshot = 0

    def close(self) -> None:
        self._maintenance.close()  # the builds under way are swapped in first, then snapshotted
        if self._writes_since_snapshot:
            self.snapshot()

    # ------------------------------------------------------------------ encoders
    @property
    def encoder(self) -> DenseEncoder:
        if self.config.encoder is None:
            raise InvalidArgument(f"collection {self.name!r} has no encoder: send vectors, not text")
        if self._encoder is None:
            self._encoder = self._encoder_loader(self.config.encoder)
            if self._encoder.dim != self.config.dim:
                raise InvalidArgument(
                    f"encoder {self.config.encoder!r} gives dimension {self._encoder.dim}, "
                    f"collection {self.name!r} has {self.config.dim}")
        return self._encoder

    @property
    def sparse_encoder(self) -> SparseEncoder:
        if self.config.sparse is None:
            raise InvalidArgument(f"collection {self.name!r} has no sparse field: search it with mode dense")
        if self._sparse_encoder is None:
            self._sparse_encoder = self._sparse_loader(self.config.sparse.encoder)
        return self._sparse_encoder

    @property
    def token_encoder(self) -> TokenEncoder:
        if self.config.multivector is None:
            raise InvalidArgument(f"collection {self.name!r} keeps no token vectors: it cannot rerank "
                                  "(create it with a multivector field)")
        if self._token_encoder is None:
            self._token_encoder = self._token_loader(self.config.multivector.encoder)
        return self._token_encoder

    def _joint_encoder(self) -> JointEncoder | None:
        """The token encoder when it shares the dense encoder's forward pass (encode once), else None."""
        if self.config.multivector is None or self.config.encoder is None:
            return None
        tokens = self.token_encoder
        if isinstance(tokens, JointEncoder) and tokens.shares_pass_with(self.encoder):
            return tokens
        return None

    @property
    def _is_bm25(self) -> bool:
        return self.config.sparse is not None and self.config.sparse.encoder == DEFAULT_SPARSE_ENCODER

    def _sparse_vocab(self) -> int | None:
        return None if self.config.sparse is None else int(self.sparse_encoder.vocab_size)

    def _token_dim(self) -> int | None:
        return None if self.config.multivector is None else int(self.token_encoder.dim)

    @property
    def _query_table(self) -> Any:
        """The sparse encoder when it keeps a query table counted from document vectors (SPLADE)."""
        if self.config.sparse is None or self._is_bm25:
            return None
        encoder = self.sparse_encoder
        return encoder if hasattr(encoder, "recount") and hasattr(encoder, "restore") else None

    def _restore_sparse_encoder(self, bm25: dict[str, Any] | None) -> None:
        if self._is_bm25 and bm25 is not None:
            self.sparse_encoder.stats = BM25Stats.from_dict(bm25["stats"])
        elif bm25 is not None and self._query_table is not None:
            self._query_table.restore(bm25)

    @property
    def _tenant_bm25(self) -> bool:
        """Whether tenants' documents and tenant-bound queries use per-tenant BM25 statistics
        (`lamina.retrieval.tenant_bm25`)."""
        return self._is_bm25 and tenant_bm25.applies(self.sparse_encoder)

    def _fit_bm25(self, counted: TenantCorpusStats | None, docs: list[StoredDoc]) -> None:
        """Recount the BM25 statistics exactly from every stored document (at a rebuild), the
        per-tenant ones into `counted`; or a learned encoder's query table from every stored sparse vector."""
        if self._is_bm25:
            self.sparse_encoder.fit([d.text for d in docs if d.text])
        elif self._query_table is not None:
            self._query_table.recount(batch_from_packed(raw) for _, raw in
                                      self.store.iter_vectors(self.name, SPARSE_VECTOR))
        if counted is not None and self._tenant_bm25:
            tenant_bm25.count(counted, self.sparse_encoder, docs)

    def _count_bm25(self, indexes: CollectionIndexes, docs: list[StoredDoc]) -> None:
        """Count replayed documents into the BM25 statistics (deletes in the window are not
        subtracted from the collection's: their text is gone; a rebuild recounts exactly. The
        per-tenant statistics subtract them with the terms the sparse index held), or their sparse
        vectors into a learned encoder's query table."""
        texts = [d.text for d in docs if d.text]
        if self._is_bm25 and texts:
            self.sparse_encoder.update(texts)
        elif self._query_table is not None:
            raws = [d.vectors[SPARSE_VECTOR] for d in docs if SPARSE_VECTOR in d.vectors]
            if raws:
                self._query_table.count(batch_from_packed(raws))
        if indexes.bm25_tenants is not None and texts and self._tenant_bm25:
            tenant_bm25.count(indexes.bm25_tenants, self.sparse_encoder, docs)

    # ------------------------------------------------------------------ writes
    def upsert(self, points: Iterable[Document | Mapping[str, Any]], *, wait: bool = False,
               tenant: str | None = None, delete: Sequence[str] = ()) -> list[RowResult]:
        """Insert or replace points; returns one RowResult per point, in order.

        A point needs an id and a vector or a text to embed. Invalid points are reported in
        their RowResult and not written; the valid ones are written in one atomic batch with
        every vector the collection keeps (dense; sparse and token vectors of the text).
        `delete` names ids removed in that same batch (ids not stored are ignored; an id may
        not be both written and deleted); when points are given and every one fails, nothing
        is written, deletes included. `wait=True` returns only after the write is synced to
        disk. With `tenant` (a caller bound to a tenant), points belong to that tenant: a point
        naming another tenant, or whose id another tenant's point holds, fails its row, and
        only that tenant's ids are deleted.
        """
        rows = list(points)
        deletes = self._check_deletes(rows, delete)
        if len(rows) + len(deletes) > MAX_BATCH:
            raise ResourceExhausted(f"batch of {len(rows)} points and {len(deletes)} deletes exceeds the "
                                    f"limit of {MAX_BATCH}")
        results: list[RowResult | None] = [None] * len(rows)
        docs: list[Document] = []
        positions: list[int] = []
        for i, row in enumerate(rows):
            try:
                doc = self._check_point(row)
                if tenant is not None:
                    if doc.tenant not in (None, tenant):
                        raise InvalidArgument(f"point {doc.id!r} names tenant {doc.tenant!r}; this caller "
                                              f"writes only tenant {tenant!r}")
                    doc.tenant = tenant
                docs.append(doc)
                positions.append(i)
            except InvalidArgument as exc:
                results[i] = RowResult(i, _row_id(row), str(exc))
        if rows and not docs:
            deletes = []  # every point failed: the request writes nothing
        if docs or deletes:
            stored, lengths = self._encode(docs) if docs else ([], np.empty(0, np.int64))
            while True:  # again without the ids another tenant holds, when the store refuses some
                try:
                    self._write(stored, lengths, deletes, wait, tenant)
                    break
                except IdsTaken as exc:
                    taken = set(exc.ids)
                    for doc, i in zip(docs, positions):
                        if doc.id in taken:
                            results[i] = RowResult(i, doc.id, f"id {doc.id!r} is not available to tenant {tenant!r}")
                    keep = [j for j, d in enumerate(docs) if d.id not in taken]
                    docs, positions, stored = [docs[j] for j in keep], [positions[j] for j in keep], \
                        [stored[j] for j in keep]
                    lengths = lengths[keep]
                    if not docs:
                        break  # every point failed: nothing is written, deletes included
            for doc, i in zip(docs, positions):
                results[i] = RowResult(i, doc.id)
        return [r for r in results if r is not None]

    def _write(self, stored: list[StoredDoc], lengths: np.ndarray, deletes: list[str], wait: bool,
               tenant: str | None) -> None:
        """One batch into the store and the indexes. With `tenant`, the store checks ownership on its
        read of the previous versions, inside its write lock (`Store.write(owner=...)`): ids another
        tenant holds raise IdsTaken, deletes of them are skipped."""
        # a repeated id within the batch keeps only its last version (written.added)
        last_of = {d.id: j for j, d in enumerate(stored)}
        kept_at = sorted(last_of.values())
        kept = [stored[j] for j in kept_at]
        extra, pending = self._graph_write(kept)
        with self._lock.write():
            written = self.store.write(self.name, stored, deletes, sync=wait, extra=extra, owner=tenant)
            self._graph_commit(pending)
            self.indexes.remove(written.removed, written.seq)
            for doc, iid in zip(kept, written.added):
                doc.iid = int(iid)
            self.indexes.add(kept, written.seq)
            if self.indexes.bm25_tenants is not None and len(lengths):
                tenant_bm25.count(self.indexes.bm25_tenants, self.sparse_encoder, kept, lengths[kept_at])
            self._after_write(len(stored) + len(written.deleted_ids))
            self._schedule_locked()

    @staticmethod
    def _check_deletes(rows: list[Any], delete: Sequence[str]) -> list[str]:
        if isinstance(delete, str):  # a lone id would otherwise be split into characters
            raise InvalidArgument(f"delete must be a sequence of ids, got the string {delete!r}")
        deletes = [check_doc_id(doc_id) for doc_id in delete]
        if deletes:
            both = set(deletes).intersection(_row_id(row) for row in rows)
            if both:
                raise InvalidArgument(f"id {min(both)!r} is both written and deleted in one upsert")
        return deletes

    def _check_point(self, row: Document | Mapping[str, Any]) -> Document:
        doc = as_document(row)
        check_doc_id(doc.id)
        doc.metadata = check_metadata(doc.metadata)
        if doc.tenant is not None and (not isinstance(doc.tenant, str) or not doc.tenant):
            raise InvalidArgument(f"tenant must be a non-empty string, got {doc.tenant!r}")
        doc.text = check_text(doc.text, f"text of point {doc.id!r}")
        if doc.vector is not None:
            doc.vector = as_vector(doc.vector, self.config.dim, f"vector of point {doc.id!r}")
        elif doc.text is None:  # an empty text is a document too: it is embedded as ""
            raise InvalidArgument(f"point {doc.id!r} has neither a vector nor a text")
        elif self.config.encoder is None:
            raise InvalidArgument(f"point {doc.id!r} has no vector and collection {self.name!r} has no encoder")
        return doc

    def _encode(self, docs: list[Document]) -> tuple[list[StoredDoc], np.ndarray]:
        """Every vector of every document, as store bytes: dense, and sparse and tokens of texts; and
        (n,) the token lengths the per-tenant BM25 statistics count (-1: a document they do not)."""
        texts = [i for i, d in enumerate(docs) if d.text]
        tokens: dict[int, np.ndarray] = {}
        joint = self._joint_encoder()
        if joint is not None:  # encode once: pooled and token vectors of each text from one pass
            both = [i for i in texts if docs[i].vector is None]
            pooled, matrices = joint.encode_documents_joint([docs[i].text for i in both])
            for i, vec, matrix in zip(both, pooled, matrices):
                docs[i].vector, tokens[i] = vec, matrix
        to_embed = [d for d in docs if d.vector is None]
        if to_embed:
            for doc, vec in zip(to_embed, self.encoder.encode_documents([d.text for d in to_embed])):
                doc.vector = vec
        vectors = [{DENSE_VECTOR: np.asarray(d.vector, dtype=np.float32).tobytes()} for d in docs]
        lengths = np.full(len(docs), -1, np.int64)
        if texts and self.config.sparse is not None:
            encoder = self.sparse_encoder
            if self._is_bm25:
                encoder.update([docs[i].text for i in texts])
            owned = [i for i in texts if docs[i].tenant is not None] if self._tenant_bm25 else []
            plain = [i for i in texts if docs[i].tenant is None] if owned else texts
            for rows, batch in self._sparse_documents(docs, plain, owned, lengths):
                for row, i in enumerate(rows):
                    terms, weights = batch.row(row)
                    if len(terms):
                        vectors[i][SPARSE_VECTOR] = pack_sparse(terms, weights)
        if texts and self.config.multivector is not None:
            rest = [i for i in texts if i not in tokens]
            if rest:
                tokens.update(zip(rest, self.token_encoder.encode_documents([docs[i].text for i in rest])))
            for i in texts:
                matrix = tokens[i]
                if len(matrix):
                    vectors[i][TOKENS_VECTOR] = pack_tokens(matrix)
        return [StoredDoc(d.id, d.text, d.metadata, d.tenant, v) for d, v in zip(docs, vectors)], lengths

    def _sparse_documents(self, docs: list[Document], plain: list[int], owned: list[int],
                          lengths: np.ndarray) -> list[tuple[list[int], SparseBatch]]:
        """Sparse weights of `plain` documents (collection statistics) and of `owned` ones (their
        tenants' statistics, `tenant_bm25.document_weights`; their lengths go into `lengths`)."""
        out = []
        if plain:
            out.append((plain, self.sparse_encoder.encode_documents([docs[i].text for i in plain])))
        if owned:
            # no lock: average lengths may be read during a write (TenantCorpusStats), so that encoding
            # never waits behind a snapshot
            batch, found = tenant_bm25.document_weights(self.sparse_encoder, self.indexes.bm25_tenants,
                                                        [docs[i].text for i in owned],
                                                        [docs[i].tenant for i in owned])
            lengths[owned] = found
            out.append((owned, batch))
        return out

    def delete(self, ids: Sequence[str], *, wait: bool = False, tenant: str | None = None) -> list[str]:
        """Delete documents by id; returns the ids that existed. Unknown ids are ignored.

        With `tenant`, only that tenant's documents are deleted; others' ids count as unknown.
        """
        ids = list(ids)
        if len(ids) > MAX_BATCH:
            raise ResourceExhausted(f"batch of {len(ids)} ids exceeds the limit of {MAX_BATCH}")
        for doc_id in ids:
            check_doc_id(doc_id)
        if not ids:
            return []
        extra, pending = self._graph_write([])
        with self._lock.write():  # the store skips ids another tenant holds, on its read inside its lock
            written = self.store.write(self.name, deletes=ids, sync=wait, extra=extra, owner=tenant)
            self._graph_commit(pending)
            self.indexes.remove(written.removed, written.seq)
            self._after_write(len(written.removed))
            self._schedule_locked()
        return list(written.deleted_ids)

    def delete_tenant(self, tenant: str, *, wait: bool = False) -> int:
        """Delete every document of `tenant`; returns how many there were."""
        iids = self._tenant_ids(tenant)
        doc_ids = [d for d in self.store.doc_ids(self.name, iids) if d is not None]
        deleted = 0
        for start in range(0, len(doc_ids), MAX_BATCH):
            deleted += len(self.delete(doc_ids[start:start + MAX_BATCH], wait=wait, tenant=tenant))
        return deleted

    def tenants(self) -> dict[str, int]:
        """Every tenant with its number of documents."""
        with self._lock.read():
            counts = self.indexes.owners.keyword_counts(OWNER_FIELD)  # the owner postings, no document read
        return {str(tenant): n for tenant, n in sorted(counts.items())}

    def _after_write(self, n: int) -> None:
        """Count a write; past SNAPSHOT_EVERY, queue a snapshot on the maintenance worker."""
        self._writes_since_snapshot += n
        if self._writes_since_snapshot >= SNAPSHOT_EVERY and not self._snapshot_queued:
            self._snapshot_queued = self._maintenance.submit(self.snapshot, "snapshot") is not None

    # ------------------------------------------------------------------ reads
    def get(self, ids: Sequence[str], *, with_vectors: bool = False, tenant: str | None = None) -> list[Document | None]:
        """The stored documents for `ids`, None where an id does not exist (or, with `tenant`,
        belongs to another tenant)."""
        for doc_id in ids:
            check_doc_id(doc_id)
        stored = self.store.get_documents(self.name, list(ids), vectors=(DENSE_VECTOR,) if with_vectors else ())
        out: list[Document | None] = []
        for doc in stored:
            if doc is None or (tenant is not None and doc.tenant != tenant):
                out.append(None)
                continue
            raw = doc.vectors.get(DENSE_VECTOR)
            vector = np.frombuffer(raw, dtype=np.float32).copy() if raw is not None else None
            out.append(Document(doc.id, doc.text, vector, doc.metadata, doc.tenant))
        return out

    def count(self, *, tenant: str | None = None, filter: Filter | Mapping[str, Any] | None = None) -> int:
        """Number of documents (of `tenant`, matching `filter`)."""
        flt = as_filter(filter)
        if tenant is None and flt is None:
            return self.store.count(self.name)
        with self._lock.read():
            allowed = self._allowed(flt, tenant)
        return len(allowed) if allowed is not None else self.store.count(self.name)

    def facet(self, field: str, *, kind: str | None = None, limit: int = 10,
              bins: int | Sequence[float] | None = None, filter: Filter | Mapping[str, Any] | None = None,
              tenant: str | None = None) -> FacetResult:
        """Exact aggregates of a declared payload field over the documents (of `tenant`, matching
        `filter`), from the payload postings (`lamina.index.facets`): a keyword field's top `limit`
        values by document count; a numeric field's min, max and, with `bins` (a count or explicit
        edges), a histogram. `kind` defaults to the field's declared kind."""
        started = time.perf_counter()
        check_facet(field, kind, self.config.payload, bins)
        limit, edges, flt = check_limit(limit), check_bins(bins), as_filter(filter)
        with self._lock.read():
            allowed = self._allowed(flt, tenant)
            payload = self.indexes.payload
            documents = len(allowed) if allowed is not None else self.store.count(self.name)
            result = facet(payload.facet_pairs(field), field, allowed, payload.tombstones(), documents,
                           limit=limit, bins=edges)
        return replace(result, time_ms=round(1e3 * (time.perf_counter() - started), 3))

    def embed_query(self, query: str | np.ndarray | Sequence[float]) -> np.ndarray:
        """The dense query vector for a text (encoded) or a vector (validated)."""
        if isinstance(query, str):
            if not query.strip():
                raise InvalidArgument("query text is empty")
            return self.encoder.encode_queries([query])[0]
        return as_vector(query, self.config.dim, "query vector")

    def sparse_query(self, query: Query, tenant: str | None = None) -> SparseBatch:
        """The sparse query (one row) for a text (encoded) or given term weights. A BM25 text query
        bound to `tenant` weighs its terms by that tenant's idf (`tenant_bm25.query_weights`)."""
        if self.config.sparse is None:
            raise InvalidArgument(f"collection {self.name!r} has no sparse field: search it with mode dense")
        if isinstance(query, str):
            if not query.strip():
                raise InvalidArgument("query text is empty")
            if tenant is not None and self._tenant_bm25:
                with self._lock.read():
                    batch = tenant_bm25.query_weights(self.sparse_encoder, self.indexes.bm25_tenants, tenant, query)
            else:
                batch = self.sparse_encoder.encode_queries([query])
            if batch.nnz == 0:
                raise InvalidArgument(f"query {query[:60]!r} has no terms in the sparse vocabulary")
            return batch
        if isinstance(query, SparseBatch):
            if len(query) != 1:
                raise InvalidArgument(f"a sparse query is one vector, got {len(query)}")
            return query
        if isinstance(query, Mapping):
            return SparseBatch.from_rows([query])
        raise InvalidArgument("a sparse stage needs a text or sparse term weights, not a dense vector")

    def search(
        self,
        query: Query,
        k: int = 10,
        *,
        mode: str = "dense",
        params: Mapping[str, Any] | None = None,
        fusion: str | None = None,
        rerank: Rerank | int | None = None,
        filter: Filter | Mapping[str, Any] | None = None,
        tenant: str | None = None,
        with_payload: bool = True,
        deadline: Deadline | None = None,
    ) -> list[Hit]:
        """The k best documents for a text or a vector, best first.

        mode: "dense", "sparse" or "hybrid" (both, fused by `fusion`: "adaptive" (the default),
        "rrf", "weighted" or "zscore", see `Fusion`);
        rerank: a kappa or a `Rerank` for late-interaction reranking; filter and tenant
        restrict every stage; `deadline` (`lamina.index.deadline`) stops the search with
        DeadlineExceeded once it passes. For every option at once, build a `SearchRequest` and call `query`.
        """
        request = SearchRequest.simple(query, k, mode=mode, params=params, fusion=fusion, rerank=rerank,
                                       filter=filter, tenant=tenant, with_payload=with_payload)
        return self.query(request, deadline=deadline).hits

    def query(self, request: SearchRequest, *, deadline: Deadline | None = None) -> SearchResult:
        """Run a SearchRequest: first stages (concurrently), fusion, rerank, payload. `deadline`
        (default: the one bound to the request, else none) is checked between stages and in long loops."""
        with request_deadline.bind(deadline):
            return self._query(request, request_deadline.current())

    def _query(self, request: SearchRequest, deadline: Deadline) -> SearchResult:
        started = time.perf_counter()
        explain: dict[str, Any] = {"stages": []}
        check_search_work(request, self.config.index)  # ResourceExhausted past lamina.index.limits
        deadline.check("encoding the query")
        encoded: dict[str, np.ndarray] = {}
        if request.rerank is not None:
            self.token_encoder  # noqa: B018 - InvalidArgument when the collection keeps no tokens
            if not isinstance(request.query, str):
                raise InvalidArgument("rerank needs a text query: token vectors are encoded from text")
            query_tokens = self._query_tokens(request, encoded)
        inputs = [self._stage_input(stage, request.query, request.tenant, encoded) for stage in request.stages]
        if request.graph is not None:
            self.graph_side  # noqa: B018 - InvalidArgument when the collection has no graph
        with self._lock.read():
            span = self._clustered_span(request)
            if span is not None:  # its stage reads the run; the filter's ids are never listed
                allowed, explain["cardinality"] = None, span[1] - span[0]
            else:
                allowed = self._allowed(request.filter, request.tenant)
                if allowed is not None:
                    explain["cardinality"] = len(allowed)
            deadline.check("the first stages")
            runs = [partial(_checked, deadline, f"the {stage.kind} stage",
                            partial(self._run_stage, stage, q, request.stage_limit(stage), allowed, request, span))
                    for stage, q in zip(request.stages, inputs)]
            if len(runs) > 1:
                lists = list(_stage_pool().map(lambda run: run(), runs))
            else:
                lists = [runs[0]()]
            for stage, (_, _, info) in zip(request.stages, lists):
                explain["stages"].append(info)
            ranked = [(ids, scores) for ids, scores, _ in lists]
            if len(ranked) == 1:
                ids, scores = ranked[0]
            else:
                limit = max(request.k, request.rerank.kappa if request.rerank else 0,
                            request.graph.limit if request.graph else 0)
                ids, scores, explain["fusion_detail"] = self._fuse(request, inputs, ranked, limit, allowed, span)
                explain["fusion"] = request.fusion.method
            deadline.check("fusion")
            if request.graph is not None:
                ids, scores, explain["graph"] = self._graph_expand(request, ids, scores, allowed)
            if request.rerank is not None:
                deadline.check("rerank")
                r = request.rerank  # SearchRequest checked k <= kappa
                ids, scores, stats = rerank(query_tokens, ids, scores, self.indexes.tokens, k=request.k,
                                            kappa=r.kappa, alpha=r.alpha, beta=r.beta)
                explain["rerank"] = stats.to_dict()
            ids, scores = ids[:request.k], scores[:request.k]
        deadline.check("fetching the hits")
        hits = self.hits(np.asarray(scores), np.asarray(ids), with_payload=request.with_payload)
        if request.explain and "_paths" in explain.get("graph", {}):
            explain["graph"]["hits"] = self.graph_side.paths(explain["graph"], np.asarray(ids),
                                                             partial(self.store.doc_ids, self.name))
        explain["ms"] = round(1e3 * (time.perf_counter() - started), 3)
        return SearchResult(hits, explain if request.explain else None)

    def _fuse(self, request: SearchRequest, inputs: list, ranked: list, limit: int, allowed: np.ndarray | None,
              span: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """The stages' lists fused by `request.fusion`; with feedback, the dense stages search
        again from their query moved by Rocchio towards the best fused documents, and the lists
        are fused once more (`lamina.retrieval.fusion`). Returns ids, scores, the explain detail."""
        f = request.fusion
        ids, scores, detail = fuse(f.method, ranked, weights=f.weights, rrf_k=f.rrf_k, limit=limit)
        m = f.feedback_docs
        dense = [i for i, stage in enumerate(request.stages) if stage.kind == "dense"]
        if not m or not dense or not len(ids) or f.feedback_weight == 0:
            return ids, scores, detail
        feedback = self._vectors_of(ids[:m])
        ranked = list(ranked)
        for i in dense:
            moved = rocchio(inputs[i], feedback, f.feedback_weight)
            again, again_scores, _ = self._run_stage(request.stages[i], moved, request.stage_limit(request.stages[i]),
                                                     allowed, request, span)
            ranked[i] = (again, again_scores)
        ids, scores, detail = fuse(f.method, ranked, weights=f.weights, rrf_k=f.rrf_k, limit=limit)
        return ids, scores, {**detail, "feedback": {"documents": int(min(m, len(feedback))),
                                                    "weight": f.feedback_weight, "stages": dense}}

    # ------------------------------------------------------------------ entity graph
    @property
    def graph_side(self) -> Any:
        """The entity graph (`lamina.retrieval.graph_stage.GraphSide`), loaded from the store on first use."""
        if self.config.graph is None:
            raise InvalidArgument(f"collection {self.name!r} has no entity graph: a graph search needs the "
                                  "collection option graph (create it with graph=True, or `lamina build --graph`)")
        if self._graph_side is None:
            from lamina.retrieval.graph_stage import GraphSide

            self._graph_side = GraphSide(self.store, self.name, self.config.graph,
                                         self.encoder if self.config.encoder is not None else None)
        return self._graph_side

    def _graph_write(self, kept: list[StoredDoc]) -> tuple[Any, list]:
        """The `extra` records of a write (entities of the `kept` versions, in the order the store
        adds them), and the list its planned deltas land in; (None, []) without a graph."""
        if self.config.graph is None:
            return None, []
        side = self.graph_side
        mentions = side.extract([d.text for d in kept])
        vectors = side.prepare_vectors(mentions)
        pending: list = []
        return side.write_ops([(d.tenant, m) for d, m in zip(kept, mentions)], vectors, pending), pending

    def _graph_commit(self, pending: list) -> None:
        if pending:
            self.graph_side.commit(pending)

    def _graph_expand(self, request: SearchRequest, ids: np.ndarray, scores: np.ndarray,
                      allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        return self.graph_side.expand(request.query, request.tenant, request.graph, np.asarray(ids),
                                      np.asarray(scores), allowed, request.k)

    def _query_tokens(self, request: SearchRequest, encoded: dict[str, np.ndarray]) -> np.ndarray:
        """The rerank's query token matrix; with a shared pass, the dense query vector of the same
        text goes into `encoded` too, so that the query runs the model once."""
        text = request.query
        if not text.strip():
            raise InvalidArgument("query text is empty")
        joint = self._joint_encoder()
        dense_text = any(s.kind == "dense" and (s.query is None or s.query == text) for s in request.stages)
        if joint is None or not dense_text:
            return self.token_encoder.encode_queries([text])[0]
        pooled, matrices = joint.encode_queries_joint([text])
        encoded[text] = pooled[0]
        return matrices[0]

    def _stage_input(self, stage: Stage, query: Query, tenant: str | None = None,
                     encoded: Mapping[str, np.ndarray] | None = None) -> np.ndarray | SparseBatch:
        q = query if stage.query is None else stage.query
        if stage.kind == "dense":
            if isinstance(q, (SparseBatch, Mapping)):
                raise InvalidArgument("a dense stage needs a text or a dense vector, not sparse weights")
            if encoded and isinstance(q, str) and q in encoded:
                return encoded[q]
            return self.embed_query(q)
        return self.sparse_query(q, tenant)

    def _run_stage(self, stage: Stage, q: np.ndarray | SparseBatch, limit: int, allowed: np.ndarray | None,
                   request: SearchRequest, span: tuple[int, int] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        started = time.perf_counter()
        info: dict[str, Any] = {"kind": stage.kind, "limit": limit}
        params = {key: _integral(key, v) for key, v in stage.params.items()}
        if allowed is not None and not len(allowed):
            ids, scores = np.empty(0, np.int64), np.empty(0, np.float32)
            info["plan"] = "empty"
        elif stage.kind == "dense" and request.tenant is not None and self.indexes.tenants is not None:
            scores, ids, info["plan"] = self._tenant_tree_stage(q, limit, request)
        elif stage.kind == "dense":
            scores, ids, info["plan"] = self._dense_stage(q, limit, allowed, params, span)
        else:  # sparse_query() already refused a collection without a sparse field
            scores, ids = self.indexes.sparse.search(q, limit, allowed=allowed, params=params or None)
            scores, ids = scores[0], ids[0]
            info["plan"] = "sparse" if allowed is None else "sparse-filtered"
        valid = ids >= 0
        ids, scores = ids[valid], scores[valid]
        info["candidates"] = len(ids)
        info["ms"] = round(1e3 * (time.perf_counter() - started), 3)
        return ids, scores, info

    def _dense_stage(self, vector: np.ndarray, limit: int, allowed: np.ndarray | None, params: Mapping[str, Any],
                     span: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
        """The dense index as it is, or, for a restricted query, the planner's choice: brute force
        over the allowed ids when they are few, else the index with them as selector, widened. A
        filter that is a run of clustered codes (`span`, from `_clustered_span`; `allowed` is then
        None) reads that run."""
        planner = self._planner()
        if span is not None:
            scores, ids, plan = planner.search_span(vector, limit, span, params=params)
            return scores[0], ids[0], plan.name.replace("_", "-")
        if allowed is None:  # the planner's own knob means nothing to an unrestricted search
            params, _ = split_planner_params(params)
            scores, ids = self.indexes.dense.search(vector[None, :], limit, params=params)
            return scores[0], ids[0], self.config.index.kind
        scores, ids, plan = planner.search_within(vector, limit, allowed, params=params)
        return scores[0], ids[0], plan.name.replace("_", "-")

    def _tenant_tree_stage(self, vector: np.ndarray, limit: int,
                           request: SearchRequest) -> tuple[np.ndarray, np.ndarray, str]:
        """A tenant's query through the planner: its sub-tree of the shared tree (Curator), or
        brute force when a filter leaves few of its documents."""
        scores, ids, plan = self._planner().search(vector, limit, flt=request.filter, tenant=request.tenant)
        return scores[0], ids[0], plan.name.replace("_", "-")

    def _planner(self) -> QueryPlanner:
        indexes = self.indexes
        scan = indexes.dense.codes if isinstance(indexes.dense, DenseIndex) else None
        return QueryPlanner(indexes.payload, indexes.dense, self._vectors_of, tenant_index=indexes.tenants,
                            metric=self.config.metric, scan=scan, clustered=indexes.clustered)

    def _vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """Dense vectors of live iids: from the dense index when it holds them all (in memory,
        10x faster than the store for a 10k-id filter), else from the store (rows of deleted
        iids are zeros)."""
        dense = self.indexes.dense
        if isinstance(dense, DenseIndex):
            held = dense.vectors_of(ids)
            if held is not None:
                return held
        raws = self.store.get_vectors(self.name, DENSE_VECTOR, ids)
        out = np.zeros((len(ids), self.config.dim), dtype=np.float32)
        present = np.fromiter((raw is not None for raw in raws), dtype=bool, count=len(raws))
        if present.any():
            out[present] = np.frombuffer(b"".join(r for r in raws if r is not None),
                                         dtype=np.float32).reshape(-1, self.config.dim)
        return out

    def _clustered_span(self, request: SearchRequest) -> tuple[int, int] | None:
        """The run of clustered codes a request's filter is, when every stage is dense and the
        request has no tenant (the planner's `clustered_span`); None otherwise. Read under the
        collection's read lock, so the answer holds for the whole request."""
        if self.indexes.clustered is None or request.filter is None or request.tenant is not None \
                or any(stage.kind != "dense" for stage in request.stages):
            return None
        return self._planner().clustered_span(request.filter, None)

    def _allowed(self, flt: Filter | None, tenant: str | None) -> np.ndarray | None:
        """The sorted iids a query may return (None: all)."""
        allowed = None
        if flt is not None:
            allowed = self.indexes.payload.evaluate(flt)
        if tenant is not None:
            owned = self._tenant_ids(tenant)
            allowed = owned if allowed is None else intersect_sorted(allowed, owned)
        return allowed

    def _tenant_ids(self, tenant: str) -> np.ndarray:
        return self.indexes.owners.evaluate(Filter(must=(Match(OWNER_FIELD, tenant),)))

    def search_vectors(self, queries: np.ndarray, k: int, *, params: Mapping[str, Any] | None = None,
                       allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Batched dense search returning internal ids: the benchmark harness's entry point."""
        with self._lock.read():
            return self.indexes.dense.search(queries, k, params=params, allowed=allowed)

    def hits(self, scores: np.ndarray, iids: np.ndarray, *, with_payload: bool = True) -> list[Hit]:
        """Resolve one row of internal ids to Hits (dropping empty slots and raced deletes)."""
        valid = iids >= 0
        scores, iids = scores[valid], iids[valid]
        doc_ids = self.store.doc_ids(self.name, iids)
        keep = [i for i, d in enumerate(doc_ids) if d is not None]
        if not with_payload:
            return [Hit(doc_ids[i], float(scores[i])) for i in keep]
        docs = self.store.get_documents(self.name, [doc_ids[i] for i in keep])
        return [Hit(doc.id, float(scores[i]), doc.text, doc.metadata, doc.tenant)
                for i, doc in zip(keep, docs) if doc is not None]

    def as_pipeline(self, **options: Any) -> Any:
        """A RAG pipeline over this collection: `lamina.rag.Pipeline(self, **options)`, e.g.
        `collection.as_pipeline(generator="local").run("question")`."""
        if _pipeline_factory is None:
            raise FailedPrecondition("the RAG layer is not loaded: import lamina.rag (importing lamina does)")
        return _pipeline_factory(self, **options)

    def stats(self) -> dict[str, Any]:
        """Counts and resident bytes of each index."""
        with self._lock.read():
            return {"documents": self.store.count(self.name), "memory_bytes": self.indexes.memory_bytes()}


def _row_id(row: Any) -> str | None:
    if isinstance(row, Document):
        return row.id if isinstance(row.id, str) else None
    if isinstance(row, Mapping):
        value = row.get("id", row.get("_id"))
        return value if isinstance(value, str) else None
    return None


def _checked(deadline: Deadline, where: str, run: Callable[[], Any]) -> Any:
    """`run()` (a first stage, maybe on a pool thread) with `deadline` checked first and bound inside."""
    deadline.check(where)
    with request_deadline.bind(deadline):
        return run()


def _integral(key: str, value: Any) -> Any:
    """Index knobs arrive as numbers (protobuf doubles): whole numbers become ints."""
    if isinstance(value, float) and value.is_integer() and key not in FLOAT_PARAMS:
        return int(value)
    return value


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _stage_pool() -> ThreadPoolExecutor:
    """Threads that run a query's first stages side by side (faiss and numba release the GIL)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lamina-stage")
        return _POOL


def _load_sparse_encoder(name: str) -> SparseEncoder:
    from lamina.retrieval.encoders.sparse import BM25Encoder, load_sparse_encoder

    if name == DEFAULT_SPARSE_ENCODER:
        # idf on the query side: stored document weights stay right as the corpus changes
        return BM25Encoder(idf_side="query")
    return load_sparse_encoder(name)


def _load_token_encoder(name: str) -> TokenEncoder:
    from lamina.retrieval.encoders.multivector import load_token_encoder

    return load_token_encoder(name)


class Database:
    """All collections under one data directory; the in-process entry point of Lamina."""

    def __init__(self, data_dir: str | Path, *,
                 encoder_loader: Callable[[str], DenseEncoder] = load_dense_encoder,
                 sparse_loader: Callable[[str], SparseEncoder] | None = None,
                 token_loader: Callable[[str], TokenEncoder] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.store = _open_checked_store(self.data_dir)
        self._encoder_loader = encoder_loader
        self._sparse_loader = sparse_loader
        self._token_loader = token_loader
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()
        known = {c.name for c in self.store.list_collections()}
        self._write_catalog()
        indexes = self.data_dir / "indexes"
        if indexes.is_dir():  # index files of collections dropped before a crash
            for stale in indexes.iterdir():
                if stale.name not in known:
                    shutil.rmtree(stale, ignore_errors=True)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _index_dir(self, name: str) -> Path:
        return self.data_dir / "indexes" / name

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        *,
        metric: str = "ip",
        index: IndexConfig | Mapping[str, Any] | str | None = None,
        encoder: str | None = DEFAULT_ENCODER,
        sparse: SparseConfig | Mapping[str, Any] | str | bool | None = True,
        multivector: MultivectorConfig | Mapping[str, Any] | str | bool | None = None,
        payload: Mapping[str, str] | None = None,
        tenant_tree: bool = False,
        clustering_key: str | None = None,
        graph: GraphConfig | Mapping[str, Any] | bool | None = None,
    ) -> Collection:
        """Create a collection.

        dim: defaults to the encoder's. index: a dense index kind or an IndexConfig. sparse:
        True (the default: BM25 when the collection has a text encoder), an encoder name, a
        SparseConfig, or False/None for none. multivector: True (the dense encoder's token
        embeddings), an encoder name or a MultivectorConfig, to rerank by MaxSim. payload:
        metadata fields to index for filtering, key -> "keyword" | "numeric". tenant_tree: keep a
        Curator-style tenant tree, so that a tenant's dense search visits its own sub-tree.
        clustering_key: a numeric payload field; the dense scan codes are also kept in its order,
        so that a filter that is one range over it scans a contiguous run (see CollectionConfig).
        graph: True or a GraphConfig (or its dict) to keep an entity graph of the texts, written
        with each chunk, for graph searches (mode "hybrid+graph", `SearchRequest.graph`).
        """
        check_name(name)
        if isinstance(index, str):
            index = IndexConfig(kind=index)
        elif isinstance(index, Mapping):
            index = IndexConfig.from_dict(dict(index))
        index = index or IndexConfig()
        if encoder is None and dim is None:
            raise InvalidArgument("a collection without an encoder needs an explicit dimension")
        if encoder is not None:  # loaded now, so that a bad encoder fails the create, not the first write
            encoder_dim = self._encoder_loader(encoder).dim
            if dim is not None and dim != encoder_dim:
                raise InvalidArgument(f"encoder {encoder!r} gives dimension {encoder_dim}, the request asks for {dim}")
            dim = encoder_dim
        config = CollectionConfig(name=name, dim=dim, metric=metric, index=index, encoder=encoder,
                                  sparse=_sparse_config(sparse, encoder),
                                  multivector=_multivector_config(multivector, encoder),
                                  payload=dict(payload or {}), tenant_tree=tenant_tree,
                                  clustering_key=clustering_key, graph=GraphConfig.coerce(graph))
        with self._lock:
            self.store.create_collection(config)
            shutil.rmtree(self._index_dir(name), ignore_errors=True)
            try:
                coll = self._open(config)
            except Exception:
                self.store.drop_collection(name)  # e.g. an encoder that does not load: leave nothing behind
                raise
            self._collections[name] = coll
            self._write_catalog()
            return coll

    def _write_catalog(self) -> None:
        self.store.sync()  # durable first: the catalog never claims more than the WAL holds
        Catalog(self.store.last_seq, [c.name for c in self.store.list_collections()]).write(self.data_dir)

    def _open(self, config: CollectionConfig) -> Collection:
        return Collection(self.store, config, self._index_dir(config.name), self._encoder_loader,
                          self._sparse_loader, self._token_loader)

    def collection(self, name: str) -> Collection:
        """Open an existing collection (NotFound if it does not exist)."""
        with self._lock:
            if name not in self._collections:
                config = self.store.get_collection(name)
                self._collections[name] = self._open(config)
            return self._collections[name]

    def get_or_create_collection(self, name: str, **kwargs: Any) -> Collection:
        try:
            return self.collection(name)
        except NotFound:
            return self.create_collection(name, **kwargs)

    def list_collections(self) -> list[CollectionConfig]:
        return self.store.list_collections()

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self.store.drop_collection(name)
            dropped = self._collections.pop(name, None)
            if dropped is not None:  # a build under way ends on its own; nothing swaps it in to use
                dropped._maintenance.close(wait=False)
            shutil.rmtree(self._index_dir(name), ignore_errors=True)
            self._write_catalog()

    def backup(self, dest: str | Path) -> dict[str, Any]:
        """A consistent copy of this data directory in `dest`, taken without stopping writes
        (`lamina.retrieval.backup`); returns the backup's manifest ({"seq", "collections", ...})."""
        from lamina.retrieval.backup import backup_database

        return backup_database(self, dest)

    def close(self) -> None:
        with self._lock:
            for coll in self._collections.values():
                coll.close()
            self._collections.clear()
            self._write_catalog()
            self.store.close()


def _open_checked_store(data_dir: Path) -> Store:
    """The store of `data_dir`, checked against what the directory acknowledged outside it
    (`lamina.index.catalog`): a store behind it is refused, never served as an older database."""
    seen = witnesses(data_dir)  # before the store tracks its high-water mark: that overwrites it
    store = Store(data_dir / "store")
    try:
        check_store(data_dir, store.last_seq, [c.name for c in store.list_collections()], seen)
    except Exception:
        store.close()
        raise
    store.track(HighWater(data_dir))
    return store


def _sparse_config(value: SparseConfig | Mapping[str, Any] | str | bool | None,
                   encoder: str | None) -> SparseConfig | None:
    if value is None or value is False:
        return None
    if value is True:
        return SparseConfig() if encoder is not None else None
    if isinstance(value, str):
        return SparseConfig(encoder=value)
    if isinstance(value, Mapping):
        return SparseConfig.from_dict(value)
    return value


def _multivector_config(value: MultivectorConfig | Mapping[str, Any] | str | bool | None,
                        encoder: str | None) -> MultivectorConfig | None:
    if value is None or value is False:
        return None
    if value is True:
        if encoder is None:
            raise InvalidArgument("multivector token vectors are encoded from text: the collection needs an encoder")
        return MultivectorConfig(encoder=encoder)
    if isinstance(value, str):
        return MultivectorConfig(encoder=value)
    if isinstance(value, Mapping):
        return MultivectorConfig.from_dict(value)
    return value
