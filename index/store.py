"""The RocksDB store: the source of truth for every collection (ARCHITECTURE.md, "Durability model").

Layout (one RocksDB, rocksdict binding, raw bytes keys and values):

    default   b"collection\\0" + name             -> CollectionConfig JSON
              b"seq"                              -> last sequence number (u64 big-endian)
              b"next_iid\\0" + name               -> next internal id of the collection
              b"count\\0" + name                  -> live documents in the collection
              b"system\\0" + namespace \\0 key     -> opaque bytes of a system record (e.g. API keys)
    docs      name \\0 doc_id                     -> {"text", "metadata", "tenant", "iid", "seq"} JSON
    vectors   name \\0 vector_name \\0 iid         -> raw vector bytes (dense: float32)
    iids      name \\0 iid                         -> doc_id
    log       name \\0 seq                         -> int64 [n_added, added..., removed...]

Every upsert or delete is one WriteBatch carrying the documents, their vectors, the id maps,
the counters and a log entry under a fresh, monotonically increasing sequence number, so a
crash leaves either all of it or none. Each write of a document gets a new internal id
(`iid`, int64): indexes never have to overwrite a vector in place, they add the new iid and
tombstone the old one. Indexes snapshot themselves with the sequence number they cover and
replay `changes_since(seq)` on open; `trim_log` drops entries every snapshot covers.
"""

from __future__ import annotations

import functools
import json
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rocksdict

from lamina.index.catalog import HighWater
from lamina.index.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LaminaError,
    NotFound,
    PermissionDenied,
    StoreCorrupted,
    StoreLocked,
)
from lamina.index.types import CollectionConfig, check_name

_CFS = ("docs", "vectors", "iids", "log", "graph")
CF_NAMES = ("default", *_CFS)
ExtraOps = Callable[[np.ndarray, np.ndarray], Iterable[tuple[bytes, "bytes | None"]]]
_U64 = struct.Struct(">Q")


def read_error(exc: Exception) -> Exception:
    """RocksDB's bare Exception for a failed read as a named error: a checksum failure is data loss,
    never an absent record."""
    if isinstance(exc, LaminaError):
        return exc
    text = str(exc)
    if "corrupt" in text.lower() or "checksum" in text.lower():
        return StoreCorrupted(f"the store failed a checksum while reading ({text}); the request is refused "
                              "rather than answered from damaged data. Run `lamina store check`, then "
                              "`lamina store repair` or restore a backup")
    return exc


def _checked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn RocksDB's bare read errors into `read_error`s."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except LaminaError:
            raise
        except Exception as exc:
            raise read_error(exc) from None
    return wrapper


def _u64(value: int) -> bytes:
    return _U64.pack(value)


def _prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix` (prefixes end in NUL)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class IdsTaken(PermissionDenied):
    """A write bound to an owner (a tenant) named ids another owner's documents hold: nothing was
    written. `ids` lists them, so that the caller can fail those rows and write the rest."""

    def __init__(self, message: str, ids: Sequence[str]) -> None:
        super().__init__(message)
        self.ids = tuple(ids)


@dataclass
class StoredDoc:
    """A document as the store keeps it; `vectors` maps a vector name to its raw bytes."""

    id: str
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None
    vectors: dict[str, bytes] = field(default_factory=dict)
    iid: int = -1
    seq: int = 0


@dataclass(frozen=True)
class WriteResult:
    """What one batch changed: the sequence number and the internal ids added and removed."""

    seq: int
    added: np.ndarray  # int64 iids of the new versions, in upsert order
    removed: np.ndarray  # int64 iids of replaced or deleted versions
    deleted_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Changes:
    """The net effect of the log after some sequence number."""

    added: np.ndarray  # iids written after `since` and still live
    removed: np.ndarray  # iids replaced or deleted after `since`
    last_seq: int


class Store:
    """One RocksDB database under `path` holding all collections.

    Thread-safe: writes are serialised by a lock (they read the previous version of each
    document to find the iid it replaces); reads go straight to RocksDB.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        cf_opts = {name: store_options() for name in _CFS}
        opts = store_options()
        try:
            if (self.path / "CURRENT").exists():  # an existing store has every column family
                self._check_column_families()
                opts.create_missing_column_families(False)
            elif any(self.path.iterdir()):  # never create a database over another's files
                raise StoreCorrupted(f"the store at {self.path} has files but no CURRENT (which names its "
                                     f"MANIFEST). {_remedy(self.path.parent)}")
            self._db = rocksdict.Rdict(str(self.path), opts, column_families=cf_opts)
        except Exception as exc:  # rocksdict raises bare Exception
            raise open_error(self.path, exc) from None
        self._cf = {name: self._db.get_column_family(name) for name in _CFS}
        self._handle = {name: self._db.get_column_family_handle(name) for name in _CFS}
        self._write_lock = threading.Lock()
        raw = self._db.get(b"seq")
        self._seq = _U64.unpack(raw)[0] if raw else 0
        self._highwater: HighWater | None = None

    def track(self, highwater: HighWater) -> None:
        """Record every synced write's sequence number in `highwater` from now on (`lamina.index.catalog`):
        attach it only once the store has been checked against the old mark, which this overwrites."""
        highwater.open(self._seq)
        self._highwater = highwater

    def _check_column_families(self) -> None:
        """A MANIFEST that lost the column families' records would have them recreated empty (and the
        WAL's records for them skipped) while the counters in "default" survive: refuse it instead."""
        present = set(rocksdict.Rdict.list_cf(str(self.path), store_options()))
        missing = [cf for cf in _CFS if cf not in present]
        if missing:
            raise StoreCorrupted(
                f"the store at {self.path} is damaged: its MANIFEST lacks the column famil"
                f"{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}. {_remedy(self.path.parent)}")

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._db is None:
            return
        self._cf.clear()
        self._handle.clear()
        self._db.flush_wal(True)
        self._db.close()
        self._db = None
        if self._highwater is not None:
            self._highwater.close()

    def sync(self) -> None:
        """Make every write so far durable (the WAL fsynced) and record it as acknowledged: called
        before an index snapshot is published, so that no snapshot ever covers more than the store."""
        with self._write_lock:
            self._db.flush_wal(True)
            if self._highwater is not None:
                self._highwater.note(self._seq)
                self._highwater.sync()

    def checkpoint(self, dest: str | Path) -> int:
        """A consistent copy of the store in `dest` (which must not exist), online: RocksDB's
        checkpoint, hard links to the immutable table files where the file system allows, a copy
        of the live WAL. Returns the sequence number the copy holds."""
        with self._write_lock:  # the copy then holds exactly the writes up to this seq
            seq = self._seq
            rocksdict.Checkpoint(self._db).create_checkpoint(str(dest))
        return seq

    @property
    def last_seq(self) -> int:
        return self._seq

    # ------------------------------------------------------------------ collections
    def create_collection(self, config: CollectionConfig) -> None:
        key = b"collection\x00" + config.name.encode()
        with self._write_lock:
            if self._db.get(key) is not None:
                raise AlreadyExists(f"collection {config.name!r} already exists")
            batch = rocksdict.WriteBatch(raw_mode=True)
            batch.put(key, json.dumps(config.to_dict()).encode())
            batch.put(b"next_iid\x00" + config.name.encode(), _u64(0))
            batch.put(b"count\x00" + config.name.encode(), _u64(0))
            self._db.write(batch, self._write_options(sync=True))

    @_checked
    def get_collection(self, name: str) -> CollectionConfig:
        check_name(name)
        raw = self._db.get(b"collection\x00" + name.encode())
        if raw is None:
            raise NotFound(f"collection {name!r} does not exist")
        return CollectionConfig.from_dict(json.loads(raw))

    def list_collections(self) -> list[CollectionConfig]:
        return [
            CollectionConfig.from_dict(json.loads(value))
            for _, value in self._scan(self._db, b"collection\x00")
        ]

    def drop_collection(self, name: str) -> None:
        self.get_collection(name)  # raises NotFound
        prefix = name.encode() + b"\x00"
        with self._write_lock:
            batch = rocksdict.WriteBatch(raw_mode=True)
            for cf in _CFS:
                batch.delete_range(prefix, _prefix_end(prefix), self._handle[cf])
            for key in (b"collection\x00", b"next_iid\x00", b"count\x00"):
                batch.delete(key + name.encode())
            self._db.write(batch, self._write_options(sync=True))

    @_checked
    def count(self, name: str) -> int:
        raw = self._db.get(b"count\x00" + name.encode())
        if raw is None:
            raise NotFound(f"collection {name!r} does not exist")
        return _U64.unpack(raw)[0]

    # ------------------------------------------------------------------ system records
    # Small records that belong to the service rather than to a collection (API keys, ...),
    # under a reserved prefix of the default column family: no collection name can reach them.
    @staticmethod
    def _system_key(namespace: str, key: str = "") -> bytes:
        if not namespace or "\x00" in namespace or "\x00" in key:
            raise InvalidArgument(f"bad system record name {namespace!r}/{key!r}: non-empty, no NUL")
        return b"system\x00" + namespace.encode() + b"\x00" + key.encode()

    def put_system(self, namespace: str, key: str, value: bytes) -> None:
        """Store (or replace) one system record, synced: it survives a crash once this returns."""
        with self._write_lock:
            self._db.put(self._system_key(namespace, key), value, self._write_options(sync=True))

    @_checked
    def get_system(self, namespace: str, key: str) -> bytes | None:
        return self._db.get(self._system_key(namespace, key))

    def delete_system(self, namespace: str, key: str) -> None:
        with self._write_lock:
            self._db.delete(self._system_key(namespace, key), self._write_options(sync=True))

    def scan_system(self, namespace: str) -> Iterator[tuple[str, bytes]]:
        """Every (key, value) of `namespace`, in key order."""
        prefix = self._system_key(namespace)
        for raw_key, value in self._scan(self._db, prefix):
            yield raw_key[len(prefix):].decode(), value

    # ------------------------------------------------------------------ writes
    @_checked
    def write(
        self,
        collection: str,
        upserts: Sequence[StoredDoc] = (),
        deletes: Sequence[str] = (),
        *,
        sync: bool = False,
        extra: ExtraOps | None = None,
        owner: str | None = None,
    ) -> WriteResult:
        """Apply upserts then deletes as one atomic batch under a new sequence number.

        A document id repeated in `upserts` keeps its last version. `sync=True` fsyncs the
        write-ahead log before returning (the `wait=true` of the API). `extra(added, removed)`,
        given the iids this batch adds and removes, returns more records for the same batch:
        (key, value or None to delete) in the "graph" family, under the collection's prefix.

        `owner` (a tenant) binds the write to that owner, checked on the read of the previous
        versions inside the write lock, so that no other write can come between check and write:
        an upsert of an id whose live version has another tenant (or none) raises `IdsTaken`
        naming every such id, with nothing written; a delete of such an id is skipped, as an
        unknown id is. A batch that then changes nothing writes nothing (`seq` stays the last).
        """
        name = collection.encode()
        prefix = name + b"\x00"
        with self._write_lock:
            if self._db.get(b"collection\x00" + name) is None:
                raise NotFound(f"collection {collection!r} does not exist")
            keys = [prefix + doc.id.encode() for doc in upserts] + [prefix + d.encode() for d in deletes]
            previous = self._cf["docs"].get(keys) if keys else []
            # doc key -> (iid, vector names) of its live version, as this batch proceeds
            live: dict[bytes, tuple[int, list[str]] | None] = {}
            foreign: set[bytes] = set()  # keys whose live version belongs to another owner than `owner`
            for key, raw in zip(keys, previous):
                if key not in live:
                    rec = json.loads(raw) if raw is not None else None
                    live[key] = (rec["iid"], rec.get("vectors", [])) if rec else None
                    if owner is not None and rec is not None and rec["tenant"] != owner:
                        foreign.add(key)
            if foreign:
                taken = [doc.id for doc, key in zip(upserts, keys) if key in foreign]
                if taken:
                    raise IdsTaken(f"{len(taken)} id(s) held by another tenant, e.g. {taken[0][:80]!r}: "
                                   f"not available to tenant {owner!r}", sorted(set(taken)))
                deletes = [d for d, key in zip(deletes, keys[len(upserts):]) if key not in foreign]
                keys = keys[:len(upserts)] + [prefix + d.encode() for d in deletes]
            if owner is not None and not upserts and not any(live[key] is not None for key in keys):
                return WriteResult(self._seq, np.empty(0, np.int64), np.empty(0, np.int64))

            seq = self._seq + 1
            next_iid = _U64.unpack(self._db.get(b"next_iid\x00" + name))[0]
            count = _U64.unpack(self._db.get(b"count\x00" + name))[0]
            batch = rocksdict.WriteBatch(raw_mode=True)
            added: dict[int, None] = {}  # ordered set
            removed: list[int] = []
            deleted_ids: list[str] = []

            def drop_live_version(key: bytes) -> bool:
                version = live[key]
                if version is None:
                    return False
                iid, vector_names = version
                if iid in added:  # written earlier in this batch: it never existed outside it
                    del added[iid]
                else:
                    removed.append(iid)
                batch.delete(prefix + _u64(iid), self._handle["iids"])
                for vname in vector_names:
                    batch.delete(prefix + vname.encode() + b"\x00" + _u64(iid), self._handle["vectors"])
                live[key] = None
                return True

            for doc, key in zip(upserts, keys):
                if not drop_live_version(key):
                    count += 1
                iid = next_iid
                next_iid += 1
                record = {"text": doc.text, "metadata": doc.metadata, "tenant": doc.tenant,
                          "iid": iid, "seq": seq, "vectors": sorted(doc.vectors)}
                batch.put(key, json.dumps(record).encode(), self._handle["docs"])
                batch.put(prefix + _u64(iid), doc.id.encode(), self._handle["iids"])
                for vname, data in doc.vectors.items():
                    batch.put(prefix + vname.encode() + b"\x00" + _u64(iid), data, self._handle["vectors"])
                live[key] = (iid, sorted(doc.vectors))
                added[iid] = None
            for doc_id, key in zip(deletes, keys[len(upserts):]):
                if drop_live_version(key):
                    batch.delete(key, self._handle["docs"])
                    count -= 1
                    deleted_ids.append(doc_id)

            added_arr = np.fromiter(added, dtype=np.int64, count=len(added))
            removed_arr = np.asarray(removed, dtype=np.int64)
            entry = np.concatenate([[len(added_arr)], added_arr, removed_arr]).astype(">i8").tobytes()
            batch.put(prefix + _u64(seq), entry, self._handle["log"])
            for key, value in (extra(added_arr, removed_arr) if extra is not None else ()):
                if value is None:
                    batch.delete(prefix + key, self._handle["graph"])
                else:
                    batch.put(prefix + key, value, self._handle["graph"])
            batch.put(b"next_iid\x00" + name, _u64(next_iid))
            batch.put(b"count\x00" + name, _u64(count))
            batch.put(b"seq", _u64(seq))
            self._db.write(batch, self._write_options(sync))
            self._seq = seq
            if sync and self._highwater is not None:
                self._highwater.note(seq)
        return WriteResult(seq, added_arr, removed_arr, tuple(deleted_ids))

    # ------------------------------------------------------------------ reads
    @_checked
    def get_documents(
        self, collection: str, ids: Sequence[str], *, vectors: Sequence[str] = ()
    ) -> list[StoredDoc | None]:
        prefix = collection.encode() + b"\x00"
        raws = self._cf["docs"].get([prefix + i.encode() for i in ids]) if ids else []
        out: list[StoredDoc | None] = []
        for doc_id, raw in zip(ids, raws):
            if raw is None:
                out.append(None)
                continue
            rec = json.loads(raw)
            doc = StoredDoc(doc_id, rec["text"], rec["metadata"], rec["tenant"], {}, rec["iid"], rec["seq"])
            for vname in vectors:
                data = self._cf["vectors"].get(prefix + vname.encode() + b"\x00" + _u64(doc.iid))
                if data is not None:
                    doc.vectors[vname] = data
            out.append(doc)
        return out

    @_checked
    def doc_ids(self, collection: str, iids: np.ndarray) -> list[str | None]:
        """Map internal ids to document ids (None for an iid that is no longer live)."""
        prefix = collection.encode() + b"\x00"
        raws = self._cf["iids"].get([prefix + _u64(int(i)) for i in iids]) if len(iids) else []
        return [None if raw is None else raw.decode() for raw in raws]

    def iter_documents(self, collection: str) -> Iterator[StoredDoc]:
        """Every live document of `collection` (without vectors), in document-id order."""
        prefix = collection.encode() + b"\x00"
        for key, raw in self._scan(self._cf["docs"], prefix):
            rec = json.loads(raw)
            yield StoredDoc(key[len(prefix):].decode(), rec["text"], rec["metadata"], rec["tenant"], {},
                            rec["iid"], rec["seq"])

    def iter_vectors(
        self, collection: str, vector_name: str, *, batch_size: int = 65536
    ) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """Yield (iids, raw vectors) of every live version, in iid order, in batches."""
        prefix = collection.encode() + b"\x00" + vector_name.encode() + b"\x00"
        iids: list[bytes] = []
        values: list[bytes] = []
        for key, value in self._scan(self._cf["vectors"], prefix):
            iids.append(key[-8:])
            values.append(value)
            if len(values) == batch_size:
                yield np.frombuffer(b"".join(iids), dtype=">i8").astype(np.int64), values
                iids, values = [], []
        if values:
            yield np.frombuffer(b"".join(iids), dtype=">i8").astype(np.int64), values

    @_checked
    def get_vectors(self, collection: str, vector_name: str, iids: np.ndarray) -> list[bytes | None]:
        prefix = collection.encode() + b"\x00" + vector_name.encode() + b"\x00"
        return self._cf["vectors"].get([prefix + _u64(int(i)) for i in iids]) if len(iids) else []

    def changes_since(self, collection: str, seq: int) -> Changes:
        """Net additions and removals logged for `collection` after sequence number `seq`."""
        prefix = collection.encode() + b"\x00"
        added: list[np.ndarray] = []
        removed: list[np.ndarray] = []
        last = seq
        for key, value in self._scan(self._cf["log"], prefix, start=prefix + _u64(seq + 1)):
            entry = np.frombuffer(value, dtype=">i8").astype(np.int64)
            n_added = int(entry[0])
            added.append(entry[1 : 1 + n_added])
            removed.append(entry[1 + n_added :])
            last = _U64.unpack(key[-8:])[0]
        removed_all = np.concatenate(removed) if removed else np.empty(0, np.int64)
        added_all = np.concatenate(added) if added else np.empty(0, np.int64)
        added_all = added_all[~np.isin(added_all, removed_all)]
        return Changes(added_all, removed_all, last)

    def iter_graph(self, collection: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the collection's "graph" records (keys without the collection prefix)."""
        start = collection.encode() + b"\x00"
        for key, value in self._scan(self._cf["graph"], start + prefix):
            yield key[len(start):], value

    def trim_log(self, collection: str, upto_seq: int) -> None:
        """Forget log entries at or below `upto_seq` (every index snapshot covers them)."""
        prefix = collection.encode() + b"\x00"
        batch = rocksdict.WriteBatch(raw_mode=True)
        batch.delete_range(prefix, prefix + _u64(upto_seq + 1), self._handle["log"])
        self._db.write(batch, self._write_options(sync=False))

    # ------------------------------------------------------------------ helpers
    def raw_db(self) -> Any:
        """The rocksdict handle (for `lamina.index.store_check`)."""
        return self._db

    @staticmethod
    def _write_options(sync: bool) -> rocksdict.WriteOptions:
        opts = rocksdict.WriteOptions()
        opts.sync = sync
        return opts

    @staticmethod
    def _scan(cf: Any, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        it = cf.iter()
        it.seek(start or prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                return
            yield key, it.value()
            it.next()
        try:  # an iterator stops at a damaged block without a word: its status says why
            it.status()
        except Exception as exc:
            raise read_error(exc) from None


def store_options() -> rocksdict.Options:
    """How the store is opened: a torn WAL tail (a write no reply acknowledged) is dropped, a damaged
    record anywhere else refuses the open (kTolerateCorruptedTailRecords; RocksDB's default,
    point-in-time recovery, silently drops everything after the first bad record), and paranoid
    checks verify the files as they are opened. Measured in tests/index/test_store_damage.py:
    kAbsoluteConsistency refuses a torn tail too, which a machine crash can leave behind."""
    opts = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    opts.set_paranoid_checks(True)
    opts.set_wal_recovery_mode(rocksdict.DBRecoveryMode.tolerate_corrupted_tail_records())
    return opts


def _lock_holders(lock: Path) -> str:
    """Which processes hold `lock` open ("process 1234 (lamina serve --demo)"), from /proc where there is one."""
    import os

    found: list[str] = []
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == str(lock.resolve()) for fd in (entry / "fd").iterdir()):  # like fuser
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
                found.append(f"process {entry.name}" + (f" ({' '.join(command)[:80]})" if command else "")
                             + (", this one" if int(entry.name) == os.getpid() else ""))
        except OSError:  # gone, or not ours to read
            continue
    return " and ".join(found) or "another process"


def open_error(path: Path, exc: Exception) -> Exception:
    """A named error for RocksDB's refusal to open `path` (it raises a bare Exception)."""
    text = str(exc)
    if "Corruption" not in text and ("/LOCK" in text or "lock hold" in text):  # not "block checksum"
        return StoreLocked(f"the store at {path} is held by {_lock_holders(path / 'LOCK')} (a running `lamina "
                           f"serve`?): stop it, or talk to it with --target HOST:PORT ({text})")
    if isinstance(exc, StoreCorrupted):
        return exc
    if "corrupt" in text.lower() or "No such file" in text:  # damaged, or a file the MANIFEST names is gone
        return StoreCorrupted(f"the store at {path} is damaged and refuses to open ({text}). {_remedy(path.parent)}")
    return FailedPrecondition(f"cannot open the store at {path}: {text}")


def _remedy(data_dir: Path) -> str:
    return (f"Run `lamina store repair --data-dir {data_dir}` to keep what survives (it reports what was lost "
            f"against the catalog), or `lamina restore BACKUP {data_dir}` from a backup")
