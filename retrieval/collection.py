"""Collections: upsert, delete, get and search over the store and its derived indexes.

A `Database` owns one data directory:

    <data_dir>/store/                  RocksDB: the source of truth (`lamina.index.store`)
    <data_dir>/indexes/<collection>/   index snapshots (`lamina.index.snapshot`)

A `Collection` writes each batch to the store first (one WriteBatch, synced when `wait`),
then applies it to its in-memory index as a delta. On open it loads the last snapshot and
replays the store's log after the snapshot's sequence number, so it answers exactly as it
did before a restart or a crash; a missing or corrupt snapshot is rebuilt from the store.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lamina.index.dense import DenseIndex
from lamina.index.errors import CorruptIndex, InvalidArgument, NotFound, ResourceExhausted
from lamina.index.locks import RWLock
from lamina.index.snapshot import read_manifest, verify_snapshot, write_snapshot
from lamina.index.store import Store, StoredDoc
from lamina.index.types import (
    DEFAULT_ENCODER,
    CollectionConfig,
    Document,
    Hit,
    IndexConfig,
    RowResult,
    as_document,
    as_vector,
    check_doc_id,
    check_k,
    check_metadata,
    check_name,
)
from lamina.retrieval.encoders.base import DenseEncoder
from lamina.retrieval.encoders.dense import load_dense_encoder

log = logging.getLogger(__name__)

MAX_K = 10_000
MAX_BATCH = 10_000
SNAPSHOT_EVERY = 50_000  # writes applied since the last snapshot before taking a new one


class Collection:
    """One collection: its config, its dense index and the store it derives from."""

    def __init__(self, store: Store, config: CollectionConfig, index_dir: Path,
                 encoder_loader: Callable[[str], DenseEncoder] = load_dense_encoder) -> None:
        self.store = store
        self.config = config
        self.index_dir = index_dir
        self._encoder_loader = encoder_loader
        self._encoder: DenseEncoder | None = None
        self._lock = RWLock()
        self._writes_since_snapshot = 0
        self._snapshot_seq = 0
        self.index = self._open_index()

    @property
    def name(self) -> str:
        return self.config.name

    # ------------------------------------------------------------------ index lifecycle
    def _open_index(self) -> DenseIndex:
        cfg = self.config
        index: DenseIndex | None = None
        seq = 0
        try:
            manifest = read_manifest(self.index_dir)
            if manifest is not None:
                directory = verify_snapshot(self.index_dir, manifest)
                index = DenseIndex.load(directory, cfg.dim, cfg.metric, cfg.index)
                seq = int(manifest["seq"])
        except CorruptIndex as exc:
            log.warning("collection %s: %s; rebuilding the index from the store", cfg.name, exc)
            index = None
        if index is None:
            return self._rebuild_index()
        changes = self.store.changes_since(cfg.name, seq)
        index.delete(changes.removed)
        self._add_from_store(index, changes.added)
        self._snapshot_seq = seq
        self._writes_since_snapshot = len(changes.added) + len(changes.removed)
        return index

    def _rebuild_index(self) -> DenseIndex:
        cfg = self.config
        index = DenseIndex(cfg.dim, cfg.metric, cfg.index)
        seq = self.store.last_seq  # read before the scan: anything later is replayed again, harmlessly
        for iids, raw in self.store.iter_vectors(cfg.name, "dense"):
            index.add(iids, np.frombuffer(b"".join(raw), dtype=np.float32).reshape(len(raw), cfg.dim))
        self._snapshot_seq = 0
        self._writes_since_snapshot = max(len(index), 1) if seq else 0
        return index

    def _add_from_store(self, index: DenseIndex, iids: np.ndarray) -> None:
        raws = self.store.get_vectors(self.config.name, "dense", iids)
        present = [i for i, raw in enumerate(raws) if raw is not None]
        if present:
            vectors = np.frombuffer(b"".join(raws[i] for i in present), dtype=np.float32)
            index.add(iids[present], vectors.reshape(len(present), self.config.dim))

    def rebuild(self) -> None:
        """Rebuild the index from the store (e.g. to retrain IVF on today's data) and snapshot it."""
        with self._lock.write():
            self.index = self._rebuild_index()
            self._snapshot_locked()

    def snapshot(self) -> None:
        """Persist the index so that the next open replays nothing."""
        with self._lock.write():
            self._snapshot_locked()

    def _snapshot_locked(self) -> None:
        seq = self.store.last_seq
        write_snapshot(self.index_dir, seq, self.index.save, {"collection": self.config.name})
        self.store.trim_log(self.config.name, seq)
        self._snapshot_seq = seq
        self._writes_since_snapshot = 0

    def close(self) -> None:
        if self._writes_since_snapshot:
            self.snapshot()

    # ------------------------------------------------------------------ encoder
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

    # ------------------------------------------------------------------ writes
    def upsert(self, points: Iterable[Document | Mapping[str, Any]], *, wait: bool = False) -> list[RowResult]:
        """Insert or replace points; returns one RowResult per point, in order.

        A point needs an id and a vector or a text to embed. Invalid points are reported in
        their RowResult and not written; the valid ones are written in one atomic batch.
        `wait=True` returns only after the write is synced to disk.
        """
        rows = list(points)
        if len(rows) > MAX_BATCH:
            raise ResourceExhausted(f"batch of {len(rows)} points exceeds the limit of {MAX_BATCH}")
        results: list[RowResult | None] = [None] * len(rows)
        docs: list[Document] = []
        positions: list[int] = []
        for i, row in enumerate(rows):
            try:
                doc = as_document(row)
                check_doc_id(doc.id)
                doc.metadata = check_metadata(doc.metadata)
                if doc.tenant is not None and not isinstance(doc.tenant, str):
                    raise InvalidArgument(f"tenant must be a string, got {type(doc.tenant).__name__}")
                if doc.text is not None and not isinstance(doc.text, str):
                    raise InvalidArgument(f"text must be a string, got {type(doc.text).__name__}")
                if doc.vector is not None:
                    doc.vector = as_vector(doc.vector, self.config.dim, f"vector of point {doc.id!r}")
                elif doc.text is None:  # an empty text is a document too: it is embedded as ""
                    raise InvalidArgument(f"point {doc.id!r} has neither a vector nor a text")
                elif self.config.encoder is None:
                    raise InvalidArgument(f"point {doc.id!r} has no vector and collection {self.name!r} has no encoder")
            except InvalidArgument as exc:
                results[i] = RowResult(i, getattr(row, "id", None) if isinstance(row, Document)
                                       else (row.get("id", row.get("_id")) if isinstance(row, Mapping) else None),
                                       str(exc))
                continue
            docs.append(doc)
            positions.append(i)

        to_embed = [d for d in docs if d.vector is None]
        if to_embed:
            vectors = self.encoder.encode_documents([d.text for d in to_embed])
            for doc, vec in zip(to_embed, vectors):
                doc.vector = vec

        if docs:
            stored = [StoredDoc(d.id, d.text, d.metadata, d.tenant, {"dense": d.vector.astype(np.float32).tobytes()})
                      for d in docs]
            with self._lock.write():
                written = self.store.write(self.name, stored, sync=wait)
                self.index.delete(written.removed)
                vectors = np.stack([d.vector for d in docs]).astype(np.float32)
                # a repeated id within the batch keeps only its last version (written.added)
                last_of = {d.id: j for j, d in enumerate(docs)}
                keep = sorted(last_of.values())
                self.index.add(written.added, vectors[keep])
                self._after_write(len(docs))
            for doc, i in zip(docs, positions):
                results[i] = RowResult(i, doc.id)
        return [r for r in results if r is not None]

    def delete(self, ids: Sequence[str], *, wait: bool = False) -> list[str]:
        """Delete documents by id; returns the ids that existed. Unknown ids are ignored."""
        ids = list(ids)
        if len(ids) > MAX_BATCH:
            raise ResourceExhausted(f"batch of {len(ids)} ids exceeds the limit of {MAX_BATCH}")
        for doc_id in ids:
            check_doc_id(doc_id)
        if not ids:
            return []
        with self._lock.write():
            written = self.store.write(self.name, deletes=ids, sync=wait)
            self.index.delete(written.removed)
            self._after_write(len(written.removed))
        return list(written.deleted_ids)

    def _after_write(self, n: int) -> None:
        self._writes_since_snapshot += n
        if self._writes_since_snapshot >= SNAPSHOT_EVERY:
            self._snapshot_locked()

    # ------------------------------------------------------------------ reads
    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Document | None]:
        """The stored documents for `ids`, None where an id does not exist."""
        for doc_id in ids:
            check_doc_id(doc_id)
        stored = self.store.get_documents(self.name, list(ids), vectors=("dense",) if with_vectors else ())
        out: list[Document | None] = []
        for doc in stored:
            if doc is None:
                out.append(None)
                continue
            vector = np.frombuffer(doc.vectors["dense"], dtype=np.float32).copy() if "dense" in doc.vectors else None
            out.append(Document(doc.id, doc.text, vector, doc.metadata, doc.tenant))
        return out

    def count(self) -> int:
        return self.store.count(self.name)

    def embed_query(self, query: str | np.ndarray | Sequence[float]) -> np.ndarray:
        """The query vector for a text (encoded) or a vector (validated)."""
        if isinstance(query, str):
            if not query.strip():
                raise InvalidArgument("query text is empty")
            return self.encoder.encode_queries([query])[0]
        return as_vector(query, self.config.dim, "query vector")

    def search(
        self,
        query: str | np.ndarray | Sequence[float],
        k: int = 10,
        *,
        params: Mapping[str, Any] | None = None,
        with_payload: bool = True,
    ) -> list[Hit]:
        """The k nearest documents to a text or a vector, best first."""
        k = check_k(k, MAX_K)
        vector = self.embed_query(query)
        scores, iids = self.search_vectors(vector[None, :], k, params=params)
        return self.hits(scores[0], iids[0], with_payload=with_payload)

    def search_vectors(self, queries: np.ndarray, k: int, *, params: Mapping[str, Any] | None = None,
                       allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Batched search returning internal ids: the benchmark harness's entry point."""
        with self._lock.read():
            return self.index.search(queries, k, params=params, allowed=allowed)

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


class Database:
    """All collections under one data directory; the in-process entry point of Lamina."""

    def __init__(self, data_dir: str | Path, *,
                 encoder_loader: Callable[[str], DenseEncoder] = load_dense_encoder) -> None:
        self.data_dir = Path(data_dir)
        self.store = Store(self.data_dir / "store")
        self._encoder_loader = encoder_loader
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()
        known = {c.name for c in self.store.list_collections()}
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
    ) -> Collection:
        """Create a collection. `dim` defaults to the encoder's; `index` is a kind or an IndexConfig."""
        check_name(name)
        if isinstance(index, str):
            index = IndexConfig(kind=index)
        elif isinstance(index, Mapping):
            index = IndexConfig.from_dict(dict(index))
        index = index or IndexConfig()
        if dim is None:
            if encoder is None:
                raise InvalidArgument("a collection without an encoder needs an explicit dimension")
            dim = self._encoder_loader(encoder).dim
        config = CollectionConfig(name=name, dim=dim, metric=metric, index=index, encoder=encoder)
        with self._lock:
            self.store.create_collection(config)
            shutil.rmtree(self._index_dir(name), ignore_errors=True)
            coll = Collection(self.store, config, self._index_dir(name), self._encoder_loader)
            self._collections[name] = coll
            return coll

    def collection(self, name: str) -> Collection:
        """Open an existing collection (NotFound if it does not exist)."""
        with self._lock:
            if name not in self._collections:
                config = self.store.get_collection(name)
                self._collections[name] = Collection(self.store, config, self._index_dir(name),
                                                     self._encoder_loader)
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
            self._collections.pop(name, None)
            shutil.rmtree(self._index_dir(name), ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            for coll in self._collections.values():
                coll.close()
            self._collections.clear()
            self.store.close()
