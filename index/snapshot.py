"""Crash-safe index snapshots: a directory of files plus a manifest, swapped in atomically.

    root/CURRENT          JSON manifest: {"dir": "snap-<seq>", "seq", "files": {name: sha256}, ...}
    root/snap-<seq>/...   the index's files

A snapshot is written into a fresh `snap-<seq>.tmp` directory, every file fsynced, the
directory renamed, then CURRENT replaced by write-to-temporary, fsync, rename. A crash at any
point leaves CURRENT naming the previous complete snapshot; leftovers are removed on the next
write. Readers verify each file's checksum against the manifest before trusting it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamina.index.errors import CorruptIndex

MANIFEST = "CURRENT"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_snapshot(
    root: Path, seq: int, write_files: Callable[[Path], None], meta: dict[str, Any] | None = None
) -> Path:
    """Write a new snapshot covering store sequence `seq` and make it current.

    `write_files(directory)` writes the index's files into `directory`; this function fsyncs
    them, checksums them into the manifest and publishes the snapshot.
    """
    root.mkdir(parents=True, exist_ok=True)
    name = f"snap-{seq:020d}"
    tmp = root / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_files(tmp)
    files = {}
    for path in sorted(tmp.rglob("*")):  # components may keep their files in subdirectories
        fsync_path(path)
        if path.is_file():
            files[path.relative_to(tmp).as_posix()] = sha256_file(path)
    fsync_path(tmp)
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    manifest = {"dir": name, "seq": seq, "files": files, **(meta or {})}
    write_atomic(root / MANIFEST, json.dumps(manifest, indent=1).encode())
    for stale in root.iterdir():  # older snapshots and interrupted writes
        if stale.name not in (name, MANIFEST) and stale.name.startswith("snap-"):
            shutil.rmtree(stale, ignore_errors=True)
    return final


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The current manifest, or None when no snapshot was ever published."""
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_bytes())
        manifest["dir"], manifest["seq"], manifest["files"]  # noqa: B018 - required keys
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptIndex(f"snapshot manifest {path} is unreadable: {exc}") from None
    return manifest


def verify_snapshot(root: Path, manifest: dict[str, Any]) -> Path:
    """Check every file of the snapshot against its checksum; return the snapshot directory."""
    directory = root / manifest["dir"]
    for fname, expected in manifest["files"].items():
        path = directory / fname
        if not path.exists():
            raise CorruptIndex(f"snapshot file {path} is missing")
        if sha256_file(path) != expected:
            raise CorruptIndex(f"snapshot file {path} fails its checksum")
    return directory
