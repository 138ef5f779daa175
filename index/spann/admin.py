"""Operator actions on a SPANN index directory: verify and compact (`lamina index verify|compact`).

`verify_index` never raises on a damaged index: it returns every problem `SpannIndex.verify`
finds (manifest, each file's size and checksum, the list directory against the posting file,
each list's crc32, the manifest's counts) with a one-line summary. `compact_index` opens the
index, rewrites its posting file as a new generation (deltas merged, tombstones and retired
heads dropped: `SpannIndex.compact`) and closes it; a damaged index fails to open with
CorruptIndex and is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina.index.errors import CorruptIndex
from lamina.index.spann import files
from lamina.index.spann.index import SpannIndex


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


def verify_index(directory: Path | str) -> VerifyResult:
    """Check a SPANN index directory; see the module docstring."""
    directory = Path(directory)
    problems = SpannIndex.verify(directory)
    try:
        manifest = files.read_manifest(directory)
        what = describe(directory, manifest)
    except (CorruptIndex, KeyError, TypeError):
        what = "no readable manifest"
    if problems:
        return VerifyResult(directory, False, f"CORRUPT {directory}: {len(problems)} problem(s); {what}", problems)
    return VerifyResult(directory, True, f"OK {directory}: {what}")


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
