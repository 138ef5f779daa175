"""The `Rag` service: Answer streams citations, then the answer's tokens, then timings.

Retrieval runs on the server's RPC executor like a Search; generation runs on a pool of its own
(`GeneratorPool`), bounded to a few threads, so that a long answer never holds a thread a search
needs. Each generator the server offers is loaded once, on first use or at start-up (`preload`),
under a lock. A client names a generator by the name the server offers ("local", "openai",
"none"): it never passes a model path or an endpoint, which stay server configuration.

Tenant rules are Search's: a key bound to a tenant retrieves only its tenant's chunks, whatever
the request says (`principal.scope_tenant`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import grpc
from lamina.index.errors import InvalidArgument
from lamina.rag.assemble import Citation
from lamina.rag.pipeline import CitationsEvent, DoneEvent, Pipeline, RagResult, TokenEvent
from lamina.rag.types import Generator
from lamina.retrieval.collection import Database
from lamina.service import convert
from lamina.service.auth import current_principal
from lamina.service.status import to_status
from lamina.service.v1 import rag_pb2, rag_pb2_grpc
from lamina.service.work import WorkCounters, call_deadline, run_checked

log = logging.getLogger(__name__)

DEFAULT_GENERATORS: dict[str, Any] = {"local": "local", "openai": "openai", "none": None}
DEFAULT_GENERATION_WORKERS = 1  # one CPU-bound model at a time on a small machine
DEFAULT_K = 20


class GeneratorPool:
    """The generators a server offers by name, each loaded once, and the threads that run them."""

    def __init__(self, generators: Mapping[str, Any] | None = None, *, default: str = "local",
                 workers: int = DEFAULT_GENERATION_WORKERS,
                 loader: Callable[[Any], Generator] | None = None, prefiller: Any = None) -> None:
        """`prefiller` (a `lamina.rag.kvcache.ChunkKVCache`) goes to every local generator: answers then
        reuse the KV caches of chunks that earlier answers computed."""
        self.specs = dict(DEFAULT_GENERATORS if generators is None else generators)
        if default not in self.specs:
            raise InvalidArgument(f"default generator {default!r} is not one of {', '.join(self.specs)}")
        self.default = default
        self.executor: Executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lamina-generate")
        self._loader = loader
        self.prefiller = prefiller
        self._loaded: dict[str, Generator | None] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Generator | None:
        """The generator offered as `name` ("" for the default), loaded on first use; None for "none"."""
        name = name or self.default
        if name not in self.specs:
            raise InvalidArgument(f"unknown generator {name!r}; this server offers {', '.join(self.specs)}")
        with self._lock:
            if name not in self._loaded:
                spec = self.specs[name]
                if spec is None or spec == "none":
                    self._loaded[name] = None
                else:
                    generator = self._loader(spec) if self._loader else _load_generator(spec, self.prefiller)
                    load = getattr(generator, "load", None)
                    if callable(load):
                        load()
                    self._loaded[name] = generator
                    log.info("generator %r loaded (%s)", name, getattr(generator, "name", spec))
            return self._loaded[name]

    def preload(self, name: str = "") -> None:
        self.get(name)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _load_generator(spec: Any, prefiller: Any = None) -> Generator:
    from lamina.rag.generators import load_generator

    return load_generator(spec, prefiller=prefiller)


def citation_to_proto(citation: Citation) -> rag_pb2.Citation:
    message = rag_pb2.Citation(number=citation.number, chunk_id=citation.chunk_id, parent=citation.parent,
                               start=citation.start, end=citation.end, score=citation.score)
    for name in ("source", "page", "section"):
        value = getattr(citation, name)
        if value is not None:
            setattr(message, name, value)
    return message


def done_to_proto(result: RagResult) -> rag_pb2.AnswerDone:
    done = rag_pb2.AnswerDone(answer=result.answer, timings=result.timings)
    if result.error is not None:
        done.error = result.error
    if result.stats:
        done.stats.update(_plain(result.stats))
    if result.explain is not None:
        done.explain.update(_plain(result.explain))
    return done


def _plain(value: Any) -> Any:
    """JSON-able values for a Struct: tuples become lists, numpy scalars numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


class RagServicer(rag_pb2_grpc.RagServicer):
    def __init__(self, database: Database, executor: Executor, generators: GeneratorPool) -> None:
        self.database = database
        self.executor = executor
        self.generators = generators
        self.counters = WorkCounters()

    async def Answer(self, request: rag_pb2.AnswerRequest,
                     context: grpc.aio.ServicerContext) -> AsyncIterator[rag_pb2.AnswerResponse]:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        principal = current_principal()
        deadline = call_deadline(context.time_remaining())  # retrieval stops once it passes (lamina.service.work)
        try:
            try:
                pipeline, prepared = await loop.run_in_executor(self.executor, run_checked, self.counters, deadline,
                                                                self._prepare, request, principal)
            except asyncio.CancelledError:
                deadline.cancel()
                raise
            events = pipeline.generation_events(prepared, started)
        except Exception as exc:  # LaminaError -> its code; anything else -> INTERNAL, logged
            await context.abort(*to_status(exc))
        yield rag_pb2.AnswerResponse(
            citations=rag_pb2.AnswerCitations(citations=[citation_to_proto(c) for c in prepared.assembled.citations],
                                              context=prepared.assembled.context),
            time=time.perf_counter() - started)
        while True:  # each piece is produced on the generation pool; a cancelled call stops asking
            event = await loop.run_in_executor(self.generators.executor, next, events, None)
            if event is None:
                return
            if isinstance(event, TokenEvent):
                yield rag_pb2.AnswerResponse(token=event.text, time=time.perf_counter() - started)
            elif isinstance(event, DoneEvent):
                yield rag_pb2.AnswerResponse(done=done_to_proto(event.result), time=time.perf_counter() - started)

    def _prepare(self, request: rag_pb2.AnswerRequest, principal: Any) -> tuple[Pipeline, Any]:
        search = request.search
        if search.WhichOneof("query") != "text":
            raise InvalidArgument("an answer needs the question as the search's text")
        collection = self.database.collection(search.collection)
        tenant = principal.scope_tenant(search.tenant if search.HasField("tenant") else None)
        message = rag_pb2.AnswerRequest()
        message.CopyFrom(request)
        if not message.search.HasField("k"):
            message.search.k = DEFAULT_K
        search_request = convert.search_request_from_proto(message.search, tenant=tenant)
        generator = self.generators.get(request.generator)
        options: dict[str, Any] = {"generator": generator}
        if request.HasField("context_tokens"):
            options["context_tokens"] = request.context_tokens
        if request.HasField("max_new_tokens"):
            options["max_new_tokens"] = request.max_new_tokens
        pipeline = Pipeline(collection, **options)
        return pipeline, pipeline.prepare(search_request)


def answer_request_to_proto(collection: str, question: str, *, k: int | None = None, mode: str = "hybrid",
                            filter: Any = None, tenant: str | None = None, generator: str = "",
                            context_tokens: int | None = None, max_new_tokens: int | None = None,
                            rerank: Any = None, explain: bool = False, graph: Any = None) -> rag_pb2.AnswerRequest:
    """The AnswerRequest for a question (the Client's and the CLI's shape); `graph` tunes the graph stage
    of a "+graph" mode (a GraphExpansion or its options)."""
    from lamina.retrieval.query import SearchRequest

    request = SearchRequest.simple(question, DEFAULT_K if k is None else k, mode=mode, filter=filter,
                                   tenant=tenant, rerank=rerank, explain=explain, graph=graph)
    message = rag_pb2.AnswerRequest(search=convert.search_request_to_proto(collection, request),
                                    generator=generator)
    if context_tokens is not None:
        message.context_tokens = context_tokens
    if max_new_tokens is not None:
        message.max_new_tokens = max_new_tokens
    return message
