"""The HTTP/JSON API (`lamina serve --http PORT`): a gateway in front of the gRPC server of the same process.

    POST /v1/{Service}/{Method}   body: the request in protobuf's JSON mapping (`lamina.service.gateway`)
    GET  /openapi.json            the OpenAPI 3.1 document of every method, generated from the descriptors
    GET  /metrics                 Prometheus text format (`lamina.service.metrics`)
    GET  /healthz                 200 "SERVING" while the gRPC server serves
    GET  /                        the web console (`service/console/`), and /bench/{name}.png its plots

Why a gateway, not a second implementation: every call is made on the gRPC server over a local
channel, with the caller's `Authorization: Bearer` (or `x-api-key`) header forwarded as metadata.
API keys, access rules, tenant scoping, validation and status codes are therefore exactly gRPC's,
by construction; the only code here is JSON <-> protobuf and status -> HTTP code. The cost is one
loopback hop per call (a protobuf encode and decode, and a thread hop: measured beside gRPC by
`lamina bench transport`, figures in bench/RESULTS.md).

A server-streaming method (Rag/Answer) answers newline-delimited JSON (`application/x-ndjson`),
one response message per line. The first message is awaited before the HTTP status is sent, so
a call refused up front (no key, no right, bad request) gets its HTTP code like a unary call; an
error after the stream has begun arrives as a last line `{"error": {...}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from lamina.index.errors import InvalidArgument
from lamina.service import gateway
from lamina.service.openapi import openapi_document

log = logging.getLogger(__name__)

FORWARDED_HEADERS = ("authorization", "x-api-key")
GATEWAY_THREADS = 64  # HTTP calls in flight at once (each thread waits on its gRPC call; the server bounds the work)
DEFAULT_TIMEOUT_S = 300.0  # a gateway call's gRPC deadline; a client may ask for less with `grpc-timeout: N` (s)
NDJSON = "application/x-ndjson"


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")), status_code=status, media_type="application/json")


def _error(code: grpc.StatusCode, message: str) -> Response:
    return _json(gateway.error_body(code, message), gateway.HTTP_STATUS.get(code, 500))


def _rpc_error(exc: grpc.RpcError) -> Response:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    return _error(code, (exc.details() if hasattr(exc, "details") else None) or code.name)


def _metadata(request: Request) -> tuple[tuple[str, str], ...]:
    return tuple((name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers)


def _timeout(request: Request) -> float:
    raw = request.headers.get("grpc-timeout")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"header grpc-timeout must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= DEFAULT_TIMEOUT_S:
        raise InvalidArgument(f"header grpc-timeout must be in (0, {DEFAULT_TIMEOUT_S:g}] seconds, got {raw!r}")
    return value


class Gateway:
    """The HTTP endpoints over one gRPC target (a channel opened in the serving loop, at start-up)."""

    def __init__(self, grpc_target: str, *, metrics: Any = None, bench_dir: Path | None = None) -> None:
        self.grpc_target = grpc_target
        self.metrics = metrics
        self.bench_dir = bench_dir
        self.channel: grpc.Channel | None = None
        self._calls: ThreadPoolExecutor | None = None
        self._openapi: dict[str, Any] | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # A blocking channel driven from threads, not a grpc.aio one on this loop: the loop also runs the
        # gRPC server, and an aio call made from it measured 2-3x the latency (`lamina bench transport`).
        self.channel = grpc.insecure_channel(self.grpc_target, options=[
            ("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)])
        self._calls = ThreadPoolExecutor(max_workers=GATEWAY_THREADS, thread_name_prefix="lamina-http")
        try:
            yield
        finally:
            self._calls.shutdown(wait=False, cancel_futures=True)
            self.channel.close()

    async def _in_thread(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._calls, partial(function, *args, **kwargs))

    # ---------------------------------------------------------------- the API
    async def call(self, request: Request) -> Response:
        response = await self._call(request)
        if self.metrics is not None:
            name = f"{request.path_params['service']}/{request.path_params['method']}"
            self.metrics.observe_http(name if name in gateway.METHODS else "unknown", response.status_code)
        return response

    async def _call(self, request: Request) -> Response:
        name = f"{request.path_params['service']}/{request.path_params['method']}"
        entry = gateway.METHODS.get(name)
        if entry is None:
            return _error(grpc.StatusCode.UNIMPLEMENTED,
                          f"no method {name!r}; GET /openapi.json lists them ({', '.join(sorted(gateway.METHODS))})")
        if entry.client_streaming:
            return _error(grpc.StatusCode.UNIMPLEMENTED, f"{name} streams its requests: use gRPC")
        try:
            message = gateway.parse_request(entry, await request.body())
            timeout = _timeout(request)
        except InvalidArgument as exc:
            return _error(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        assert self.channel is not None, "the gateway's channel opens in its lifespan"
        if entry.server_streaming:
            return await self._stream(entry, message, _metadata(request), timeout)
        rpc = self.channel.unary_unary(entry.grpc_path, request_serializer=entry.request.SerializeToString,
                                       response_deserializer=entry.response.FromString)
        try:
            response = await self._in_thread(rpc, message, metadata=_metadata(request), timeout=timeout)
        except grpc.RpcError as exc:
            return _rpc_error(exc)
        return _json(gateway.to_json(response))

    async def _stream(self, entry: gateway.Method, message: Any, metadata: Any, timeout: float) -> Response:
        rpc = self.channel.unary_stream(entry.grpc_path, request_serializer=entry.request.SerializeToString,
                                        response_deserializer=entry.response.FromString)
        call = rpc(message, metadata=metadata, timeout=timeout)  # an iterator that blocks: read it in threads
        done = object()
        try:
            first = await self._in_thread(next, call, done)
        except grpc.RpcError as exc:
            return _rpc_error(exc)

        async def lines() -> AsyncIterator[bytes]:
            response = first
            try:
                while response is not done:
                    yield json.dumps(gateway.to_json(response)).encode() + b"\n"
                    response = await self._in_thread(next, call, done)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                yield json.dumps(gateway.error_body(code, exc.details() or code.name)).encode() + b"\n"
            finally:
                call.cancel()

        return StreamingResponse(lines(), media_type=NDJSON)

    # ---------------------------------------------------------------- the rest
    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = openapi_document()
        return JSONResponse(self._openapi)

    async def healthz(self, request: Request) -> Response:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            reply = await self._in_thread(health_pb2_grpc.HealthStub(self.channel).Check,
                                          health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError as exc:
            return PlainTextResponse(exc.code().name, status_code=503)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return PlainTextResponse(status, status_code=200 if status == "SERVING" else 503)

    async def scrape(self, request: Request) -> Response:
        if self.metrics is None:
            return PlainTextResponse("metrics are off", status_code=404)
        body, content_type = await asyncio.to_thread(self.metrics.exposition)
        return Response(body, media_type=content_type)

    async def console(self, request: Request) -> Response:
        name = request.path_params.get("name") or "index.html"
        if "/" in name or name.startswith("."):
            return PlainTextResponse("not found", status_code=404)
        asset = resources.files("lamina.service").joinpath("console", name)
        if not asset.is_file():
            return PlainTextResponse("not found", status_code=404)
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(asset.read_bytes(), media_type=media, headers={"cache-control": "no-cache"})

    async def bench_plots(self, request: Request) -> Response:
        """The PNGs of `bench/results/` (newest first): a list at /bench/, one file at /bench/{name}."""
        directory = self.bench_dir
        name = request.path_params.get("name")
        if directory is None or not directory.is_dir():
            return _json({"plots": []}) if name is None else PlainTextResponse("not found", status_code=404)
        if name is None:
            plots = sorted(directory.glob("*.png"), key=lambda p: p.stat().st_mtime, reverse=True)
            return _json({"plots": [p.name for p in plots]})
        path = directory / name
        if "/" in name or not name.endswith(".png") or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, media_type="image/png")

    def app(self) -> Starlette:
        routes = [
            Route("/v1/{service}/{method}", self.call, methods=["POST"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/metrics", self.scrape, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/bench/", self.bench_plots, methods=["GET"]),
            Route("/bench/{name}", self.bench_plots, methods=["GET"]),
            Route("/", self.console, methods=["GET"]),
            Route("/console/{name}", self.console, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan)


def default_bench_dir() -> Path | None:
    """`bench/results/` of the source tree Lamina runs from, if there is one (a wheel has none)."""
    path = Path(__file__).resolve().parents[1] / "bench" / "results"
    return path if path.is_dir() else None


# -------------------------------------------------------------------- running it beside the gRPC server
class HttpServer:
    """uvicorn serving a `Gateway` on the running event loop; the gRPC server's stop handles signals."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # SIGTERM/SIGINT belong to serve_database's graceful stop
                yield

        self._server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                              access_log=False, timeout_graceful_shutdown=5))
        self._task: asyncio.Task[None] | None = None
        self.port = port

    async def start(self, timeout: float = 10.0) -> int:
        """Start serving; returns the bound port (port 0: a free one). OSError if it cannot listen."""
        self._task = asyncio.create_task(self._server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._server.started:
            if self._task.done():  # uvicorn logs a failed bind and exits with SystemExit
                exc = self._task.exception() if not self._task.cancelled() else None
                raise OSError(f"the HTTP server could not start on port {self.port}: {exc!r}")
            if loop.time() > deadline:
                raise TimeoutError("the HTTP server did not start")
            await asyncio.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(BaseException):
            await self._task


def local_target(host: str, grpc_port: int) -> str:
    """Where the gateway reaches the gRPC server of its own process."""
    from lamina.service.server import address

    return address("127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host, grpc_port)


def make_gateway(grpc_target: str, *, metrics: Any = None, bench_dir: Path | None = None) -> Gateway:
    return Gateway(grpc_target, metrics=metrics, bench_dir=bench_dir if bench_dir is not None else default_bench_dir())

