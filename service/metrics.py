"""Prometheus metrics of a Lamina server (`GET /metrics` on the HTTP port, text format).

Counted as calls happen (a gRPC server interceptor, outermost, so refused calls count too):

    lamina_requests_total{method,code}            calls answered, by gRPC method and status code
    lamina_request_seconds{method}                 histogram of call latency (server side, to the last message)
    lamina_requests_in_flight{method}              calls being served now
    lamina_rejected_requests_total{method,reason}  calls refused before or instead of work: reason is
                                                   unauthenticated, permission_denied or resource_exhausted (shed)
    lamina_http_requests_total{method,status}      HTTP/JSON API calls by method (Service/Method) and HTTP status,
                                                   those refused before reaching gRPC (bad JSON: 400) included
    lamina_search_stage_seconds{collection,stage}  histogram of each Search stage (dense, sparse) and of the
                                                   whole query (stage="total"), from the query's own timings

Read from the database at each scrape:

    lamina_collection_points{collection}           live points
    lamina_index_memory_bytes{collection,index}    resident bytes of each index of an open collection
    lamina_snapshot_age_seconds{collection}        seconds since the collection's current index snapshot
    lamina_writes_since_snapshot{collection}       writes the next start would replay from the store's log
    lamina_log_lag_seq{collection}                 store sequence numbers since the snapshot (all collections')
    lamina_token_cache_{hits,misses,bytes}{collection}  the token store's cache, where the store keeps one

Each server has its own registry (two servers in one process do not share counters).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# seconds: 0.5 ms to 30 s (a first search can wait for an encoder to load)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REJECTIONS = {
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
    grpc.StatusCode.PERMISSION_DENIED: "permission_denied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "resource_exhausted",
}


class Metrics:
    """The counters of one server, and the collector that reads `database` at scrape time."""

    def __init__(self, database: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("lamina_requests", "Calls answered, by gRPC method and status code",
                                ["method", "code"], registry=self.registry)
        self.latency = Histogram("lamina_request_seconds", "Call latency, by gRPC method", ["method"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("lamina_requests_in_flight", "Calls being served", ["method"], registry=self.registry)
        self.rejected = Counter("lamina_rejected_requests", "Calls refused: unauthenticated, permission_denied, "
                                "resource_exhausted (shed)", ["method", "reason"], registry=self.registry)
        self.http = Counter("lamina_http_requests", "HTTP/JSON API calls, by Service/Method and HTTP status",
                            ["method", "status"], registry=self.registry)
        self.stages = Histogram("lamina_search_stage_seconds", "Search stage latency (stage=total: the whole query)",
                                ["collection", "stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        if database is not None:
            self.registry.register(DatabaseCollector(database))

    def observe_call(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.requests.labels(method, code.name).inc()
        self.latency.labels(method).observe(seconds)
        reason = REJECTIONS.get(code)
        if reason is not None:
            self.rejected.labels(method, reason).inc()

    def observe_http(self, method: str, status: int) -> None:
        self.http.labels(method, str(status)).inc()

    def observe_search(self, collection: str, explain: Mapping[str, Any] | None) -> None:
        """Record a query's stage timings (its explain dict: stages[i].kind/.ms, and ms)."""
        if not explain:
            return
        for stage in explain.get("stages", ()):
            if "ms" in stage:
                self.stages.labels(collection, str(stage.get("kind", "?"))).observe(stage["ms"] / 1e3)
        if "ms" in explain:
            self.stages.labels(collection, "total").observe(explain["ms"] / 1e3)

    def interceptor(self) -> MetricsInterceptor:
        return MetricsInterceptor(self)

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _code_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, int) and not isinstance(code, grpc.StatusCode):  # grpc.aio may hold the raw number
        code = next((c for c in grpc.StatusCode if c.value[0] == code), None)
    if code is not None:
        return code
    if exc is None:
        return grpc.StatusCode.OK
    return grpc.StatusCode.CANCELLED if isinstance(exc, BaseException) and "Cancelled" in type(exc).__name__ \
        else grpc.StatusCode.UNKNOWN


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call of a unary or server-streaming method by method and final status."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or handler.request_streaming:
            return handler
        method, metrics = details.method, self.metrics
        if handler.response_streaming:
            stream = handler.unary_stream

            async def counted_stream(request: Any, context: grpc.aio.ServicerContext):
                started, failure = time.perf_counter(), None
                metrics.in_flight.labels(method).inc()
                try:
                    async for response in stream(request, context):
                        yield response
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    metrics.in_flight.labels(method).dec()
                    metrics.observe_call(method, _code_of(context, failure), time.perf_counter() - started)

            return handler._replace(unary_stream=counted_stream)
        behavior = handler.unary_unary

        async def counted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started, failure = time.perf_counter(), None
            metrics.in_flight.labels(method).inc()
            try:
                return await behavior(request, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                metrics.in_flight.labels(method).dec()
                metrics.observe_call(method, _code_of(context, failure), time.perf_counter() - started)

        return handler._replace(unary_unary=counted)


class DatabaseCollector:
    """Gauges read from the database when Prometheus scrapes: sizes, index memory, snapshot state."""

    def __init__(self, database: Any) -> None:
        self.database = database

    def describe(self) -> list[Any]:
        return []  # the families are read at collect time; none is registered twice

    def collect(self) -> Iterator[GaugeMetricFamily]:
        points = GaugeMetricFamily("lamina_collection_points", "Live points", labels=["collection"])
        memory = GaugeMetricFamily("lamina_index_memory_bytes", "Resident bytes of each index of an open collection",
                                   labels=["collection", "index"])
        age = GaugeMetricFamily("lamina_snapshot_age_seconds", "Seconds since the current index snapshot",
                                labels=["collection"])
        writes = GaugeMetricFamily("lamina_writes_since_snapshot", "Writes the next start replays from the log",
                                   labels=["collection"])
        lag = GaugeMetricFamily("lamina_log_lag_seq", "Store sequence numbers since the collection's snapshot",
                                labels=["collection"])
        cache = {name: GaugeMetricFamily(f"lamina_token_cache_{name}", f"Token store cache {name}",
                                         labels=["collection"]) for name in ("hits", "misses", "bytes")}
        store = self.database.store
        for config in self.database.list_collections():
            points.add_metric([config.name], float(store.count(config.name)))
        last_seq = float(store.last_seq)
        now = time.time()
        for name, collection in self._open_collections():
            try:
                stats = collection.stats()
            except Exception:  # noqa: BLE001 - a collection dropped during the scrape
                continue
            for index, size in stats.get("memory_bytes", {}).items():
                memory.add_metric([name, index], float(size))
            current = collection.index_dir / "CURRENT"
            if current.exists():
                age.add_metric([name], max(0.0, now - current.stat().st_mtime))
            if hasattr(collection, "_writes_since_snapshot"):
                writes.add_metric([name], float(collection._writes_since_snapshot))
            if hasattr(collection, "_snapshot_seq"):
                lag.add_metric([name], max(0.0, last_seq - float(collection._snapshot_seq)))
            tokens = getattr(collection.indexes, "tokens", None)
            cache_stats = getattr(tokens, "cache_stats", None)
            if callable(cache_stats):
                for key, value in cache_stats().items():
                    if key in cache:
                        cache[key].add_metric([name], float(value))
        yield from (points, memory, age, writes, lag, *cache.values())

    def _open_collections(self) -> list[tuple[str, Any]]:
        """The collections the database has open (scraping opens none: that would load their indexes)."""
        opened = getattr(self.database, "_collections", {})
        lock = getattr(self.database, "_lock", None)
        if lock is None:
            return list(opened.items())
        with lock:
            return list(opened.items())
