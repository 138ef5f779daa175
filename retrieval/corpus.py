"""Reading corpora for `lamina build`: a BEIR directory or a JSONL file.

Each record is `{"_id", "title", "text", "metadata"}` (`id` is accepted for `_id`). A line
that is not a JSON object, or lacks an id, is reported with its line number
instead of stopping the whole build; the caller writes the good records and lists the bad.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.index.errors import InvalidArgument


@dataclass(frozen=True)
class CorpusRecord:
    line: int
    point: dict[str, Any] | None  # {"id", "text", "metadata"} ready for Collection.upsert
    error: str | None = None


def corpus_file(path: str | Path) -> Path:
    """The JSONL file of a corpus given as a BEIR directory or as the file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    if not path.is_file():
        raise InvalidArgument(f"corpus {path} does not exist (expected a BEIR directory or a JSONL file)")
    return path


def parse_record(raw: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"expected a JSON object, got {type(obj).__name__}")
    doc_id = obj.get("_id", obj.get("id"))
    if doc_id is None or doc_id == "":
        raise InvalidArgument('missing "_id"')
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str):
        raise InvalidArgument(f'"_id" must be a string, got {type(doc_id).__name__}')
    title, text = obj.get("title") or "", obj.get("text") or ""
    if not isinstance(title, str) or not isinstance(text, str):
        raise InvalidArgument('"title" and "text" must be strings')
    # BEIR joins title and text with a space; a record with neither is still a document
    joined = f"{title} {text}" if title else text
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidArgument(f'"metadata" of {doc_id!r} must be a JSON object')
    return {"id": doc_id, "text": joined, "metadata": metadata}


def read_corpus(path: str | Path) -> Iterator[CorpusRecord]:
    """Yield one CorpusRecord per non-blank line of the corpus, numbered from 1."""
    with open(corpus_file(path), encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield CorpusRecord(number, parse_record(raw))
            except InvalidArgument as exc:
                yield CorpusRecord(number, None, str(exc))


def count_lines(path: str | Path) -> int:
    with open(corpus_file(path), "rb") as fh:
        return sum(1 for line in fh if line.strip())
