"""The data model and role Protocols of the RAG layer, shared by every module under `lamina.rag`.

    SourceDocument  what a loader reads from a file: its text, path and page/section marks
    Chunk           a piece of a source document as stored in a collection (one point a chunk)
    Prompt          the system message and the user message as ordered parts; a part that is one
                    retrieved chunk, verbatim, names it, so that a chunk-KV cache can reuse it
    Segment         a prompt part as token ids, the unit a `Prefiller` computes or reuses
    Generation      a generator's answer with its timings

Roles, one Protocol each (Haystack's typed components are the model: inputs and outputs are
declared, and each implementation is small and testable alone):

    TokenCounter    counts tokens in the generator's own tokenizer (context budgets)
    Generator       answers a Prompt, whole or streamed
    Prefiller       turns a prompt's segments into a model's KV cache (full prefill, or reuse)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lamina.index.errors import Unavailable

# metadata fields every chunk carries (payload), besides the user's own
PARENT_FIELD = "parent"
POSITION_FIELD = "position"
START_FIELD = "start"
END_FIELD = "end"
SOURCE_FIELD = "source"
PAGE_FIELD = "page"
SECTION_FIELD = "section"
HASH_FIELD = "content_hash"
CHUNK_FIELDS = (PARENT_FIELD, POSITION_FIELD, START_FIELD, END_FIELD, SOURCE_FIELD, PAGE_FIELD, SECTION_FIELD,
                HASH_FIELD)


class GenerationError(Unavailable):
    """A generator backend failed (endpoint down, timed out, model error): the message names it."""


@dataclass(frozen=True)
class Mark:
    """Where a page or section of a source document starts: `start` is a character offset of its text."""

    start: int
    page: int | None = None
    section: str | None = None


@dataclass
class SourceDocument:
    """One loaded source: its plain text, an id (its path unless given), and page/section marks
    sorted by `start` (a PDF has one per page, Markdown one per heading)."""

    id: str
    text: str
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    marks: list[Mark] = field(default_factory=list)

    def mark_at(self, offset: int) -> Mark | None:
        """The last mark at or before `offset` (None: before any)."""
        found = None
        for mark in self.marks:
            if mark.start > offset:
                break
            found = mark
        return found


@dataclass(frozen=True)
class Chunk:
    """A piece of a source document. `text == source_text[start:end]`; `position` counts the
    chunks of `parent` from 0; `id` is unique in the collection (`<parent>#<position>`)."""

    id: str
    text: str
    parent: str
    position: int
    start: int
    end: int
    source: str | None = None
    page: int | None = None
    section: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_point(self, tenant: str | None = None) -> dict[str, Any]:
        """The collection point of this chunk: its text, and its provenance in the metadata."""
        metadata = dict(self.metadata)
        metadata.update({PARENT_FIELD: self.parent, POSITION_FIELD: self.position, START_FIELD: self.start,
                         END_FIELD: self.end})
        for name, value in ((SOURCE_FIELD, self.source), (PAGE_FIELD, self.page), (SECTION_FIELD, self.section)):
            if value is not None:
                metadata[name] = value
        point: dict[str, Any] = {"id": self.id, "text": self.text, "metadata": metadata}
        if tenant is not None:
            point["tenant"] = tenant
        return point

    @classmethod
    def from_point(cls, doc_id: str, text: str | None, metadata: Mapping[str, Any] | None) -> Chunk:
        """A chunk back from a stored point or a hit; a point written without chunk fields is a
        chunk of its own (parent = its id, offsets over its whole text)."""
        meta = dict(metadata or {})
        text = text or ""
        own = {name: meta.pop(name, None) for name in CHUNK_FIELDS}
        return cls(
            id=doc_id, text=text,
            parent=str(own[PARENT_FIELD]) if own[PARENT_FIELD] is not None else doc_id,
            position=int(own[POSITION_FIELD] or 0),
            start=int(own[START_FIELD] or 0),
            end=int(own[END_FIELD]) if own[END_FIELD] is not None else int(own[START_FIELD] or 0) + len(text),
            source=own[SOURCE_FIELD], page=None if own[PAGE_FIELD] is None else int(own[PAGE_FIELD]),
            section=own[SECTION_FIELD], metadata=meta)


@dataclass(frozen=True)
class PromptPart:
    """A run of the user message. `chunk_id` is set where `text` is one retrieved chunk, verbatim:
    the part a chunk-KV cache may take from its cache instead of computing."""

    text: str
    chunk_id: str | None = None


@dataclass(frozen=True)
class Prompt:
    """What a generator answers: a system message and the user message as ordered parts."""

    parts: tuple[PromptPart, ...]
    system: str | None = None

    @property
    def user(self) -> str:
        return "".join(part.text for part in self.parts)

    def messages(self) -> list[dict[str, str]]:
        """Chat messages (OpenAI's shape), system first when there is one."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        out.append({"role": "user", "content": self.user})
        return out


@dataclass(frozen=True)
class Segment:
    """A prompt run as token ids. `chunk_key` (model id, chunk id, text hash) is set where the
    run is one chunk's text: a `Prefiller` may reuse its cached keys and values."""

    token_ids: Sequence[int]
    chunk_key: tuple[str, str, str] | None = None


@dataclass
class Generation:
    """A generator's answer. `error` names what failed (the text is then what came before it);
    timings are in milliseconds: `ttft_ms` to the first token, `prefill_ms` for the prompt;
    `stats` carries the generator's own counters (a KV cache's hits, tokens reused, ...)."""

    text: str
    tokens: int = 0
    prompt_tokens: int = 0
    finish_reason: str = "stop"
    ttft_ms: float | None = None
    prefill_ms: float | None = None
    total_ms: float | None = None
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens the way a generator will see them."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The token count of each text (no special tokens), in order."""
        ...


@runtime_checkable
class Generator(Protocol):
    """Answers a prompt. Implementations: a local transformers causal LM, an OpenAI-compatible
    HTTP endpoint, and none (the pipeline then returns the context alone).

    `generate` never raises for a failed backend (down, timed out, out of memory): it returns a
    `Generation` whose `error` says what went wrong, so that the caller still has its context.
    `stream` yields text pieces as they are produced; a backend failure ends the stream with a
    `GenerationError` naming it. A stream may return its `Generation` (timings, a KV cache's counters)
    as the value it stops with; the pipeline reads it and otherwise times the stream itself."""

    name: str

    def generate(self, prompt: Prompt, *, max_new_tokens: int = 256) -> Generation: ...

    def stream(self, prompt: Prompt, *, max_new_tokens: int = 256) -> Iterator[str]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@dataclass
class PrefillResult:
    """A prompt's KV cache after prefill: `past_key_values` (a transformers Cache covering every
    prompt token), `logits` of the last prompt position (vocab,), and counters: `tokens_computed`,
    `tokens_reused`, `hits`, `misses`, `prefill_ms`, ..."""

    past_key_values: Any
    logits: Any
    stats: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Prefiller(Protocol):
    """Computes a causal LM's cache for a prompt given as segments, in order. The plain one runs
    the model over every token; a chunk-KV cache (`lamina.rag.kvcache`) reuses cached chunks."""

    def prefill(self, model: Any, segments: Sequence[Segment]) -> PrefillResult: ...
