"""The server around the servicers: health, reflection, binding, graceful stop, and `run` under SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lamina.index.errors import NotFound
from lamina.index.snapshot import read_manifest
from lamina.retrieval.collection import Database
from lamina.service.client import Client
from lamina.service.server import build_server
from lamina.service.servicer import SERVICE_NAMES
from lamina.service.status import ServiceError

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_is_serving_for_the_server_and_each_service(client):
    assert SERVICE_NAMES == ["lamina.v1.Collections", "lamina.v1.Points", "lamina.v1.Tenants", "lamina.v1.Search",
                             "lamina.v1.Rag"]
    for service in ("", *SERVICE_NAMES):
        assert client.health(service) == "SERVING"
    with pytest.raises(NotFound, match=r"lamina\.v1\.Nope"):
        client.health("lamina.v1.Nope")


def test_reflection_lists_the_services(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              timeout=10)
        names = {s.name for s in next(responses).list_services_response.service}
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="lamina.v1.Search")]), timeout=10)
        files = next(responses).file_descriptor_response.file_descriptor_proto
    assert names == {*SERVICE_NAMES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert files  # grpcurl can describe the API without the .proto files


def test_graceful_stop_marks_every_service_not_serving_first(start_server):
    server = start_server()
    with grpc.insecure_channel(server.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="lamina.v1.Search"),
                                                          timeout=10)
        assert next(watch).status == SERVING
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        assert next(watch).status == NOT_SERVING  # sent before the server stops taking calls
        watch.cancel()
        stopper.join(15)
    assert not stopper.is_alive()


def test_build_server_binds_a_free_port_and_refuses_a_taken_one(tmp_path, fake_encoder_loader):
    async def scenario(db: Database) -> None:
        first, port = await build_server(db, "127.0.0.1", 0, workers=2)
        assert port > 0
        await first.start()
        try:
            loop = asyncio.get_running_loop()

            def call() -> str:
                with Client(f"127.0.0.1:{port}", timeout=5) as client:
                    return client.health()

            assert await loop.run_in_executor(None, call) == "SERVING"
            with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
                await build_server(db, "127.0.0.1", port, workers=2)
        finally:
            await first.stop(None)

    with Database(tmp_path, encoder_loader=fake_encoder_loader) as db:
        asyncio.run(scenario(db))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_on_a_signal_and_closes_the_database(tmp_path, signum):
    """The CLI path: `run` in its own process, a signal, and every acknowledged write is on disk."""
    script = textwrap.dedent(f"""
        import sys
        from lamina.service.server import run
        run({str(tmp_path)!r}, "127.0.0.1", 0, lambda port: print(port, flush=True), grace=1.0, workers=2)
        print("stopped", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port = int(proc.stdout.readline())
        vectors = np.eye(4, dtype=np.float32)
        with Client(f"127.0.0.1:{port}", timeout=10) as client:
            client.create_collection("c", 4, encoder=None)
            client.upsert("c", [{"id": str(i), "vector": v} for i, v in enumerate(vectors)])
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.strip() == "stopped"
    with Database(tmp_path) as db:
        coll = db.collection("c")
        assert coll.count() == 4 and coll.search(vectors[2], 1)[0].id == "2"
        manifest = read_manifest(tmp_path / "indexes" / "c")
        assert manifest is not None and manifest["seq"] > 0  # the index was snapshotted at close


def test_a_client_without_a_server_gets_unavailable_or_a_timeout(server):
    with Client(server.target, timeout=5) as client:
        client.wait_ready(5)
    dead = f"127.0.0.1:{free_port()}"
    with Client(dead, timeout=2) as client:
        with pytest.raises(TimeoutError, match=dead):
            client.wait_ready(0.2)
        with pytest.raises(ServiceError) as info:
            client.health()
        assert info.value.code is grpc.StatusCode.UNAVAILABLE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
