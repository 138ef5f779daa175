"""One SPANN index directory: generation-numbered files and the manifest that names them.

    spann.json                 manifest (JSON): format, version, generation, the store sequence
                               number it covers, dim, metric, config, counts, and for each file
                               its name, size and (all but the posting file) crc32
    postings-<gen>.bin         the posting file (postings.py; its lists carry their own CRC32C)
    lists-<gen>.npy            list directory (H, 4) int64: offset, length, count, CRC32C
    heads-<gen>.npy            head vectors (H, d) float32
    head_ids-<gen>.npy         vector id of each head (H,) int64, -1 once that vector is deleted
    head_index-<gen>.faiss     faiss IndexIDMap (Flat or HNSW) over the heads
    ids-<gen>.npy              live vector ids, sorted (N,) int64
    scale-<gen>.npy            per-dimension scale (d,) float32 of int8 postings
    pending_ids-<gen>.npy, pending_vectors-<gen>.npy   vectors of an index not built yet

Every file of a generation gets a new name and is fsynced (the posting file through a temporary
name); only then is the manifest replaced, atomically (`lamina.index.snapshot.write_atomic`:
temporary, fsync, rename, fsync the directory). A crash at any point leaves the manifest naming
the previous complete generation; files no manifest names are removed on the next write. This
is lamina.index.snapshot's scheme inside one directory, so that a large posting file is never
copied to publish a new generation of the small files around it.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from lamina.index.errors import CorruptIndex
from lamina.index.snapshot import fsync_path, write_atomic

MANIFEST = "spann.json"
FORMAT = "lamina-spann"
VERSION = 2  # 2: each posting list's checksum is a CRC32C (1: zlib crc32), checked on every read
_OWNED = re.compile(r"^(postings|lists|heads|head_ids|head_index|ids|scale|pending_ids|pending_vectors)"
                    r"-\d{6}\.(bin|npy|faiss)(\.tmp)?$")


def generation_name(kind: str, generation: int) -> str:
    suffix = {"postings": ".bin", "head_index": ".faiss"}.get(kind, ".npy")
    return f"{kind}-{generation:06d}{suffix}"


def crc32_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def describe(path: Path, *, checksum: bool = True) -> dict[str, Any]:
    """The manifest entry of a written file: name, size and crc32."""
    entry: dict[str, Any] = {"name": path.name, "bytes": path.stat().st_size}
    if checksum:
        entry["crc32"] = crc32_file(path)
    return entry


def write_npy(path: Path, array: np.ndarray) -> dict[str, Any]:
    """Save `array` to `path` (exactly that name), fsync it, return its manifest entry."""
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    return describe(path)


def synced(path: Path) -> dict[str, Any]:
    """fsync a file written by someone else (faiss) and return its manifest entry."""
    fsync_path(path)
    return describe(path)


def publish(directory: Path, manifest: dict[str, Any]) -> None:
    """Make `manifest` current (atomically), then remove files it does not name."""
    fsync_path(directory)
    write_atomic(directory / MANIFEST, json.dumps(manifest, indent=1).encode())
    remove_unlisted(directory, manifest)


def remove_unlisted(directory: Path, manifest: dict[str, Any] | None) -> None:
    """Delete our files that `manifest` does not name: older generations, interrupted writes."""
    keep = {entry["name"] for entry in (manifest or {}).get("files", {}).values()}
    for path in directory.iterdir():
        if _OWNED.match(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The current manifest of a SPANN directory; CorruptIndex when missing or unreadable."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise CorruptIndex(f"no SPANN index in {directory}: manifest {MANIFEST} is missing")
    try:
        manifest = json.loads(path.read_bytes())
        for key in ("generation", "seq", "dim", "metric", "dtype", "config", "built", "files", "counts"):
            manifest[key]  # noqa: B018 - required keys
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptIndex(f"SPANN manifest {path} is unreadable: {exc!r}") from None
    if manifest.get("format") == FORMAT and manifest.get("version") == 1:
        raise CorruptIndex(f"{path} is a {FORMAT} v1 index (a zlib crc32 per posting list; v{VERSION} checks a "
                           "CRC32C on every read): rebuild it (a collection rebuilds it from its store at open; "
                           "an index of `lamina build` is rebuilt by running it again)")
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CorruptIndex(f"{path} is not a {FORMAT} v{VERSION} manifest "
                           f"(format {manifest.get('format')!r}, version {manifest.get('version')!r})")
    return manifest


def read_generation(directory: Path) -> int:
    """Generation of the directory's current manifest, 0 when it has none (or an unreadable one)."""
    try:
        return int(read_manifest(directory)["generation"])
    except CorruptIndex:
        return 0


def check_file(directory: Path, entry: dict[str, Any]) -> str | None:
    """What is wrong with one manifest entry's file, or None."""
    path = Path(directory) / entry["name"]
    if not path.exists():
        return f"{path} is missing"
    size = path.stat().st_size
    if size != entry["bytes"]:
        return f"{path} has {size} bytes, the manifest says {entry['bytes']} (truncated or overwritten)"
    if "crc32" in entry and crc32_file(path) != entry["crc32"]:
        return f"{path} fails its checksum"
    return None


def load_npy(directory: Path, entry: dict[str, Any]) -> np.ndarray:
    """Load a checked .npy file of the manifest; CorruptIndex when it is missing or damaged."""
    problem = check_file(directory, entry)
    if problem:
        raise CorruptIndex(problem)
    try:
        return np.load(Path(directory) / entry["name"], allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CorruptIndex(f"{Path(directory) / entry['name']} is unreadable: {exc}") from None
