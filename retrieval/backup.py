"""Backup and restore of a data directory: a consistent copy taken online, without stopping writes.

A backup directory has the layout of a data directory plus `backup.json`:

    store/              a RocksDB checkpoint (hard links to the table files where the file system
                        allows, a copy of the WAL) holding exactly the writes up to `seq`
    indexes/<name>/     each collection's index snapshot (and SPANN files), copied *before* the
                        checkpoint, so each covers a sequence number <= `seq`
    catalog.json        the backup's own catalog, at `seq`
    backup.json         {"format", "seq", "collections", "created"}

While the index files are copied and the checkpoint is taken, the database takes no new index
snapshot (a snapshot trims the store's log, which a copied older snapshot still needs to replay):
writes go on, snapshots wait until the backup ends. The database's lock (create, drop, open) is
held only to pin the set of collections and, after the copies, to settle what changed meanwhile
and take the checkpoint (`_settle`); the copies run outside it, so collections are created and
dropped during a backup. Each collection's files are copied under its read lock (a copy of its
own files), the checkpoint under the store's write lock (RocksDB links its files: milliseconds). A restored directory opens like a crashed one: each collection
loads its copied snapshot and replays the checkpoint's log after it, so it answers exactly as the
original did at `seq`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from lamina.index.catalog import Catalog
from lamina.index.errors import AlreadyExists, InvalidArgument
from lamina.index.snapshot import fsync_path, write_atomic

BACKUP_MANIFEST = "backup.json"
FORMAT = 1


def backup_database(db: Any, dest: str | Path) -> dict[str, Any]:
    """Write a consistent backup of the open `Database` `db` into `dest` (new or empty); returns its manifest."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise AlreadyExists(f"backup destination {dest} exists and is not empty")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "indexes").mkdir(parents=True)
    with db._lock:  # short: pin the collections and pause their snapshots
        names = sorted(c.name for c in db.store.list_collections())
        pinned = {name: db._collections.get(name) for name in names}
        paused = [coll for coll in pinned.values() if coll is not None]
    try:
        for coll in paused:
            coll.pause_snapshots(True)
        torn = set()
        for name in names:  # the long part, outside the database's lock: create and drop go on
            try:
                _copy_index_files(db, name, tmp / "indexes" / name)
            except OSError:  # dropped under the copy: settled below
                torn.add(name)
        with db._lock:  # short: settle what changed meanwhile, then the checkpoint
            names = _settle(db, tmp / "indexes", pinned, paused, torn)
            seq = db.store.checkpoint(tmp / "store")
    finally:
        for coll in paused:
            coll.pause_snapshots(False)
    Catalog(seq, names).write(tmp)
    manifest = {"format": FORMAT, "seq": seq, "collections": names,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_atomic(tmp / BACKUP_MANIFEST, json.dumps(manifest, indent=1).encode())
    _fsync_tree(tmp)
    if dest.exists():
        dest.rmdir()
    os.replace(tmp, dest)
    fsync_path(dest.parent)
    return manifest


def _settle(db: Any, indexes: Path, pinned: dict[str, Any], paused: list[Any], torn: set[str]) -> list[str]:
    """Under the database's lock, after the copies: the collections the checkpoint will hold.

    A copy stays valid while its collection is the same object as at the pin (open and paused,
    or not open: nothing but an open writes an unopened collection's files). A collection
    dropped meanwhile loses its copy; one created, recreated or opened meanwhile (or whose copy
    failed, `torn`, its files removed under it by a drop) is paused and
    copied again now, under this lock, so that every copied snapshot covers at most the
    checkpoint's seq. That is the rare case; the common one copies nothing here."""
    names = sorted(c.name for c in db.store.list_collections())
    for name in set(pinned) - set(names):
        shutil.rmtree(indexes / name, ignore_errors=True)
    for name in names:
        coll = db._collections.get(name)
        if name in pinned and coll is pinned[name] and name not in torn:
            continue
        if coll is not None:
            coll.pause_snapshots(True)
            paused.append(coll)
        shutil.rmtree(indexes / name, ignore_errors=True)
        _copy_index_files(db, name, indexes / name)
    return names


def _copy_index_files(db: Any, name: str, dest: Path) -> None:
    src = db._index_dir(name)
    coll = db._collections.get(name)
    if not src.is_dir():
        return
    if coll is None:  # not open: nothing writes its files
        shutil.copytree(src, dest)
        return
    with coll._lock.read():  # no write (nor a SPANN file change) meanwhile
        shutil.copytree(src, dest)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        fsync_path(path)
    fsync_path(root)


def read_backup(backup: str | Path) -> dict[str, Any]:
    path = Path(backup) / BACKUP_MANIFEST
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidArgument(f"{backup} is not a Lamina backup: it has no {BACKUP_MANIFEST}") from None
    except ValueError as exc:
        raise InvalidArgument(f"backup manifest {path} is unreadable: {exc}") from None


def restore_backup(backup: str | Path, data_dir: str | Path) -> dict[str, Any]:
    """Copy `backup` into `data_dir` (new or empty) and open its store once, checked against the
    backup's catalog; returns the backup's manifest. Each collection loads its snapshot and replays
    the log when it is first opened."""
    from lamina.retrieval.collection import Database

    backup, data_dir = Path(backup), Path(data_dir)
    manifest = read_backup(backup)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise AlreadyExists(f"restore target {data_dir} exists and is not empty: restore into a new directory")
    tmp = data_dir.with_name(data_dir.name + ".restoring")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(backup, tmp, ignore=shutil.ignore_patterns(BACKUP_MANIFEST))
    _fsync_tree(tmp)
    if data_dir.exists():
        data_dir.rmdir()
    os.replace(tmp, data_dir)
    fsync_path(data_dir.parent)
    with Database(data_dir) as db:  # the catalog check; collections open (and replay) when first used
        if db.store.last_seq != manifest["seq"]:
            raise InvalidArgument(f"backup {backup} says seq {manifest['seq']}, its store holds {db.store.last_seq}")
    return manifest
