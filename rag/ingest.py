"""Ingest: files and documents to chunks in a collection, idempotent by content hash.

    report = ingest(collection, ["docs/", "notes.md", SourceDocument(...)])

`collection` is an in-process `Collection` or a remote one (`Client(...).collection(name)`):
the same calls (`get`, `upsert(..., delete=)`) go either way.

Each document's chunks are the points `<id>#0 .. <id>#n-1`, and every chunk carries the
document's content hash (of its text, metadata, source, marks and the chunker's settings) and
its chunk count n. Chunk 0 is the per-document record: one `get` of `<id>#0` per document says
whether it is stored, unchanged (same hash: skipped, not even chunked) or changed, and which
chunk ids it has. A changed document's new chunks, and the deletes of its old chunks past the
new count, go in one `upsert(..., delete=...)`: one atomic store write, so a reader or a crash
sees the old chunks or the new ones, never a mix. A document given with no text deletes its
stored chunks.

Failures are per file (`IngestError` in the report; a `LoadError` from `lamina.rag.loaders`,
an id too long, a write a tenant may not make) and the rest is ingested. Files met walking a
directory are those with a known suffix, hidden ones left out; a file named explicitly with an
unknown suffix is an error.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lamina.index.errors import InvalidArgument, LaminaError
from lamina.index.types import DEFAULT_ENCODER, check_doc_id
from lamina.rag.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP, Chunker, make_chunker
from lamina.rag.loaders import SUFFIXES, EmptyDocument, LoadError, load
from lamina.rag.types import HASH_FIELD, Chunk, SourceDocument
from lamina.retrieval.collection import MAX_BATCH

CHUNK_COUNT_FIELD = "chunks"  # how many chunks the document had when this one was written
BATCH_CHUNKS = 1024  # chunks gathered before a write (each document stays whole in one write)
CHARS_PER_CHUNK = 1000

Source = str | Path | SourceDocument
Progress = Callable[[int, int, str], None]  # (documents done, documents in all, the last one's id)


@dataclass(frozen=True)
class IngestError:
    """One file or document that was not ingested: which, the error class, and why."""

    source: str
    error: str
    message: str


@dataclass
class IngestReport:
    """What one `ingest` call did. Documents: `added` (new), `updated` (changed, chunks
    replaced), `unchanged` (same content hash: skipped), `deleted` (given with no text: their
    chunks removed). `skipped_files`: files of unknown type met walking a directory."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    skipped_files: int = 0
    errors: list[IngestError] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=lambda: {"load": 0.0, "chunk": 0.0, "write": 0.0})

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def documents(self) -> int:
        return self.added + self.updated + self.unchanged + self.deleted

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = [asdict(e) for e in self.errors]
        return out


def default_chunker(collection: Any, kind: str = "token", *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                    overlap: int = DEFAULT_OVERLAP) -> Chunker:
    """A chunker counting in the collection's dense encoder's tokenizer: the encoder's own when it
    is a local model directory, all-MiniLM-L6-v2's otherwise (the default encoder, or a remote
    collection whose model directory is not on this machine)."""
    name = getattr(getattr(collection, "config", None), "encoder", None)
    tokenizer = None
    if name and name != DEFAULT_ENCODER and Path(name).expanduser().is_dir():
        tokenizer = Path(name).expanduser()
    return make_chunker(kind, chunk_tokens=chunk_tokens, overlap=overlap if kind == "token" else 0,
                        tokenizer=tokenizer)


def content_hash(doc: SourceDocument, chunker_name: str) -> str:
    """sha256 of what decides a document's chunks: text, metadata, source, marks and chunker."""
    marks = [[m.start, m.page, m.section] for m in doc.marks]
    blob = json.dumps([doc.text, doc.metadata, doc.source, marks, chunker_name], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def expand_sources(sources: Iterable[Source] | Source) -> tuple[list[Path | SourceDocument], int]:
    """Files and documents in order: directories walked recursively (sorted, known suffixes,
    no hidden files). Returns them and how many files a walk left out for their suffix."""
    if isinstance(sources, (str, Path, SourceDocument)):
        sources = [sources]
    items: list[Path | SourceDocument] = []
    skipped = 0
    for source in sources:
        if isinstance(source, SourceDocument):
            items.append(source)
            continue
        path = Path(source)
        if not path.is_dir():
            items.append(path)
            continue
        for found in sorted(path.rglob("*")):
            if not found.is_file() or any(part.startswith(".") for part in found.relative_to(path).parts):
                continue
            if found.suffix.lower() in SUFFIXES:
                items.append(found)
            else:
                skipped += 1
    return items, skipped


class _Target:
    """The collection calls ingest makes, passing `tenant` where the collection takes one (an
    in-process Collection; a remote one's tenant is its API key's)."""

    def __init__(self, collection: Any, tenant: str | None, wait: bool) -> None:
        self.collection, self.tenant, self.wait = collection, tenant, wait
        takes = inspect.signature(collection.upsert).parameters
        if "delete" not in takes:
            raise InvalidArgument(f"{collection!r} cannot delete in an upsert: ingest needs upsert(..., delete=)")
        self._scoped = {"tenant": tenant} if tenant is not None and "tenant" in takes else {}

    def first_chunks(self, doc_ids: Sequence[str]) -> list[Any]:
        return self.collection.get([f"{d}#0" for d in doc_ids], **self._scoped)

    def write(self, points: list[dict[str, Any]], deletes: list[str]) -> list[Any]:
        return self.collection.upsert(points, wait=self.wait, delete=deletes, **self._scoped)


@dataclass
class _Pending:
    """One document's planned write."""

    doc_id: str
    label: str
    points: list[dict[str, Any]]
    deletes: list[str]
    kind: str  # "added" | "updated" | "deleted"


def ingest(collection: Any, sources: Iterable[Source] | Source, *, chunker: Chunker | None = None,
           tenant: str | None = None, wait: bool = True, progress: Progress | None = None,
           batch_chunks: int = BATCH_CHUNKS) -> IngestReport:
    """Load, chunk and write `sources` (paths of files or directories, or SourceDocuments) into
    `collection`; see the module docstring. `chunker` defaults to 256-token windows with a
    32-token overlap in the dense encoder's tokenizer (`default_chunker`). `wait`: each write is
    synced before the next. `progress(done, total, doc_id)` is called after each document."""
    began = time.perf_counter()
    chunker = chunker if chunker is not None else default_chunker(collection)
    target = _Target(collection, tenant, wait)
    items, skipped = expand_sources(sources)
    report = IngestReport(skipped_files=skipped)
    seen: set[str] = set()
    group: list[tuple[SourceDocument, str]] = []
    group_chars = done = 0

    def flush() -> None:
        nonlocal done
        _write_group(target, chunker, group, tenant, report)
        for _, label in group:
            done += 1
            if progress is not None:
                progress(done, len(items), label)
        group.clear()

    for item in items:
        label = item.id if isinstance(item, SourceDocument) else item.as_posix()
        started = time.perf_counter()
        try:
            doc = item if isinstance(item, SourceDocument) else load(item)
            check_doc_id(f"{doc.id}#{MAX_BATCH}")  # the longest chunk id it could need
            if doc.id in seen:
                raise InvalidArgument(f"document id {doc.id!r} is given twice in one ingest")
            seen.add(doc.id)
        except LaminaError as exc:
            report.errors.append(IngestError(label, type(exc).__name__, str(exc)))
            done += 1
            if progress is not None:
                progress(done, len(items), label)
            continue
        finally:
            report.timings["load"] += time.perf_counter() - started
        group.append((doc, label))
        group_chars += len(doc.text)
        # text size bounds the chunks to come (a 256-token chunk is ~1,000 characters of prose)
        if group_chars >= batch_chunks * CHARS_PER_CHUNK or len(group) >= batch_chunks:
            flush()
            group_chars = 0
    if group:
        flush()
    report.seconds = time.perf_counter() - began
    return report


def _plan(doc: SourceDocument, label: str, digest: str, stored: Any, chunker: Chunker, tenant: str | None,
          report: IngestReport) -> _Pending | None:
    """What to write for one document, or None when there is nothing to write."""
    meta = dict(stored.metadata or {}) if stored is not None else {}
    if stored is not None and meta.get(HASH_FIELD) == digest:
        report.unchanged += 1
        return None
    old_count = int(meta.get(CHUNK_COUNT_FIELD, 1)) if stored is not None else 0
    started = time.perf_counter()
    chunks = chunker.chunk(doc)
    report.timings["chunk"] += time.perf_counter() - started
    if not chunks and stored is None:
        raise EmptyDocument(label, "has no text")
    if len(chunks) + max(old_count - len(chunks), 0) > MAX_BATCH:
        raise InvalidArgument(f"{label}: {len(chunks)} chunks exceed the {MAX_BATCH} of one atomic write "
                              "(use larger chunks or split the document)")
    points = [_point(c, digest, len(chunks), tenant) for c in chunks]
    deletes = [f"{doc.id}#{i}" for i in range(len(chunks), old_count)]
    kind = "added" if stored is None else ("deleted" if not chunks else "updated")
    return _Pending(doc.id, label, points, deletes, kind)


def _point(chunk: Chunk, digest: str, count: int, tenant: str | None) -> dict[str, Any]:
    point = chunk.to_point(tenant)
    point["metadata"][HASH_FIELD] = digest
    point["metadata"][CHUNK_COUNT_FIELD] = count
    return point


def _write_group(target: _Target, chunker: Chunker, group: list[tuple[SourceDocument, str]], tenant: str | None,
                 report: IngestReport) -> None:
    """Plan every document of `group`, then write the plans in batches of whole documents."""
    started = time.perf_counter()
    stored = target.first_chunks([doc.id for doc, _ in group])
    report.timings["write"] += time.perf_counter() - started
    plans: list[_Pending] = []
    for (doc, label), record in zip(group, stored):
        try:
            plan = _plan(doc, label, content_hash(doc, chunker.name), record, chunker, tenant, report)
        except LaminaError as exc:
            report.errors.append(IngestError(label, type(exc).__name__, str(exc)))
            continue
        if plan is not None:
            plans.append(plan)
    batch: list[_Pending] = []
    size = 0
    for plan in plans:
        n = len(plan.points) + len(plan.deletes)
        if batch and size + n > MAX_BATCH:
            _write_batch(target, batch, report)
            batch, size = [], 0
        batch.append(plan)
        size += n
    if batch:
        _write_batch(target, batch, report)


def _write_batch(target: _Target, batch: list[_Pending], report: IngestReport) -> None:
    """One upsert for whole documents: their chunks and their gone chunks' deletes, atomically."""
    points = [p for plan in batch for p in plan.points]
    deletes = [d for plan in batch for d in plan.deletes]
    started = time.perf_counter()
    try:
        results = target.write(points, deletes)
    except LaminaError as exc:  # the whole write was refused: nothing of it was written
        for plan in batch:
            report.errors.append(IngestError(plan.label, type(exc).__name__, str(exc)))
        return
    finally:
        report.timings["write"] += time.perf_counter() - started
    failed: dict[str, str] = {}
    for result in results:
        if not result.ok:
            failed.setdefault(str(result.id).rpartition("#")[0], f"chunk {result.id!r}: {result.error}")
    for plan in batch:
        if plan.doc_id in failed:
            report.errors.append(IngestError(plan.label, "InvalidArgument", failed[plan.doc_id]))
            continue
        setattr(report, plan.kind, getattr(report, plan.kind) + 1)
        report.chunks_written += len(plan.points)
        report.chunks_deleted += len(plan.deletes)
