"""Operator actions on a SPANN index directory: verify and compact (`lamina index verify|compact`).

`verify_index` never raises on a damaged index: it returns every problem `SpannIndex.verify`
finds (manifest, each file's size and checksum, the list directory against the posting file,
each list's CRC32C, the manifest's counts) with a one-line summary; for a collection's
directory (DATA_DIR/indexes/NAME/spann) it also checks the generation's sequence number against
the store's log (`coverage_problems`). `compact_index` opens the
index, rewrites its posting file as a new generation (deltas merged, tombstones and retired
heads dropped: `SpannIndex.compact`) and closes it; a damaged index fails to open with
CorruptIndex and is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamina.index.errors import CorruptIndex
from lamina.index.snapshot import read_manifest as read_snapshot_manifest
from lamina.index.spann import files
from lamina.index.spann.index import SpannIndex
from lamina.index.store import Store


@dataclass
class VerifyResult:
    """ok: no problem found; summary: one line; problems: one line each."""

    path: Path
    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)


def _posting_bytes(directory: Path, manifest: dict[str, Any]) -> int:
    entry = manifest["files"].get("postings")
    path = directory / entry["name"] if entry else None
    return path.stat().st_size if path is not None and path.exists() else 0


def describe(directory: Path, manifest: dict[str, Any]) -> str:
    """One line on what the manifest says the index holds."""
    counts = manifest["counts"]
    state = "built" if manifest["built"] else "not built (exact buffer)"
    return (f"generation {manifest['generation']}, seq {manifest['seq']}, {state}, dim {manifest['dim']} "
            f"{manifest['metric']} {manifest['dtype']}, {counts['vectors']} vectors, {counts['heads']} heads, "
            f"{counts['entries']} posting entries, posting file {_posting_bytes(directory, manifest) / 2**20:.1f} MiB")


def verify_index(directory: Path | str, *, store: Store | None = None) -> VerifyResult:
    """Check a SPANN index directory; see the module docstring. `store`: the open store of the
    collection's data directory (else it is opened here, and skipped when a server holds it)."""
    directory = Path(directory)
    problems = SpannIndex.verify(directory)
    note = ""
    if not problems:
        problems, note = coverage_problems(directory, store)
    try:
        manifest = files.read_manifest(directory)
        what = describe(directory, manifest)
    except (CorruptIndex, KeyError, TypeError):
        what = "no readable manifest"
    if problems:
        return VerifyResult(directory, False, f"CORRUPT {directory}: {len(problems)} problem(s); {what}", problems)
    return VerifyResult(directory, True, f"OK {directory}: {what}{note}")


def compact_index(directory: Path | str) -> str:
    """Rewrite the index's posting file (see the module docstring); return a one-line summary."""
    directory = Path(directory)
    before = files.read_manifest(directory)
    old_bytes = _posting_bytes(directory, before)
    with SpannIndex.load(directory) as index:
        index.compact()
    after = files.read_manifest(directory)
    return (f"compacted {directory}: generation {before['generation']} -> {after['generation']}, "
            f"posting file {old_bytes / 2**20:.1f} -> {_posting_bytes(directory, after) / 2**20:.1f} MiB, "
            f"{after['counts']['vectors']} vectors, {after['counts']['heads']} heads")


def held_ids(directory: Path, manifest: dict[str, Any]) -> np.ndarray:
    """The ids a generation holds: its live ids, or the exact buffer of an index not built yet."""
    entry = manifest["files"]["ids" if manifest["built"] else "pending_ids"]
    return files.load_npy(directory, entry).astype(np.int64)


def coverage_problems(directory: Path, store: Store | None = None) -> tuple[list[str], str]:
    """Whether the generation's sequence number matches what it holds, for a collection's SPANN
    directory (DATA_DIR/indexes/NAME/spann): no id it holds may be added by the store's log after
    its sequence number, the sequence number may not run ahead of the store, nor fall behind the
    collection's snapshot. A directory outside a data directory is not checked. Returns the
    problems and a note for the summary (what was not checked)."""
    collection_dir = directory.resolve().parent
    store_dir = collection_dir.parent.parent / "store"
    if directory.name != "spann" or collection_dir.parent.name != "indexes" or not store_dir.is_dir():
        return [], ""
    manifest = files.read_manifest(directory)
    seq, name = int(manifest["seq"]), collection_dir.name
    problems = []
    snapshot = read_snapshot_manifest(collection_dir)
    if snapshot is not None and seq < int(snapshot["seq"]):
        problems.append(f"generation {manifest['generation']} covers sequence {seq}, older than the collection's "
                        f"snapshot at {snapshot['seq']} (the next open rebuilds it)")
    own = store is None
    try:
        if own:
            store = Store(store_dir)
    except RuntimeError:  # held by a running server
        return problems, "; sequence number not checked against the store (in use: stop the server)"
    try:
        if seq > store.last_seq:
            problems.append(f"generation {manifest['generation']} claims sequence {seq}, the store is at "
                            f"{store.last_seq}")
        later = store.changes_since(name, seq).added
        twice = np.intersect1d(held_ids(directory, manifest), later)
        if len(twice):
            problems.append(f"generation {manifest['generation']} is stamped with sequence {seq} but holds "
                            f"{len(twice)} id(s) the log adds after it (first {int(twice[0])}): its sequence "
                            "number does not match what it holds")
    finally:
        if own:
            store.close()
    return problems, f"; sequence number consistent with the store's log of {name!r}"
