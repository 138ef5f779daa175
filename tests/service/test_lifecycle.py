"""Server lifecycle: encoders load before health says SERVING, and SIGTERM drains for a while first."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lamina.retrieval.collection import Database
from lamina.retrieval.query import SearchRequest
from lamina.service import convert
from lamina.service.server import serve_database
from lamina.service.v1 import search_pb2_grpc
from tests.conftest import HashingEncoder
from tests.service.test_overload import _wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """serve_database on a known port in a thread (ready only comes once SERVING: the test must not wait for it)."""

    def __init__(self, db: Database, **options) -> None:
        self.port = _free_port()
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve(db, options)), daemon=True)
        self.thread.start()
        assert self._started.wait(10)

    async def _serve(self, db: Database, options) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        await serve_database(db, "127.0.0.1", self.port, stop=self._stop, ready=lambda _: self.ready.set(),
                             grace=1.0, workers=2, **options)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)

    def status(self, channel: grpc.Channel, service: str = "") -> int | None:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                             timeout=2).status
        except grpc.RpcError:
            return None  # not listening yet, or gone


def test_encoders_load_before_health_says_serving(tmp_path):
    gate = threading.Event()
    gate.set()
    loads: list[str] = []

    def loader(name: str) -> HashingEncoder:
        loads.append(name)
        assert gate.wait(20)
        return HashingEncoder(32)

    db = Database(tmp_path / "data", encoder_loader=loader)
    db.create_collection("docs", encoder="slow")
    db.close()
    db = Database(tmp_path / "data", encoder_loader=loader)  # a restart: nothing loaded yet
    loads.clear()
    gate.clear()
    served = Served(db, drain=0.0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
            _wait_for(lambda: served.status(channel) is not None, "the server to answer health checks")
            _wait_for(lambda: loads == ["slow"], "the encoder to start loading")
            assert served.status(channel) == NOT_SERVING
            assert served.status(channel, "lamina.v1.Search") == NOT_SERVING
            assert not served.ready.is_set()
            gate.set()
            _wait_for(lambda: served.status(channel) == SERVING, "SERVING once the encoder is loaded")
            assert served.status(channel, "lamina.v1.Search") == SERVING
            assert served.ready.wait(5)
            assert db.collection("docs")._encoder is not None  # the first search will not load it
    finally:
        gate.set()
        served.stop()
        served.thread.join(15)
        db.close()


def test_sigterm_drains_not_serving_while_still_serving_calls(tmp_path):
    db = Database(tmp_path / "data", encoder_loader=lambda name: HashingEncoder(32))
    coll = db.create_collection("v", dim=4, encoder=None)
    coll.upsert([{"id": "a", "vector": np.ones(4, dtype=np.float32)}], wait=True)
    served = Served(db, drain=1.0)
    try:
        assert served.ready.wait(10)
        request = convert.search_request_to_proto("v", SearchRequest.simple(list(np.ones(4)), 1))
        with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
            assert served.status(channel) == SERVING
            served.stop()  # what SIGTERM does
            _wait_for(lambda: served.status(channel) == NOT_SERVING, "NOT_SERVING at the stop")
            reply = search_pb2_grpc.SearchStub(channel).Search(request, timeout=5)  # a new call, still served
            assert [h.id for h in reply.hits] == ["a"]
            assert served.thread.is_alive()
        served.thread.join(15)
        assert not served.thread.is_alive()
    finally:
        db.close()


@pytest.mark.slow
def test_a_second_signal_cuts_the_drain_short(tmp_path):
    script = textwrap.dedent(f"""
        from lamina.service.server import run
        run({str(tmp_path)!r}, "127.0.0.1", 0, lambda port: print(port, flush=True), grace=1.0, workers=2, drain=120)
        print("stopped", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        int(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the first signal has started the 120 s drain
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.strip() == "stopped", err
