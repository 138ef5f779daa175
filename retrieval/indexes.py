"""Everything a collection derives from its store, kept together so it is saved and replayed as one.

    dense     DenseIndex over the "dense" vectors (flat, IVF or HNSW), or a SpannIndex (kind "spann")
              whose files live beside the snapshots, in <index_dir>/spann, stamped with the
              sequence number they cover
    sparse    SparseIndex over the "sparse" vectors, with the BM25 corpus statistics (the whole
              collection's, and, in `bm25_tenants`, each tenant's: `TenantCorpusStats`)
    tokens    TokenStore over the "tokens" matrices (late-interaction rerank)
    payload   PayloadIndex over the metadata fields the schema declares
    owners    PayloadIndex over the tenant of each document (field "tenant")
    tenants   TenantIndex (Curator's shared tree, a sub-tree per tenant) when the config asks
    clustered ClusteredCodes in the clustering key's order, when the config names one (saved
              only while they follow the key's current values; laid out again otherwise)

All of it is derived: `build` scans the store, `apply` replays a window of the store's log
(the vectors and metadata of the added versions are read back from the store, so replay
does not depend on what the caller still holds), and `save`/`load` write and read one
snapshot directory with a subdirectory per part (`lamina.index.snapshot` checksums it all).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lamina.index.dense import DenseIndex
from lamina.index.errors import CorruptIndex, InvalidArgument, NotFound
from lamina.index.multivector import TOKENS_VECTOR, TokenStore, unpack_tokens
from lamina.index.payload import PayloadIndex
from lamina.index.scan import MIN_TRAIN, ClusteredCodes
from lamina.index.spann import SpannConfig, SpannIndex
from lamina.index.sparse import SeismicConfig, SparseIndex, TenantCorpusStats
from lamina.index.sparse.batch import batch_from_packed
from lamina.index.store import Store, StoredDoc
from lamina.index.tenants import TenantIndex
from lamina.index.types import CollectionConfig
from lamina.retrieval.maintenance import Rebuild

DENSE_VECTOR = "dense"
log = logging.getLogger(__name__)
SPARSE_VECTOR = "sparse"
OWNER_FIELD = "tenant"
BM25_SUMMARY_ENERGY = 0.7  # recall@10 0.976 on Cranfield BM25 at query_cut 20, against 0.93 with Seismic's 0.4
_OWNERS = {OWNER_FIELD: "keyword"}


class TenantTree(TenantIndex):
    """The collection's tenant tree: where `TenantIndex.add` would re-cluster inline (its
    `retrain_growth` rule), it only sets `retrain_due`; the maintenance worker builds a fresh
    tree outside the write lock (`build_tenants`) and swaps it in."""

    retrain_due = False

    def train(self) -> None:
        self.retrain_due = True

    def retrain(self) -> None:
        TenantIndex.train(self)
        self.retrain_due = False


@dataclass
class CollectionIndexes:
    config: CollectionConfig
    dense: DenseIndex | SpannIndex
    sparse: SparseIndex | None
    tokens: TokenStore | None
    payload: PayloadIndex
    owners: PayloadIndex
    tenants: TenantIndex | None = None
    bm25: dict[str, Any] | None = None  # BM25Encoder.to_dict() of the sparse encoder, when BM25
    seq: int = 0  # the store sequence number the next `save` covers (stamped into SPANN's files)
    clustered: ClusteredCodes | None = None  # the clustering key's codes, when current
    bm25_tenants: TenantCorpusStats | None = None  # BM25 statistics per tenant, when BM25 (the collection counts)
    pending: dict[str, Rebuild] = field(default_factory=dict)  # parts rebuilt in the background now
    retired: list[SpannIndex] = field(default_factory=list)  # swapped out; files kept until a snapshot

    def refresh_clustered(self, vectors_of: Callable[[np.ndarray], np.ndarray]) -> None:
        """Lay the dense vectors' codes out in the clustering key's order again (`ClusteredCodes`),
        unless they follow the key's current (value, id) pairs already. The collection calls it
        when it opens and at each snapshot: a write to the field in between (or a tombstone, which
        a run of codes cannot skip) leaves them behind, and range filters take the scattered scan."""
        key = self.config.clustering_key
        if key is None or not isinstance(self.dense, DenseIndex):
            return
        pairs = self.payload.value_order(key)
        if self.clustered is not None and self.clustered.current(pairs):
            return
        self.clustered = None
        if pairs is None or len(pairs[1]) < MIN_TRAIN:
            return
        codes = ClusteredCodes(key, self.config.dim, self.config.metric)
        try:
            codes.build(*pairs, vectors_of)
        except InvalidArgument as exc:  # e.g. a document with several values of the key
            log.warning("collection %s: no codes in %r order: %s", self.config.name, key, exc)
            return
        self.clustered = codes

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, config: CollectionConfig, sparse_vocab: int | None, token_dim: int | None,
              spann_dir: Path | None = None) -> CollectionIndexes:
        sparse = None
        if config.sparse is not None:
            options = dict(config.sparse.index)
            if config.sparse.encoder == "bm25":  # BM25 weights are flatter than SPLADE's: keep more summary mass
                options.setdefault("summary_energy", BM25_SUMMARY_ENERGY)
            sparse = SparseIndex(sparse_vocab, SeismicConfig.from_dict(options))
        tokens = None
        if config.multivector is not None:
            tokens = TokenStore(token_dim, config.multivector.codec)
        tenants = TenantTree(config.dim, config.metric) if config.tenant_tree else None
        return cls(config, _empty_dense(config, spann_dir), sparse, tokens,
                   PayloadIndex(config.payload), PayloadIndex(_OWNERS), tenants,
                   bm25_tenants=TenantCorpusStats(sparse_vocab) if _is_bm25(config) else None)

    @classmethod
    def build(cls, store: Store, config: CollectionConfig, sparse_vocab: int | None,
              token_dim: int | None, spann_dir: Path | None = None,
              on_documents: Callable[[list[StoredDoc]], None] | None = None) -> CollectionIndexes:
        """Every part from a full scan of the store; `on_documents` also sees the scanned documents
        (without vectors), e.g. to recount corpus statistics."""
        seq = store.last_seq  # read before the scan: what it finds covers at least this
        if config.index.kind == "spann":
            shutil.rmtree(spann_dir, ignore_errors=True)  # a fresh build; an open index keeps its files
        self = cls.empty(config, sparse_vocab, token_dim, spann_dir)
        name = config.name
        self.attach_store(store)
        if isinstance(self.dense, SpannIndex):
            self._build_spann(store, spann_dir, seq)
        else:
            self.dense = build_dense(store, config)
        if self.sparse is not None:
            for iids, raw in store.iter_vectors(name, SPARSE_VECTOR):
                self.sparse.add(iids, batch_from_packed(raw))
            self.sparse.compact()
        if self.tokens is not None:
            self.tokens = build_tokens(store, config, self.tokens.dim)
        docs = list(store.iter_documents(name))
        self._index_documents(docs)
        if on_documents is not None:
            on_documents(docs)
        if self.tenants is not None:
            self.tenants = build_tenants(store, config, {d.iid: d.tenant for d in docs})
        return self

    def _build_spann(self, store: Store, spann_dir: Path | None, seq: int) -> None:
        config = self.config
        batches = [(iids, _dense_rows(raw, config.dim)) for iids, raw in store.iter_vectors(config.name, DENSE_VECTOR)]
        if batches:  # SPANN clusters everything at once
            ids = np.concatenate([b[0] for b in batches])
            if len(ids) >= self.dense.config.build_size:
                self.dense = SpannIndex.build(ids, np.concatenate([b[1] for b in batches]), metric=config.metric,
                                              config=self.dense.config, path=spann_dir, seq=seq)
                batches = []
        self.attach_store(store)  # SPANN's again: it may be a new index now
        for iids, vectors in batches:
            self.dense.add(iids, vectors)

    # ------------------------------------------------------------------ background rebuilds
    def due(self) -> list[str]:
        """The parts whose maintenance is due (a threshold crossed) and not under way already."""
        wanted = []
        if self.dense.training_due if isinstance(self.dense, DenseIndex) else self.dense.build_due:
            wanted.append("dense")
        tokens = self.tokens
        if tokens is not None and tokens.codec.compressed and not tokens.codec.trained \
                and tokens.num_tokens >= tokens.train_size:
            wanted.append("tokens")
        if isinstance(self.tenants, TenantTree) and self.tenants.retrain_due:
            wanted.append("tenants")
        return [part for part in wanted if part not in self.pending and "all" not in self.pending]

    def begin(self, part: str) -> Rebuild:
        """Start recording the writes a rebuild of `part` must replay (call under the write lock,
        before the build's scan of the store begins)."""
        rebuild = self.pending[part] = Rebuild(part)
        return rebuild

    def build_part(self, part: str, store: Store) -> Any:
        """A fresh `part` from a full scan of the store (no lock held: writes go on meanwhile)."""
        config = self.config
        if part == "dense" and isinstance(self.dense, SpannIndex):
            return build_spann(store, config, self.dense)
        if part == "dense":
            return build_dense(store, config, train_size=self.dense.train_size)
        if part == "tokens":
            return build_tokens(store, config, self.tokens.dim, train_size=self.tokens.train_size)
        if part == "tenants":
            return build_tenants(store, config, {d.iid: d.tenant for d in store.iter_documents(config.name)})
        raise ValueError(f"no background build for part {part!r}")

    def finish(self, rebuild: Rebuild, built: Any) -> None:
        """Replay the writes since the build began onto `built`, then swap it in (under the write lock)."""
        part = rebuild.part
        if self.pending.get(part) is not rebuild:
            return  # abandoned (a full rebuild replaced these indexes)
        del self.pending[part]
        if built is None:  # nothing to build after all (deletes meanwhile)
            return
        if part == "dense" and isinstance(built, SpannIndex):
            rebuild.replay(lambda docs: _add_spann(built, docs, self.config.dim), built.delete)
            built.vector_source = self.dense.vector_source  # the store's vectors repair damaged lists
            self.retired.append(self.dense)  # its files stay until a snapshot names the new ones
            self.dense = built
        elif part == "dense":
            rebuild.replay(lambda docs: _add_dense(built, docs, self.config.dim, replayed=True), built.delete)
            self.dense = built
        elif part == "tokens":
            rebuild.replay(lambda docs: _add_tokens(built, docs), built.delete)
            self.tokens = built
        elif part == "tenants":
            rebuild.replay(lambda docs: _add_tenants(built, docs, self.config.dim), built.delete)
            self.tenants = built
        else:
            raise ValueError(f"no background build for part {part!r}")

    def release_retired(self) -> None:
        """Close the SPANN indexes swapped out and remove their files (once a snapshot names the
        files of the index that replaced them: a crash before it reopens the old ones)."""
        for old in self.retired:
            old.close()
            if isinstance(self.dense, SpannIndex) and old.path.resolve() != self.dense.path.resolve():
                shutil.rmtree(old.path, ignore_errors=True)
        self.retired.clear()

    def abandon(self, rebuild: Rebuild) -> None:
        if self.pending.get(rebuild.part) is rebuild:
            del self.pending[rebuild.part]

    def _index_documents(self, docs: Iterable[StoredDoc]) -> None:
        docs = list(docs)
        if not docs:
            return
        iids = np.array([d.iid for d in docs], dtype=np.int64)
        self.payload.add_many(iids, [d.metadata for d in docs])
        owned = [i for i, d in enumerate(docs) if d.tenant is not None]
        if owned:
            self.owners.add_many(iids[owned], [{OWNER_FIELD: docs[i].tenant} for i in owned])

    # ------------------------------------------------------------------ deltas
    def remove(self, iids: np.ndarray, seq: int | None = None) -> None:
        """Forget versions (ids the parts do not hold are ignored). `seq`: the store sequence
        number of the write, which SPANN stamps into any generation of files it publishes."""
        if isinstance(self.dense, SpannIndex):
            self.dense.delete(iids, seq=seq)
        if not len(iids):
            return
        for rebuild in self.pending.values():
            rebuild.removed(iids)
        if not isinstance(self.dense, SpannIndex):
            self.dense.delete(iids)
        if self.sparse is not None:
            if self.bm25_tenants is not None:  # uncounted with the terms the sparse index holds for them
                held = iids[self.bm25_tenants.holds(iids)]
                self.bm25_tenants.remove(held, self.sparse.terms(held))
            self.sparse.delete(iids)
        if self.tokens is not None:
            self.tokens.delete(iids)
        self.payload.delete(iids)
        self.owners.delete(iids)
        if self.tenants is not None:
            self.tenants.delete(iids)

    def add(self, docs: list[StoredDoc], seq: int | None = None, *, replayed: bool = False) -> None:
        """Index new versions whose vectors the caller holds (`StoredDoc.vectors`, store bytes).

        A version a part holds already with the same content is skipped by that part (replay
        after a crash may offer writes that files published since the snapshot hold). `seq` as
        for `remove`."""
        if not docs:
            return
        if isinstance(self.dense, SpannIndex):
            _add_spann(self.dense, docs, self.config.dim, seq=seq, build=False)
        else:  # the write path's ids are new; a replay's may be held already
            _add_dense(self.dense, docs, self.config.dim, replayed=replayed, train=False)
        if self.sparse is not None:
            has = [d for d in docs if SPARSE_VECTOR in d.vectors]
            if has:
                self.sparse.add(np.array([d.iid for d in has], dtype=np.int64),
                                batch_from_packed([d.vectors[SPARSE_VECTOR] for d in has]))
        if self.tokens is not None:
            _add_tokens(self.tokens, docs, train=False)
        self._index_documents(docs)
        if self.tenants is not None:
            _add_tenants(self.tenants, docs, self.config.dim)
        for rebuild in self.pending.values():
            rebuild.added(docs)

    def replay(self, store: Store, removed: np.ndarray, added: np.ndarray,
               on_documents: Callable[[list[StoredDoc]], None] | None = None, seq: int | None = None) -> None:
        """Apply a window of the store's log (up to sequence number `seq`), reading the added
        versions back from the store. Idempotent: a part that holds a version already skips it."""
        self.attach_store(store)
        self.remove(removed, seq)
        if not len(added):
            return
        name = self.config.name
        doc_ids = store.doc_ids(name, added)
        live = [d for d in doc_ids if d is not None]
        names = [DENSE_VECTOR] + ([SPARSE_VECTOR] if self.sparse is not None else []) \
            + ([TOKENS_VECTOR] if self.tokens is not None else [])
        docs = [d for d in store.get_documents(name, live, vectors=names) if d is not None]
        wanted = set(added.tolist())
        docs = [d for d in docs if d.iid in wanted]
        self.add(docs, seq, replayed=True)
        if on_documents is not None:
            on_documents(docs)

    def attach_store(self, store: Store) -> None:
        """Let SPANN rebuild a posting list that fails its CRC32C from the store's vectors."""
        if isinstance(self.dense, SpannIndex):
            name, dim = self.config.name, self.config.dim

            def vectors_of(iids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                raw = store.get_vectors(name, DENSE_VECTOR, iids)
                have = [i for i, r in enumerate(raw) if r is not None]
                return np.asarray(iids, dtype=np.int64)[have], _dense_rows([raw[i] for i in have], dim)

            self.dense.vector_source = vectors_of

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        if isinstance(self.dense, SpannIndex):
            self.dense.compact(seq=self.seq)  # its own directory: deltas merged, stamped with seq
            (directory / "spann.json").write_text(json.dumps({"seq": self.seq, "dir": self.dense.path.name}))
        else:
            self.dense.save(directory)
        for part, index in (("payload", self.payload), ("owners", self.owners), ("sparse", self.sparse)):
            if index is not None:
                (directory / part).mkdir()
                index.save(directory / part)
        if self.tokens is not None:
            self.tokens.save(directory / "tokens")
        if self.tenants is not None:
            (directory / "tenants").mkdir()
            self.tenants.save(directory / "tenants")
        if self.bm25 is not None:
            (directory / "bm25.json").write_text(json.dumps(self.bm25))
        if self.bm25_tenants is not None:
            (directory / "bm25_tenants").mkdir()
            self.bm25_tenants.save(directory / "bm25_tenants")
        if self.clustered is not None and self.clustered.current(self.payload.value_order(self.clustered.field)):
            (directory / "clustered").mkdir()
            self.clustered.save(directory / "clustered")

    @classmethod
    def load(cls, directory: Path, config: CollectionConfig, spann_dir: Path | None = None) -> CollectionIndexes:
        """Open a snapshot written by `save`; CorruptIndex when a part is missing or unreadable."""
        if config.index.kind == "spann":
            dense = _load_spann(directory, config, spann_dir)
        else:
            dense = DenseIndex.load(directory, config.dim, config.metric, config.index)
        sparse = tokens = bm25 = bm25_tenants = None
        if _is_bm25(config):
            if not (directory / "bm25_tenants").is_dir():
                raise CorruptIndex(f"snapshot {directory} has no per-tenant BM25 statistics")
            bm25_tenants = TenantCorpusStats.load(directory / "bm25_tenants")
        if config.sparse is not None:
            if not (directory / "sparse").is_dir():
                raise CorruptIndex(f"snapshot {directory} has no sparse index")
            sparse = SparseIndex.load(directory / "sparse")
            if (directory / "bm25.json").exists():
                bm25 = json.loads((directory / "bm25.json").read_text())
        if config.multivector is not None:
            try:
                tokens = TokenStore.load(directory / "tokens", verify=False)  # the snapshot checksummed it
            except (NotFound, CorruptIndex) as exc:
                raise CorruptIndex(f"snapshot {directory}: token store unreadable: {exc}") from None
        for part in ("payload", "owners"):
            if not (directory / part).is_dir():
                raise CorruptIndex(f"snapshot {directory} has no {part} index")
        payload = PayloadIndex.load(directory / "payload")
        if payload.fields != config.payload:
            raise CorruptIndex(f"snapshot {directory} indexes payload fields {payload.fields}, "
                               f"the collection declares {config.payload}")
        tenants = None
        if config.tenant_tree:
            if not (directory / "tenants").is_dir():
                raise CorruptIndex(f"snapshot {directory} has no tenant tree")
            tenants = TenantTree.load(directory / "tenants")
        clustered = None
        if config.clustering_key is not None and (directory / "clustered").is_dir():
            clustered = ClusteredCodes.load(directory / "clustered", config.clustering_key, config.dim, config.metric,
                                            payload.value_order(config.clustering_key))
        return cls(config, dense, sparse, tokens, payload, PayloadIndex.load(directory / "owners"), tenants, bm25,
                   clustered=clustered, bm25_tenants=bm25_tenants)

    def memory_bytes(self) -> dict[str, int]:
        parts = {"dense": self.dense.memory_bytes(), "payload": self.payload.memory_bytes(),
                 "owners": self.owners.memory_bytes()}
        if self.sparse is not None:
            parts["sparse"] = self.sparse.memory_bytes()
        if self.bm25_tenants is not None:
            parts["bm25_tenants"] = self.bm25_tenants.memory_bytes()
        if self.tokens is not None:
            parts["tokens"] = self.tokens.memory_bytes()
        if self.tenants is not None:
            parts["tenants"] = self.tenants.memory_bytes()
        if self.clustered is not None:
            parts["clustered"] = self.clustered.memory_bytes()
        return parts


def _is_bm25(config: CollectionConfig) -> bool:
    return config.sparse is not None and config.sparse.encoder == "bm25"


def _empty_dense(config: CollectionConfig, spann_dir: Path | None) -> DenseIndex | SpannIndex:
    if config.index.kind != "spann":
        return DenseIndex(config.dim, config.metric, config.index)
    if spann_dir is None:
        raise InvalidArgument("a SPANN collection needs a directory for its posting file")
    return SpannIndex(config.dim, config.metric, SpannConfig.from_dict(config.index.spann), path=spann_dir)


def _load_spann(directory: Path, config: CollectionConfig, spann_dir: Path | None) -> SpannIndex:
    """The SPANN files of a snapshot: they must cover exactly the snapshot's sequence number."""
    try:
        named = json.loads((directory / "spann.json").read_text())
        wanted = named["seq"]
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptIndex(f"snapshot {directory} has no readable spann.json: {exc}") from None
    if spann_dir is not None and named.get("dir"):  # a background build's files: <spann_dir>.<seq>
        spann_dir = spann_dir.parent / Path(str(named["dir"])).name
    if spann_dir is None or not spann_dir.is_dir():
        raise CorruptIndex(f"SPANN directory {spann_dir} is missing")
    index = SpannIndex.load(spann_dir, dim=config.dim, metric=config.metric)
    if index.seq < wanted:  # files older than the snapshot that names them: rebuild
        index.close()
        raise CorruptIndex(f"SPANN files in {spann_dir} cover sequence {index.seq}, the snapshot {wanted}")
    # files newer than the snapshot (built in place by `add`, or compacted just before a crash
    # that lost the snapshot) hold part of the log after it: its replay skips what they hold
    return index


def build_spann(store: Store, config: CollectionConfig, live: SpannIndex) -> SpannIndex | None:
    """A SPANN index of every stored dense vector, built into a new directory beside the live
    index's (`spann.<seq>`, stamped with the store sequence number read before the scan); None
    when the store holds fewer than `build_size` vectors now."""
    seq = store.last_seq
    batches = [(iids, _dense_rows(raw, config.dim)) for iids, raw in store.iter_vectors(config.name, DENSE_VECTOR)]
    ids = np.concatenate([b[0] for b in batches]) if batches else np.empty(0, np.int64)
    if len(ids) < live.config.build_size:
        return None
    path = live.path.parent / f"spann.{seq}"
    shutil.rmtree(path, ignore_errors=True)
    return SpannIndex.build(ids, np.concatenate([b[1] for b in batches]), metric=config.metric, config=live.config,
                            path=path, seq=seq)


def _add_spann(spann: SpannIndex, docs: list[StoredDoc], dim: int, *, seq: int | None = None,
               build: bool = True) -> None:
    has = [d for d in docs if DENSE_VECTOR in d.vectors]
    if has:
        spann.add(np.array([d.iid for d in has], dtype=np.int64),
                  _dense_rows([d.vectors[DENSE_VECTOR] for d in has], dim), seq=seq, build=build)


def build_dense(store: Store, config: CollectionConfig, *, train_size: int = 10_000) -> DenseIndex:
    """A dense index of every stored dense vector, trained (IVF, scan codes) once it holds
    `train_size` of them: what a from-scratch build and a background retrain both run."""
    dense = DenseIndex(config.dim, config.metric, config.index, train_size=train_size)
    for iids, raw in store.iter_vectors(config.name, DENSE_VECTOR):
        dense.add(iids, _dense_rows(raw, config.dim))
    return dense


def build_tokens(store: Store, config: CollectionConfig, dim: int, *, train_size: int = 32_768) -> TokenStore:
    """A token store of every stored token matrix, its codec trained once it holds `train_size` rows."""
    tokens = TokenStore(dim, config.multivector.codec, train_size=train_size)
    for iids, raw in store.iter_vectors(config.name, TOKENS_VECTOR, batch_size=4096):
        tokens.add(iids, [unpack_tokens(r) for r in raw])
    return tokens


def build_tenants(store: Store, config: CollectionConfig, owner: dict[int, str | None]) -> TenantTree:
    """A tenant tree of every stored dense vector under its owner (`owner`: iid -> tenant), clustered."""
    tree = TenantTree(config.dim, config.metric)
    for iids, vectors in batches_for_tenants(store, config.name, config.dim):
        tree.add(iids, vectors, [owner.get(int(i)) for i in iids])
    tree.retrain()
    return tree


def _add_dense(dense: DenseIndex, docs: list[StoredDoc], dim: int, *, replayed: bool, train: bool = True) -> None:
    has = [d for d in docs if DENSE_VECTOR in d.vectors]
    if has:
        dense.add(np.array([d.iid for d in has], dtype=np.int64),
                  _dense_rows([d.vectors[DENSE_VECTOR] for d in has], dim), skip_held=replayed, train=train)


def _add_tokens(tokens: TokenStore, docs: list[StoredDoc], *, train: bool = True) -> None:
    has = [d for d in docs if TOKENS_VECTOR in d.vectors]
    if has:
        tokens.add(np.array([d.iid for d in has], dtype=np.int64),
                   [unpack_tokens(d.vectors[TOKENS_VECTOR]) for d in has], train=train)


def _add_tenants(tenants: TenantIndex, docs: list[StoredDoc], dim: int) -> None:
    has = [d for d in docs if DENSE_VECTOR in d.vectors]
    if has:
        tenants.add(np.array([d.iid for d in has], dtype=np.int64),
                    _dense_rows([d.vectors[DENSE_VECTOR] for d in has], dim), [d.tenant for d in has])


def batches_for_tenants(store: Store, name: str, dim: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    for iids, raw in store.iter_vectors(name, DENSE_VECTOR):
        yield iids, _dense_rows(raw, dim)


def _dense_rows(raw: list[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b"".join(raw), dtype=np.float32).reshape(len(raw), dim)
