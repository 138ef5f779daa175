"""The Rag service over a real server: the Answer stream, its errors, and generation on its own pool."""

from __future__ import annotations

import threading

import pytest
from lamina.index.errors import InvalidArgument, NotFound
from lamina.rag.pipeline import MAX_QUESTION_CHARS, CitationsEvent, DoneEvent, TokenEvent
from lamina.rag.types import Generation
from lamina.service.client import Client
from lamina.service.rag import GeneratorPool

from tests.rag.conftest import PASSAGES, DownGenerator, EchoGenerator


class BlockingGenerator(EchoGenerator):
    """Streams one piece, then waits for `release`: a generation that holds its thread."""

    name = "blocking"

    def __init__(self) -> None:
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()

    def stream(self, prompt, *, max_new_tokens=256):
        yield "held"
        self.started.set()
        self.release.wait(30)
        yield " released"
        return Generation("held released", tokens=2)


@pytest.fixture
def rag_server(start_server, database):
    collection = database.create_collection("docs", encoder="hashing")
    collection.upsert([{"id": key, "text": text} for key, text in PASSAGES.items()], wait=True)
    loaded: list[str] = []
    blocking = BlockingGenerator()
    made = {"echo": EchoGenerator, "down": DownGenerator, "blocking": lambda: blocking}

    def loader(spec):
        loaded.append(spec)
        return made[spec]()

    pool = GeneratorPool({name: name for name in made} | {"none": None}, default="echo", loader=loader)
    server = start_server(generators=pool)
    with Client(server.target, timeout=30) as client:
        yield client, loaded, blocking, collection


def test_answer_streams_citations_then_tokens_then_the_result(rag_server):
    client, loaded, _, collection = rag_server
    events = list(client.answer_events("docs", "wing lift stall", k=3, mode="dense"))
    assert isinstance(events[0], CitationsEvent) and isinstance(events[-1], DoneEvent)
    tokens = [e.text for e in events[1:-1]]
    assert tokens and all(isinstance(e, TokenEvent) for e in events[1:-1])
    result = events[-1].result
    hits = collection.search("wing lift stall", k=3)
    assert [c.chunk_id for c in events[0].citations] == [h.id for h in hits]
    assert result.answer == "".join(tokens) == hits[0].text
    assert PASSAGES[hits[0].id] in events[0].context
    assert {"retrieve_ms", "generate_ms", "total_ms"} <= set(result.timings)
    assert result.stats == {"kv_hits": 0}
    client.answer("docs", "heat", mode="dense")
    assert loaded == ["echo"]  # loaded once, on first use


def test_a_down_generator_still_answers_with_the_context(rag_server):
    client = rag_server[0]
    result = client.answer("docs", "shock pressure", generator="down", mode="dense", k=2)
    assert "closed the stream" in result.error and len(result.citations) == 2 and "shock" in result.context
    none = client.answer("docs", "shock pressure", generator="none", mode="dense", k=2)
    assert none.answer == "" and none.error is None and len(none.citations) == 2


def test_bad_answer_requests(rag_server):
    client = rag_server[0]
    with pytest.raises(InvalidArgument, match=f"limit is {MAX_QUESTION_CHARS:,}"):
        client.answer("docs", "x" * (MAX_QUESTION_CHARS + 1), mode="dense")
    with pytest.raises(InvalidArgument, match="unknown generator 'gpt-9'; this server offers echo"):
        client.answer("docs", "wing", generator="gpt-9", mode="dense")
    with pytest.raises(NotFound):
        client.answer("nope", "wing", mode="dense")
    with pytest.raises(InvalidArgument, match="question is empty"):
        client.answer("docs", "   ", mode="dense")


def test_generation_never_blocks_searches(rag_server):
    client, _, blocking, _ = rag_server
    stream = client.answer_events("docs", "wing", generator="blocking", mode="dense")
    assert isinstance(next(stream), CitationsEvent) and next(stream).text == "held"
    assert blocking.started.wait(10)  # the generation pool's only thread is now held
    assert client.search("docs", "wing", k=2)  # a search still runs on the RPC threads
    blocking.release.set()
    assert [e.text for e in stream if isinstance(e, TokenEvent)] == [" released"]


def test_answers_reuse_chunk_kv_caches_and_report_them(start_server, database, tiny_llama):
    from lamina.rag.kvcache import ChunkKVCache, Recompute

    collection = database.create_collection("kv", encoder="hashing")
    collection.upsert([{"id": key, "text": text} for key, text in PASSAGES.items()], wait=True)
    cache = ChunkKVCache(memory_bytes=64 << 20, recompute=Recompute(policy="full"))
    pool = GeneratorPool({"local": f"local:{tiny_llama}"}, default="local", prefiller=cache)
    server = start_server(generators=pool)
    with Client(server.target, timeout=60) as client:
        first = client.answer("kv", "wing lift", k=2, mode="dense", max_new_tokens=4)
        again = client.answer("kv", "wing lift", k=2, mode="dense", max_new_tokens=4)
    assert first.error is None and first.stats["misses"] == 2 and first.stats["hits"] == 0
    assert again.stats["hits"] == 2 and again.stats["misses"] == 0
    assert again.answer == first.answer  # full recompute over the reused caches: the same greedy answer


def test_an_answer_request_carries_the_graph_stage_options():
    from lamina.service.rag import answer_request_to_proto

    message = answer_request_to_proto("kg", "Zeta Run director", mode="hybrid+graph", graph={"limit": 7, "damping": 0.6})
    assert message.search.HasField("graph") and message.search.graph.limit == 7
    assert message.search.graph.damping == pytest.approx(0.6)
    assert not answer_request_to_proto("kg", "Zeta Run director", mode="hybrid").search.HasField("graph")
