"""`lamina store check` and `lamina store repair`: the store read end to end, and mended.

`check_store_files` reads every key of every column family with block checksums verified, then
checks that the records agree with one another, collection by collection:

    count      the `count` counter equals the live documents
    id maps    every document's iid maps back to it (iids), and every iid names a live document
    vectors    every vector a document lists is stored under its iid, and no vector is orphaned
    next_iid   above every iid in use (a fresh write must never reuse one)

`repair_store` runs RocksDB's repair (it salvages every readable record of every table and log
file into a fresh MANIFEST), then mends what the salvage can leave inconsistent: documents whose
iid map or dense vector was lost are dropped (they cannot be served whole), orphans are deleted,
and the counters are recounted. What it returns says what was dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rocksdict

from lamina.index.graph.graph import PREFIX as GRAPH_PREFIX
from lamina.index.store import CF_NAMES, Store, store_options

_U64 = struct.Struct(">Q")
DENSE = "dense"


@dataclass
class StoreReport:
    keys: dict[str, int] = field(default_factory=dict)  # column family -> keys read
    problems: list[str] = field(default_factory=list)
    collections: dict[str, int] = field(default_factory=dict)  # collection -> live documents
    seq: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_all(cf: Any) -> list[tuple[bytes, bytes]]:
    opts = rocksdict.ReadOptions()
    opts.set_verify_checksums(True)
    opts.fill_cache(False)
    it = cf.iter(opts)
    it.seek_to_first()
    out = []
    while it.valid():
        out.append((it.key(), it.value()))
        it.next()
    it.status()  # raises at a damaged block, where the iterator stopped
    return out


def _split(key: bytes, parts: int) -> list[bytes]:
    return key.split(b"\x00", parts - 1)


def check_store_files(store: Store) -> StoreReport:
    """Read everything with checksums verified; report every inconsistency found."""
    db = store.raw_db()
    report = StoreReport(seq=store.last_seq)
    rows: dict[str, list[tuple[bytes, bytes]]] = {}
    for name in CF_NAMES:
        cf = db if name == "default" else db.get_column_family(name)
        try:
            rows[name] = _read_all(cf)
        except Exception as exc:  # rocksdict raises bare Exception on a checksum failure
            report.problems.append(f"column family {name!r}: {exc}")
            rows[name] = []
        report.keys[name] = len(rows[name])
    meta = {k: v for k, v in rows["default"]}
    names = [k.split(b"\x00", 1)[1].decode() for k in meta if k.startswith(b"collection\x00")]
    docs: dict[str, dict[bytes, dict]] = defaultdict(dict)
    for key, value in rows["docs"]:
        coll, doc_id = _split(key, 2)
        try:
            docs[coll.decode()][doc_id] = json.loads(value)
        except ValueError as exc:
            report.problems.append(f"document {key!r} is unreadable: {exc}")
    iids: dict[str, dict[int, bytes]] = defaultdict(dict)
    for key, value in rows["iids"]:
        iids[key[:-9].decode()][_U64.unpack(key[-8:])[0]] = value
    vectors: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for key, _ in rows["vectors"]:
        coll, vname = _split(key[:-9], 2)
        vectors[coll.decode()].add((vname.decode(), _U64.unpack(key[-8:])[0]))
    for coll in sorted(set(docs) | set(iids) | set(vectors)):
        if coll not in names:
            report.problems.append(f"records of collection {coll!r}, which does not exist")
    for name in sorted(names):
        report.collections[name] = len(docs[name])
        report.problems.extend(_check_collection(name, meta, docs[name], iids[name], vectors[name]))
    return report


def _check_collection(name: str, meta: dict[bytes, bytes], docs: dict[bytes, dict], iids: dict[int, bytes],
                      vectors: set[tuple[str, int]]) -> list[str]:
    out = []
    count = meta.get(b"count\x00" + name.encode())
    next_iid = meta.get(b"next_iid\x00" + name.encode())
    if count is None or next_iid is None:
        return [f"collection {name!r}: its counters are missing"]
    if _U64.unpack(count)[0] != len(docs):
        out.append(f"collection {name!r}: count says {_U64.unpack(count)[0]}, {len(docs)} documents are stored")
    held = {rec["iid"]: doc_id for doc_id, rec in docs.items()}
    for doc_id, rec in docs.items():
        if iids.get(rec["iid"]) != doc_id:
            out.append(f"collection {name!r}: document {doc_id.decode()!r} (iid {rec['iid']}) has no id map")
        for vname in rec.get("vectors", []):
            if (vname, rec["iid"]) not in vectors:
                out.append(f"collection {name!r}: document {doc_id.decode()!r} lacks its {vname!r} vector")
    orphans = [i for i in iids if i not in held]
    if orphans:
        out.append(f"collection {name!r}: {len(orphans)} id map(s) name no live document, e.g. iid {orphans[0]}")
    stray = [v for v in vectors if v[1] not in held]
    if stray:
        out.append(f"collection {name!r}: {len(stray)} vector(s) belong to no live document")
    if held and max(held) >= _U64.unpack(next_iid)[0]:
        out.append(f"collection {name!r}: next_iid {_U64.unpack(next_iid)[0]} is not above iid {max(held)}")
    return out


def store_counts(path: Path) -> dict[str, int] | None:
    """Each collection's `count` counter, read before a repair (None when the store does not open)."""
    try:
        store = Store(path)
    except Exception:
        return None
    try:
        return {c.name: store.count(c.name) for c in store.list_collections()}
    except Exception:
        return None
    finally:
        store.close()


def repair_store(path: Path) -> list[str]:
    """RocksDB repair of the store at `path`, then the records mended to agree; returns what was dropped.

    RocksDB's repair learns a column family from its table files; a write-ahead log names column
    families by number only, which only the MANIFEST maps. When the repair comes back without some
    column family (a MANIFEST lost before any table was written), the logs saved beforehand are
    replayed into a fresh store whose column families get the same numbers (they are created in the
    same order), the repaired records are copied over them, and the fresh store replaces the old one
    (kept beside it as store.damaged)."""
    saved = path.parent / (path.name + ".wal-saved")
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir()
    for wal in path.glob("*.log"):
        shutil.copy2(wal, saved / wal.name)
    rocksdict.Rdict.repair(str(path), store_options())
    # a family RocksDB's repair drops because no table held it (a MANIFEST lost before a flush)
    # is salvaged from the logs; the graph's only when a collection has a graph (its records may
    # live in the WAL only), else it is recreated empty
    missing = set(CF_NAMES) - set(rocksdict.Rdict.list_cf(str(path), store_options()))
    if missing - {"graph"} or (missing and _has_graph_collection(path)):
        _salvage_logs(path, saved)
    shutil.rmtree(saved, ignore_errors=True)
    _create_missing_families(path)  # a family that held no table (e.g. an empty graph) is recreated empty
    store = Store(path)
    try:
        return _mend(store)
    finally:
        store.close()


def _has_graph_collection(path: Path) -> bool:
    """Whether any collection of the (repaired) store at `path` is configured with an entity graph."""
    present = rocksdict.Rdict.list_cf(str(path), store_options())
    db = rocksdict.Rdict(str(path), store_options(),
                         column_families={n: store_options() for n in present if n != "default"})
    try:
        it = db.iter()
        it.seek(b"collection\x00")
        while it.valid() and it.key().startswith(b"collection\x00"):
            try:
                if json.loads(it.value()).get("graph"):
                    return True
            except ValueError:
                pass
            it.next()
        return False
    finally:
        db.close()


def _create_missing_families(path: Path) -> None:
    present = set(rocksdict.Rdict.list_cf(str(path), store_options()))
    missing = [name for name in CF_NAMES if name not in present]
    if missing:
        db = rocksdict.Rdict(str(path), store_options(),
                             column_families={name: store_options() for name in CF_NAMES if name != "default"})
        db.close()


def _salvage_logs(path: Path, saved: Path) -> None:
    replay = path.parent / (path.name + ".replay")
    fresh = path.parent / (path.name + ".salvage")
    for d in (replay, fresh):
        shutil.rmtree(d, ignore_errors=True)
    slots = [f"slot{i}" for i in range(1, len(CF_NAMES))]
    db = rocksdict.Rdict(str(replay), store_options())
    for slot in slots:  # created one by one: numbered 1, 2, ... as the store's own families were
        db.create_column_family(slot, store_options())
    db.close()
    top = max(int(p.stem) for p in replay.iterdir() if p.stem.isdigit())
    for i, wal in enumerate(sorted(saved.glob("*.log"), key=lambda p: int(p.stem))):
        shutil.copy2(wal, replay / f"{top + 1 + i:06d}.log")  # replayed, in order, at the next open
    opts = store_options()
    opts.create_missing_column_families(True)
    salvage = store_options()  # a salvage keeps every record that reads back whole, past a damaged one
    salvage.set_wal_recovery_mode(rocksdict.DBRecoveryMode.skip_any_corrupted_record())
    replayed = rocksdict.Rdict(str(replay), salvage, column_families={n: store_options() for n in slots})
    present = rocksdict.Rdict.list_cf(str(path), opts)
    repaired = rocksdict.Rdict(str(path), opts, column_families={n: store_options() for n in present if n != "default"})
    target = Store(fresh)
    try:
        sources = [(repaired if n == "default" else repaired.get_column_family(n), n) for n in present if n in CF_NAMES]
        sources += [(replayed, "default")] + [(replayed.get_column_family(n), None) for n in slots]
        for src, name in sources:  # the tables' records first, the newer log's over them (deletes: see _mend)
            rows = _read_all(src)
            name = name or _family_of(rows)
            if name is None:
                continue
            dst = target.raw_db() if name == "default" else target.raw_db().get_column_family(name)
            for key, value in rows:
                dst[key] = value
    finally:
        target.close()
        replayed.close()
        repaired.close()
    shutil.rmtree(replay, ignore_errors=True)
    damaged = path.parent / (path.name + ".damaged")
    shutil.rmtree(damaged, ignore_errors=True)
    os.replace(path, damaged)
    os.replace(fresh, path)


def _family_of(rows: list[tuple[bytes, bytes]]) -> str | None:
    """Which of the store's column families replayed records belong to, told by their shape.

    The graph's records are told by their keys, `<collection>\0g\0...` (`index.graph.PREFIX`):
    no other family's key has that shape (a document id holds no NUL, vector names are fixed
    words, and an iid or seq whose first bytes read "g\0" would be above 7e18). Their values
    look like any other (JSON entities, packed vectors), so they are told first."""
    if not rows:
        return None
    if all(key.partition(b"\x00")[2].startswith(GRAPH_PREFIX) for key, _ in rows[:64]):
        return "graph"
    sample = [v for _, v in rows[:64]]

    def every(test: Any) -> bool:
        try:
            return all(test(v) for v in sample)
        except (ValueError, UnicodeDecodeError, TypeError, KeyError):
            return False

    if every(lambda v: "iid" in json.loads(v)):
        return "docs"
    if every(lambda v: b"\x00" not in v and bool(v.decode())):
        return "iids"
    if every(lambda v: len(v) % 8 == 0 and 0 <= _U64.unpack(v[:8])[0] < len(v) // 8):
        return "log"
    return "vectors"


def _removed_iids(log_rows: list[tuple[bytes, bytes]], prefix: bytes) -> set[int]:
    """Every iid the collection's log says was replaced or deleted (an iid is never reused)."""
    out: set[int] = set()
    for key, value in log_rows:
        if key.startswith(prefix) and len(key) == len(prefix) + 8 and len(value) % 8 == 0:
            entry = struct.unpack(f">{len(value) // 8}q", value)
            out.update(entry[1 + entry[0]:])
    return out


def _mend(store: Store) -> list[str]:
    report = check_store_files(store)
    db = store.raw_db()
    batch = rocksdict.WriteBatch(raw_mode=True)
    handles = {n: db.get_column_family_handle(n) for n in CF_NAMES if n != "default"}
    dropped: list[str] = []
    rows = {n: _read_all(db.get_column_family(n)) for n in ("docs", "iids", "vectors", "log")}
    for name in report.collections:
        prefix = name.encode() + b"\x00"
        removed = _removed_iids(rows["log"], prefix)
        docs = {k[len(prefix):]: json.loads(v) for k, v in rows["docs"] if k.startswith(prefix)}
        iids = {_U64.unpack(k[-8:])[0]: v for k, v in rows["iids"] if k.startswith(prefix)}
        vecs = {(k[len(prefix):-9].decode(), _U64.unpack(k[-8:])[0]) for k, _ in rows["vectors"] if k.startswith(prefix)}
        keep = {}
        for doc_id, rec in docs.items():
            whole = iids.get(rec["iid"]) == doc_id and all((v, rec["iid"]) in vecs for v in rec.get("vectors", []))
            if rec["iid"] in removed:  # a delete whose tombstone the salvage could not carry: iids are never reused
                whole = False
            if whole:
                keep[rec["iid"]] = doc_id
            else:
                batch.delete(prefix + doc_id, handles["docs"])
                if rec["iid"] not in removed:
                    dropped.append(f"{name}/{doc_id.decode()}: incomplete after the salvage")
        for iid in iids:
            if iid not in keep:
                batch.delete(prefix + _U64.pack(iid), handles["iids"])
        for vname, iid in vecs:
            if iid not in keep:
                batch.delete(prefix + vname.encode() + b"\x00" + _U64.pack(iid), handles["vectors"])
        next_iid = _U64.unpack(db.get(b"next_iid\x00" + name.encode()) or _U64.pack(0))[0]
        batch.put(b"next_iid\x00" + name.encode(), _U64.pack(max([next_iid, *[i + 1 for i in keep]])))
        counted = _U64.unpack(db.get(b"count\x00" + name.encode()) or _U64.pack(0))[0]
        if counted > len(keep):  # the last surviving write's counter: what the collection held then
            dropped.append(f"{name}: its counter said {counted} documents, {len(keep)} came back whole: "
                           f"{counted - len(keep)} lost")
        batch.put(b"count\x00" + name.encode(), _U64.pack(len(keep)))
    opts = rocksdict.WriteOptions()
    opts.sync = True
    db.write(batch, opts)
    return dropped
