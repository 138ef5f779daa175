"""The gRPC server: Lamina's servicers plus health and reflection on one `grpc.aio` server.

BentoML's gRPC server is the model: bounded message sizes, `maximum_concurrent_rpcs` so that
overload is answered with RESOURCE_EXHAUSTED instead of an unbounded queue, `grpc.health.v1`
(SERVING for "" and for every service), reflection (so `grpcurl` works without the protos),
and a graceful stop that marks every service NOT_SERVING *before* it stops taking calls, so
that load balancers drain the server while in-flight calls finish.
API keys and the access rule of every method are enforced by one interceptor
(`lamina.service.auth`): off until a key exists, unless `auth="on"`.

Entry points, from the most to the least configurable:

    server, port = await build_server(database, host, port)   # the caller starts and stops it
    await serve_database(database, host, port, stop=event)    # serves until `stop` is set
    await serve(data_dir, host, port)                         # opens and closes the Database too
    run(data_dir, host, port, on_ready)                       # blocking, SIGTERM/SIGINT: the CLI's
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lamina.retrieval.collection import Database
from lamina.service.auth import KeyStore, make_interceptor
from lamina.service.metrics import Metrics
from lamina.service.rag import GeneratorPool
from lamina.service.servicer import SERVICE_NAMES, add_servicers
from lamina.service.work import DEFAULT_DRAIN_S, DEFAULT_WRITE_QUEUE, DEFAULT_WRITE_WORKERS, WorkCounters, WritePool

log = logging.getLogger(__name__)

MiB = 1 << 20
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 50051
DEFAULT_MAX_MESSAGE_BYTES = 64 * MiB
DEFAULT_MAX_CONCURRENT_RPCS = 256
DEFAULT_GRACE_S = 10.0

HealthServicer: TypeAlias = health.aio.HealthServicer  # the asyncio one: its statuses are set with await


def address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 literal in brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


async def build_server(
    database: Database,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS,
    workers: int | None = None,
    executor: Executor | None = None,
    health_servicer: HealthServicer | None = None,
    auth: str = "auto",
    api_keys_file: str | Path | None = None,
    keys: KeyStore | None = None,
    generators: GeneratorPool | None = None,
    metrics: Metrics | None = None,
    counters: WorkCounters | None = None,
    write_pool: WritePool | None = None,
    serving: bool = True,
) -> tuple[grpc.aio.Server, int]:
    """A bound, not yet started server over `database`, and the port it bound (port 0: a free one).

    Handlers run on `executor`, or on a new pool of `workers` threads (default: one per core).
    Pass `health_servicer` to be able to mark the services NOT_SERVING later (`graceful_stop`).
    API keys (`lamina.service.auth`) come from the store and `api_keys_file`, or are `keys`; `auth`
    is "auto" (enforced once any key exists), "on" or "off". `generators` are the generators the Rag
    service offers (default: local, openai and none, each loaded on first use, on a pool of its own).
    `metrics` (`lamina.service.metrics`) counts every call and search stage; `counters` the calls' work
    done and abandoned at their deadline; `write_pool` encodes upserts that carry text (default: they
    run on `executor`; `lamina.service.work`). `serving=False` leaves health NOT_SERVING (for
    `mark_serving` once the encoders are loaded).
    A coroutine because the health servicer is an asyncio one: call it in the loop that serves.
    """
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 4, thread_name_prefix="lamina-rpc")
    if health_servicer is None:
        health_servicer = HealthServicer()
    interceptor = make_interceptor(database.store, auth=auth, api_keys_file=api_keys_file, keys=keys)
    server = grpc.aio.server(
        interceptors=[interceptor] if metrics is None else [metrics.interceptor(), interceptor],
        options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # gRPC sets SO_REUSEPORT by default, which lets a second server share a taken port silently
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
    )
    services = add_servicers(server, database, executor, generators or GeneratorPool(),
                             search_observer=None if metrics is None else metrics.observe_search,
                             keys=interceptor.keys, counters=counters, write_pool=write_pool)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *services):
        await health_servicer.set(name, status)

    where = address(host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError as exc:  # grpc.aio reports a failed bind as a bare RuntimeError
        raise OSError(f"cannot listen on {where}: {exc}") from exc
    if bound == 0:  # older grpc versions report a failed bind as port 0
        raise OSError(f"cannot listen on {where}")
    return server, bound


async def graceful_stop(server: grpc.aio.Server, health_servicer: HealthServicer,
                        grace: float = DEFAULT_GRACE_S, drain: float = 0.0) -> None:
    """Mark every service NOT_SERVING, keep serving for `drain` seconds (new calls too), then stop
    taking calls and give in-flight ones `grace` seconds."""
    await drain_health(health_servicer, drain)
    await server.stop(grace)


async def drain_health(health_servicer: HealthServicer, drain: float, hurry: asyncio.Event | None = None) -> None:
    """Health NOT_SERVING for every service, then wait `drain` seconds (or until `hurry` is set) while
    calls are still served."""
    await health_servicer.enter_graceful_shutdown()  # first: health watchers see it before calls are refused
    if drain > 0:
        log.info("lamina draining: NOT_SERVING for %.1f s while still serving", drain)
        try:
            await asyncio.wait_for((hurry or asyncio.Event()).wait(), drain)
        except TimeoutError:
            pass


async def mark_serving(health_servicer: HealthServicer, services: list[str] | None = None) -> None:
    """Health SERVING for "" and every Lamina service."""
    for name in ("", *(SERVICE_NAMES if services is None else services)):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


def preload_encoders(database: Database) -> list[str]:
    """Open every collection and load (and run once) its dense, sparse and token encoders, so that the
    first search does not wait for a model; returns the failures (logged: such a collection fails its
    calls with the same error later, the others are served)."""
    failures = []
    for config in database.list_collections():
        try:
            collection = database.collection(config.name)
            if config.encoder is not None:
                collection.encoder.encode_queries(["warm up"])
            if config.sparse is not None:
                collection.sparse_encoder  # noqa: B018 - loads it
            if config.multivector is not None:
                collection.token_encoder.encode_queries(["warm up"])
        except Exception as exc:  # noqa: BLE001 - one collection's broken encoder must not stop the server
            log.warning("collection %r: its encoders did not load: %s", config.name, exc)
            failures.append(config.name)
    return failures


async def serve_database(
    database: Database,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    ready: Callable[[int], Any] | None = None,
    stop: asyncio.Event | None = None,
    grace: float = DEFAULT_GRACE_S,
    drain: float = DEFAULT_DRAIN_S,
    preload: bool = True,
    http_port: int | None = None,
    http_ready: Callable[[int], Any] | None = None,
    write_workers: int = DEFAULT_WRITE_WORKERS,
    write_queue: int = DEFAULT_WRITE_QUEUE,
    **options: Any,
) -> None:
    """Serve an open `database` until `stop` is set, then stop gracefully; the caller closes the database.

    With `preload`, every collection's encoders are loaded while health says NOT_SERVING; then
    SERVING. At `stop`, health says NOT_SERVING for `drain` seconds while calls (new ones too) are
    still served, then the port closes and in-flight calls get `grace` seconds. Upserts that encode
    text run on a pool of `write_workers` threads with `write_queue` more waiting (`lamina.service.work`).
    `ready(port)` is called once the server is SERVING. Without `stop`, SIGTERM and SIGINT stop
    the server (that needs the main thread). `http_port` (0: a free one) also serves the HTTP/JSON
    API, /metrics and the console on `host` (`lamina.service.http`), then `http_ready(port)` is
    called. `options` go to `build_server`.
    """
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    hurry = asyncio.Event()
    if stop is None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("serving without a stop event handles signals, which needs the main thread")
        stop = asyncio.Event()

        def on_signal() -> None:  # a second signal cuts the drain short
            (hurry if stop.is_set() else stop).set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
            signals.append(sig)
    executor = ThreadPoolExecutor(max_workers=options.pop("workers", None) or os.cpu_count() or 4,
                                  thread_name_prefix="lamina-rpc")
    health_servicer = HealthServicer()
    if options.get("generators") is None:  # made here, so that its generation threads are stopped here
        options["generators"] = GeneratorPool()
    if http_port is not None and options.get("metrics") is None:
        options["metrics"] = Metrics(database)
    made_pool = options.get("write_pool") is None
    if made_pool:  # made here, so that its threads are stopped here
        options["write_pool"] = WritePool(write_workers, write_queue)
    http_server = None
    try:
        server, bound = await build_server(database, host, port, executor=executor,
                                           health_servicer=health_servicer, serving=not preload, **options)
        await server.start()
        try:
            if preload:  # health answers NOT_SERVING meanwhile
                log.info("lamina loading the collections' encoders before serving")
                await asyncio.to_thread(preload_encoders, database)
                await mark_serving(health_servicer)
            if http_port is not None:
                http_server = await start_http(host, http_port, bound, options["metrics"])
                if http_ready is not None:
                    http_ready(http_server.port)
            log.info("lamina serving on %s", address(host, bound))
            if ready is not None:
                ready(bound)
            await stop.wait()
            log.info("lamina stopping: draining for %.1f s, then calls get up to %.1f s", drain, grace)
        finally:
            await drain_health(health_servicer, drain, hurry)
            if http_server is not None:  # first: its calls go through the gRPC server
                await http_server.stop()
            await server.stop(grace)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        # handlers cut off by the grace period may still run: let them finish before the database closes
        await asyncio.to_thread(executor.shutdown, wait=True)
        options["generators"].shutdown()  # answers still generating were cut off with their calls
        if made_pool:  # writes still queued were cut off with their calls; running ones finish
            await asyncio.to_thread(options["write_pool"].shutdown)


async def start_http(host: str, port: int, grpc_port: int, metrics: Metrics | None) -> Any:
    """The HTTP/JSON gateway (`lamina.service.http`) to the gRPC server on `grpc_port`, serving on `host:port`."""
    from lamina.service.http import HttpServer, local_target, make_gateway

    http_server = HttpServer(make_gateway(local_target(host, grpc_port), metrics=metrics).app(), host, port)
    await http_server.start()
    log.info("lamina HTTP/JSON API on %s", address(host, http_server.port))
    return http_server


async def serve(
    data_dir: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    ready: Callable[[int], Any] | None = None,
    *,
    stop: asyncio.Event | None = None,
    grace: float = DEFAULT_GRACE_S,
    encoder_loader: Callable[[str], Any] | None = None,
    **options: Any,
) -> None:
    """Open the Database in `data_dir`, serve it (see `serve_database`), then close it (snapshotting indexes)."""
    database = Database(data_dir) if encoder_loader is None else Database(data_dir, encoder_loader=encoder_loader)
    try:
        await serve_database(database, host, port, ready=ready, stop=stop, grace=grace, **options)
    finally:
        database.close()
        log.info("lamina stopped; database closed")


def run(
    data_dir: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_ready: Callable[[int], Any] | None = None,
    **options: Any,
) -> None:
    """Serve `data_dir` until SIGTERM or SIGINT (blocking; the CLI's entry point). `on_ready(port)` once serving."""
    asyncio.run(serve(data_dir, host, port, on_ready, **options))
