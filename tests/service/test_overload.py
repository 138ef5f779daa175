"""Overload: abandoned calls stop, writes that encode do not starve searches, bounds on per-request work.

Nothing here asserts on wall time: a blocking fake encoder holds a worker exactly as long as the test
wants, and the counters of `lamina.service.work` (and spies on the index) say what work ran.
"""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from lamina.retrieval.collection import Database
from lamina.retrieval.query import SearchRequest
from lamina.service import convert
from lamina.service.v1 import common_pb2, points_pb2, points_pb2_grpc, search_pb2_grpc
from lamina.service.work import WorkCounters, WritePool
from tests.conftest import HashingEncoder
from tests.service.conftest import ServerThread

DIM = 32


class GatedEncoder(HashingEncoder):
    """Encodes like HashingEncoder once `gate` is open; counts the calls that reached it."""

    def __init__(self) -> None:
        super().__init__(DIM)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = 0
        self._lock = threading.Lock()

    def _wait(self, texts):
        with self._lock:
            self.entered += 1
        assert self.gate.wait(20), "the test never opened the gate"
        return self._encode(texts)

    encode_queries = _wait
    encode_documents = _wait


@pytest.fixture
def gated():
    return GatedEncoder()


@pytest.fixture
def db(tmp_path, gated):
    plain = HashingEncoder(DIM)
    database = Database(tmp_path / "data", encoder_loader=lambda name: gated if name == "gated" else plain)
    yield database
    database.close()


def _fill(database: Database, name: str, encoder: str, n: int = 64):
    coll = database.create_collection(name, dim=DIM, encoder=encoder)
    rng = np.random.default_rng(0)
    coll.upsert([{"id": f"d{i}", "vector": rng.standard_normal(DIM).astype(np.float32)} for i in range(n)], wait=True)
    return coll


def _spy_searches(coll) -> list[int]:
    """Count the dense index's searches from now on."""
    calls: list[int] = []
    dense = coll.indexes.dense
    original = dense.search

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    dense.search = spy
    return calls


def _search(collection: str, query) -> object:
    return convert.search_request_to_proto(collection, SearchRequest.simple(query, 5))


def _wait_for(predicate, what: str, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_searches_abandoned_at_their_deadline_stop_and_free_the_worker(db, gated):
    coll = _fill(db, "docs", "gated")
    searches = _spy_searches(coll)
    counters = WorkCounters()
    server = ServerThread(db, workers=1, counters=counters).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = search_pb2_grpc.SearchStub(channel)
            gated.gate.clear()
            before = gated.entered  # the server's start-up warm-up encoded once
            futures = [stub.Search.future(_search("docs", "wing lift"), timeout=0.05) for _ in range(6)]
            codes = [f.exception().code() if f.exception() else grpc.StatusCode.OK for f in futures]
            assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 6
            _wait_for(lambda: gated.entered >= before + 1, "the first search to reach the encoder")
            _wait_for(lambda: counters.received == 6, "the server to receive every search")
            time.sleep(0.1)  # a search that reached the server late has a 50 ms deadline from then: let it pass
            gated.gate.set()  # the search holding the only worker may go on: it must stop, not search
            vector = list(np.ones(DIM, dtype=np.float32))
            reply = stub.Search(_search("docs", vector), timeout=10)
            assert len(reply.hits) == 5
        _wait_for(lambda: counters.done >= 1, "the normal search to be counted")
        assert gated.entered == before + 1, "a search abandoned while queued still encoded its query"
        assert len(searches) == 1, "an abandoned search still searched the index"
        work = counters.to_dict()
        assert work["received"] == 7 and work["done"] == 1 and work["stopped"] == 1, work
    finally:
        server.stop()


def _upsert(collection: str, n: int, text: str = "wing lift") -> points_pb2.UpsertPointsRequest:
    return points_pb2.UpsertPointsRequest(
        collection=collection, points=[common_pb2.Point(id=f"{collection}-{i}", text=text) for i in range(n)])


def test_a_search_is_admitted_while_the_write_encoding_pool_is_saturated(db, gated):
    _fill(db, "texts", "gated")
    db.create_collection("vecs", dim=DIM, encoder=None).upsert(
        [{"id": "v", "vector": np.ones(DIM, dtype=np.float32)}], wait=True)
    pool = WritePool(workers=1, queue=1)
    server = ServerThread(db, workers=1, write_pool=pool).start()
    try:
        with grpc.insecure_channel(server.target) as channel:
            points = points_pb2_grpc.PointsStub(channel)
            gated.gate.clear()
            before = gated.entered
            running = points.Upsert.future(_upsert("texts", 3), timeout=30)
            _wait_for(lambda: gated.entered == before + 1, "the first write to reach the encoder")
            queued = points.Upsert.future(_upsert("texts", 2), timeout=30)
            _wait_for(lambda: pool._slots._value == 0, "the second write to queue")
            with pytest.raises(grpc.RpcError) as refused:
                points.Upsert(_upsert("texts", 1), timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "write encoding pool is full" in refused.value.details()
            # the only RPC thread is free: a search on another collection is served while writes wait
            reply = search_pb2_grpc.SearchStub(channel).Search(_search("vecs", list(np.ones(DIM))), timeout=5)
            assert [h.id for h in reply.hits] == ["v"]
            gated.gate.set()
            assert not any(r.HasField("error") for r in [*running.result().results, *queued.result().results])
        assert db.collection("texts").count() == 64 + 3  # the queued write rewrote texts-0 and texts-1
    finally:
        server.stop()
        pool.shutdown()
