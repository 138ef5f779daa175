"""The RAG query pipeline: retrieve -> postprocess -> assemble -> generate, with timings and citations.

Retrieval itself (stages, fusion, rerank, filter, tenant) is one `SearchRequest`, so the pipeline is
small: four typed roles, each a Protocol with small implementations (LlamaIndex's retriever / node
postprocessor / response synthesizer, Haystack's components):

    retrieve     anything with `query(SearchRequest) -> SearchResult`: an in-process `Collection` or a
                 remote `RemoteCollection` (`Client.collection(name)`), through the same interface
    postprocess  `lamina.rag.postprocess` (dedupe by parent, cutoff, MMR, context budget)
    assemble     `lamina.rag.assemble.PromptBuilder` (order, Jinja2 template, numbered citations)
    generate     a `Generator` (`lamina.rag.generators`: local transformers, OpenAI-compatible, none)

One line: `collection.as_pipeline(generator="local").run("question")`; explicit wiring:
`Pipeline(retriever, generator=..., postprocessors=[...], builder=PromptBuilder(...))`, which
`to_dict()`/`Pipeline.from_dict(data, retriever)` serialise. A generator that fails still returns the
context and citations, with the error named in the result. `events()` yields the citations, then
the answer's text pieces, then the whole result (the Answer RPC's stream); `stream()` the pieces only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lamina.index.errors import InvalidArgument, LaminaError
from lamina.index.types import Document
from lamina.rag.assemble import Assembled, Citation, PromptBuilder
from lamina.rag.postprocess import (
    Candidate,
    ContextBudget,
    DedupeByParent,
    Postprocessor,
    postprocessor_from_dict,
)
from lamina.rag.tokens import cached_counter, default_counter
from lamina.rag.types import Chunk, Generation, Generator, TokenCounter
from lamina.retrieval.query import SearchRequest, SearchResult

MAX_QUESTION_CHARS = 8_192
DEFAULT_SEARCH: dict[str, Any] = {"mode": "hybrid", "k": 20}
SEARCH_OPTIONS = ("mode", "k", "fusion", "rerank", "params", "filter", "tenant", "graph")


@runtime_checkable
class Retriever(Protocol):
    """Runs a SearchRequest (Collection, RemoteCollection); `get` fetches points, with their dense
    vectors when a postprocessor needs them (MMR)."""

    def query(self, request: SearchRequest) -> SearchResult: ...

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Document | None]: ...


@dataclass
class RagResult:
    """What a pipeline run returns. `answer` is empty when no generator ran or it failed (`error`
    names why); `context` is the assembled user message; `timings` are milliseconds per stage;
    `stats` the generator's counters (a chunk-KV cache's hits, tokens reused, ...)."""

    question: str
    answer: str
    citations: list[Citation]
    context: str
    chunks: list[Chunk]
    timings: dict[str, float]
    error: str | None = None
    generation: Generation | None = None
    explain: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"question": self.question, "answer": self.answer, "error": self.error,
               "citations": [c.to_dict() for c in self.citations], "context": self.context,
               "timings": self.timings, "stats": self.stats}
        if self.explain is not None:
            out["explain"] = self.explain
        return out


@dataclass(frozen=True)
class CitationsEvent:
    citations: list[Citation]
    context: str


@dataclass(frozen=True)
class TokenEvent:
    text: str


@dataclass(frozen=True)
class DoneEvent:
    result: RagResult


RagEvent = CitationsEvent | TokenEvent | DoneEvent


@dataclass
class Prepared:
    """A run up to its prompt: what `generation_events` and the Answer RPC continue from."""

    question: str
    assembled: Assembled
    timings: dict[str, float]
    explain: dict[str, Any]
    searched_ids: list[str] = field(default_factory=list)  # the search's hits, best first, before postprocessing


class Pipeline:
    """A RAG pipeline over one retriever. `search` holds the SearchRequest options every run starts
    from (mode, k, fusion, rerank, params, filter, tenant, graph); a run may override filter, tenant and k.

    The graph stage: mode "hybrid+graph" (or "graph") expands the first stages' hits over the
    collection's entity graph by personalised PageRank before postprocessing; `graph` tunes it with a
    `GraphExpansion` or its options ({"limit": 50, "damping": 0.6, ...})."""

    def __init__(self, retriever: Retriever, *, generator: Generator | str | Mapping[str, Any] | None = None,
                 postprocessors: Sequence[Postprocessor] | None = None, builder: PromptBuilder | None = None,
                 search: Mapping[str, Any] | None = None, max_new_tokens: int = 256,
                 context_tokens: int = 1024, counter: TokenCounter | None = None) -> None:
        if generator == "none":
            generator = None
        if isinstance(generator, (str, Mapping)):
            from lamina.rag.generators import load_generator  # transformers loads only when a generator needs it

            generator = load_generator(generator)
        self.retriever = retriever
        self.generator: Generator | None = None if generator is None or generator.name == "none" else generator
        self.builder = builder or PromptBuilder()
        unknown = set(search or {}) - set(SEARCH_OPTIONS)
        if unknown:
            raise InvalidArgument(f"unknown search option(s) {', '.join(sorted(unknown))}; "
                                  f"expected {', '.join(SEARCH_OPTIONS)}")
        self.search = {**DEFAULT_SEARCH, **(search or {})}
        SearchRequest.simple("probe", **self.search)  # a bad option fails here, at construction
        if postprocessors is None:
            postprocessors = [DedupeByParent(), ContextBudget(context_tokens)]
        if any(isinstance(p, ContextBudget) and p.counter is None for p in postprocessors):
            # budgets count the generator's tokens; with no generator, the dense encoder's WordPiece
            counter = cached_counter(counter or self.generator or default_counter())
            postprocessors = [p.with_counter(counter) if isinstance(p, ContextBudget) else p for p in postprocessors]
        self.counter = counter
        self.postprocessors = list(postprocessors)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InvalidArgument(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        self.max_new_tokens = max_new_tokens

    # ------------------------------------------------------------------ stages
    def request(self, question: str, *, filter: Any = None, tenant: str | None = None, k: int | None = None,
                explain: bool = False) -> SearchRequest:
        """The SearchRequest a run sends: the pipeline's search options, overridden by the run's."""
        options = dict(self.search)
        for name, value in (("filter", filter), ("tenant", tenant), ("k", k)):
            if value is not None:
                options[name] = value
        return SearchRequest.simple(question, explain=explain, **options)

    def retrieve(self, request: SearchRequest) -> tuple[list[Candidate], SearchResult]:
        result = self.retriever.query(request)
        candidates = [Candidate(Chunk.from_point(h.id, h.text, h.metadata), h.score) for h in result.hits]
        if any(getattr(p, "needs_vectors", False) for p in self.postprocessors):
            candidates = self._with_vectors(candidates)
        return candidates, result

    def _with_vectors(self, candidates: list[Candidate]) -> list[Candidate]:
        docs = self.retriever.get([c.chunk.id for c in candidates], with_vectors=True)
        return [Candidate(c.chunk, c.score, None if d is None else d.vector) for c, d in zip(candidates, docs)]

    def postprocess(self, candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[dict[str, Any]]]:
        steps = []
        current = list(candidates)
        for step in self.postprocessors:
            before = len(current)
            current = step.process(current)
            steps.append({"kind": step.kind, "in": before, "out": len(current)})
        return current, steps

    def prepare(self, question: str | SearchRequest, *, filter: Any = None, tenant: str | None = None,
                k: int | None = None, explain: bool = False) -> Prepared:
        """Retrieve, postprocess and assemble: everything before generation. `question` is a text, or a
        whole SearchRequest whose text query is the question (the run's options then do not apply)."""
        if isinstance(question, SearchRequest):
            request = question
            question = check_question(request.query)
        else:
            question = check_question(question)
            request = self.request(question, filter=filter, tenant=tenant, k=k, explain=explain)
        explain = request.explain
        started = time.perf_counter()
        candidates, searched = self.retrieve(request)
        retrieved = time.perf_counter()
        kept, steps = self.postprocess(candidates)
        processed = time.perf_counter()
        assembled = self.builder.build(question, kept)
        done = time.perf_counter()
        timings = {"retrieve_ms": _ms(started, retrieved), "postprocess_ms": _ms(retrieved, processed),
                   "assemble_ms": _ms(processed, done)}
        plan: dict[str, Any] = {}
        if explain:
            plan = {"retrieve": searched.explain, "postprocess": steps,
                    "assemble": {"order": self.builder.order, "chunks": [c.chunk.id for c in assembled.candidates]},
                    "generate": {"generator": self.generator.name if self.generator else "none",
                                 "max_new_tokens": self.max_new_tokens}}
        return Prepared(question, assembled, timings, plan, [c.chunk.id for c in candidates])

    # ------------------------------------------------------------------ runs
    def run(self, question: str | SearchRequest, *, filter: Any = None, tenant: str | None = None, k: int | None = None,
            explain: bool = False) -> RagResult:
        """Answer `question`: the result carries the answer, citations, context and timings."""
        started = time.perf_counter()
        prepared = self.prepare(question, filter=filter, tenant=tenant, k=k, explain=explain)
        generation = self._generate(prepared)
        return self._result(prepared, generation, started)

    def events(self, question: str | SearchRequest, *, filter: Any = None, tenant: str | None = None,
               k: int | None = None, explain: bool = False) -> Iterator[RagEvent]:
        """The run as a stream: CitationsEvent, then a TokenEvent per text piece, then DoneEvent."""
        started = time.perf_counter()
        prepared = self.prepare(question, filter=filter, tenant=tenant, k=k, explain=explain)
        yield CitationsEvent(prepared.assembled.citations, prepared.assembled.context)
        yield from self.generation_events(prepared, started)

    def generation_events(self, prepared: Prepared, started: float | None = None) -> Iterator[RagEvent]:
        """A TokenEvent per piece of the answer to a prepared run, then its DoneEvent. A generator
        that fails mid-stream ends it with the error named in the result."""
        started = time.perf_counter() if started is None else started
        pieces: list[str] = []
        began = time.perf_counter()
        first: float | None = None
        error = None
        generation: Generation | None = None
        if self.generator is not None:
            stream = self.generator.stream(prepared.assembled.prompt, max_new_tokens=self.max_new_tokens)
            try:
                while True:
                    piece = next(stream)
                    first = first or time.perf_counter()
                    pieces.append(piece)
                    yield TokenEvent(piece)
            except StopIteration as stop:  # a generator may return its Generation (timings, stats)
                generation = stop.value
            except LaminaError as exc:
                error = str(exc)
        if generation is None or error is not None:
            end = time.perf_counter()
            generation = Generation("".join(pieces), tokens=len(pieces), error=error,
                                    ttft_ms=None if first is None else _ms(began, first), total_ms=_ms(began, end))
        yield DoneEvent(self._result(prepared, generation, started))

    def stream(self, question: str, **options: Any) -> Iterator[str]:
        """The answer's text pieces as they are generated."""
        for event in self.events(question, **options):
            if isinstance(event, TokenEvent):
                yield event.text

    def _generate(self, prepared: Prepared) -> Generation:
        if self.generator is None:
            return Generation("")
        return self.generator.generate(prepared.assembled.prompt, max_new_tokens=self.max_new_tokens)

    def _result(self, prepared: Prepared, generation: Generation, started: float) -> RagResult:
        timings = dict(prepared.timings)
        if self.generator is not None:
            timings["generate_ms"] = generation.total_ms if generation.total_ms is not None else 0.0
            if generation.ttft_ms is not None:
                timings["ttft_ms"] = generation.ttft_ms
            if generation.prefill_ms is not None:
                timings["prefill_ms"] = generation.prefill_ms
        timings["total_ms"] = _ms(started, time.perf_counter())
        assembled = prepared.assembled
        return RagResult(prepared.question, generation.text, assembled.citations, assembled.context,
                         [c.chunk for c in assembled.candidates], timings, generation.error, generation,
                         prepared.explain or None, dict(generation.stats))

    # ------------------------------------------------------------------ corpus-level questions
    def facet(self, field: str, **options: Any) -> dict[str, Any]:
        """An exact corpus-level answer, not a retrieval: value counts of a keyword field, or min, max and a
        histogram of a numeric one, under the pipeline's filter and tenant unless `options` name their
        own (`lamina.rag.tools.facet_tool`; a bad argument comes back as {"error": ...})."""
        from lamina.rag.tools import facet_tool

        for name in ("filter", "tenant"):
            if options.get(name) is None and self.search.get(name) is not None:
                options[name] = self.search[name]
        return facet_tool(self.retriever, field, **options)

    # ------------------------------------------------------------------ ingestion and wiring
    def index(self, sources: Any, **options: Any) -> Any:
        """Ingest files or SourceDocuments into the retriever's collection (`lamina.rag.ingest.ingest`)."""
        from lamina.rag.ingest import ingest

        return ingest(self.retriever, sources, **options)

    def to_dict(self) -> dict[str, Any]:
        """The wiring as plain data (the retriever is not serialised: `from_dict` is given one)."""
        search = dict(self.search)
        for name in ("filter", "graph"):
            if search.get(name) is not None and hasattr(search[name], "to_dict"):
                search[name] = search[name].to_dict()
        return {"search": search, "postprocessors": [p.to_dict() for p in self.postprocessors],
                "builder": self.builder.to_dict(),
                "generator": "none" if self.generator is None else _generator_dict(self.generator),
                "max_new_tokens": self.max_new_tokens}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], retriever: Retriever, generator: Generator | None = None,
                  counter: TokenCounter | None = None) -> Pipeline:
        """The pipeline `to_dict` described, over `retriever` (`generator` replaces the described one)."""
        return cls(retriever, generator=generator or data.get("generator"), counter=counter,
                   postprocessors=[postprocessor_from_dict(p) for p in data.get("postprocessors", [])],
                   builder=PromptBuilder.from_dict(data.get("builder", {})), search=data.get("search"),
                   max_new_tokens=int(data.get("max_new_tokens", 256)))


def check_question(question: Any) -> str:
    if not isinstance(question, str):
        raise InvalidArgument(f"the question must be a text, got {type(question).__name__}")
    if not question.strip():
        raise InvalidArgument("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidArgument(f"the question has {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}")
    return question.replace("\x00", "")


def _generator_dict(generator: Generator) -> dict[str, Any] | str:
    to_dict = getattr(generator, "to_dict", None)
    return to_dict() if callable(to_dict) else generator.name


def _ms(start: float, end: float) -> float:
    return round(1e3 * (end - start), 3)


def as_pipeline(retriever: Retriever, **options: Any) -> Pipeline:
    """`collection.as_pipeline(generator=...)`: a Pipeline over a collection, options as Pipeline's."""
    return Pipeline(retriever, **options)


__all__ = ["CitationsEvent", "DoneEvent", "Pipeline", "Prepared", "RagEvent", "RagResult", "Retriever", "TokenEvent",
           "as_pipeline", "check_question"]
