"""`lamina bench transport`: what the HTTP/JSON gateway costs beside gRPC, on one server, in one run.

One vectors-only flat collection of random vectors, served with `--http`; the same vector queries,
one at a time, through three callers of that server: the Python `Client` over gRPC, the same
`Client` over HTTP (`Client("http://...")`: JSON encode, the gateway, the gRPC call, JSON decode),
and the in-process `Collection` (no transport). Each answers the same hits; the report gives
p50/p99 latency and QPS of each, and the gateway's added p50.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import numpy as np


def _latencies(search: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[list[str]]]:
    times, answers = np.empty(len(queries)), []
    for i, query in enumerate(queries):
        started = time.perf_counter()
        hits = search(query, k)
        times[i] = time.perf_counter() - started
        answers.append([h.id for h in hits])
    return times, answers


def _serve(database: Any) -> tuple[threading.Thread, Any, dict[str, int]]:
    from lamina.service.server import serve_database

    ports: dict[str, int] = {}
    ready, holder = threading.Event(), {}

    async def main() -> None:
        holder["loop"], holder["stop"] = asyncio.get_running_loop(), asyncio.Event()
        await serve_database(database, "127.0.0.1", 0, stop=holder["stop"], grace=1.0, drain=0.0,
                             ready=lambda p: (ports.__setitem__("grpc", p), ready.set()),
                             http_port=0, http_ready=lambda p: ports.__setitem__("http", p))

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise click.ClickException("the server did not start")
    return thread, holder, ports


def _row(system: str, times: np.ndarray) -> dict[str, Any]:
    return {"system": system, "p50_ms": round(1e3 * float(np.percentile(times, 50)), 3),
            "p99_ms": round(1e3 * float(np.percentile(times, 99)), 3), "qps": round(len(times) / times.sum(), 1)}


@click.command("transport")
@click.option("--n", default=20_000, show_default=True, help="Vectors in the collection.")
@click.option("--dim", default=128, show_default=True)
@click.option("-k", "k", default=10, show_default=True)
@click.option("--queries", default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (last line).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_transport(n: int, dim: int, k: int, queries: int, as_json: bool, out: Path | None) -> None:
    """Search latency over gRPC, over the HTTP/JSON gateway and in-process, side by side on one server."""
    from lamina.cli import _emit
    from lamina.retrieval.collection import Database
    from lamina.service.client import Client

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    query_vectors = rng.standard_normal((queries, dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp, Database(tmp) as db:
        coll = db.create_collection("bench", dim, encoder=None, index="flat")
        for start in range(0, n, 1000):
            coll.upsert([{"id": str(i), "vector": vectors[i]} for i in range(start, min(n, start + 1000))])
        thread, holder, ports = _serve(db)
        try:
            with Client(f"127.0.0.1:{ports['grpc']}") as grpc_client, \
                    Client(f"http://127.0.0.1:{ports['http']}") as http_client:
                runs = {"in-process": lambda q, kk: coll.search(q, kk),
                        "grpc": lambda q, kk: grpc_client.search("bench", q, k=kk),
                        "http-json": lambda q, kk: http_client.search("bench", q, k=kk)}
                for search in runs.values():  # warm up each path (connections, first encodes)
                    _latencies(search, query_vectors[:20], k)
                measured = {name: _latencies(search, query_vectors, k) for name, search in runs.items()}
        finally:
            holder["loop"].call_soon_threadsafe(holder["stop"].set)
            thread.join(30)
    same = all(measured[name][1] == measured["in-process"][1] for name in ("grpc", "http-json"))
    results = [_row(name, times) for name, (times, _) in measured.items()]
    added = results[2]["p50_ms"] - results[1]["p50_ms"]
    report = {"benchmark": "transport", "dataset": f"random:{n}:{dim}", "k": k, "queries": queries,
              "same_hits": same, "http_added_p50_ms": round(added, 3), "results": results}
    click.echo(f"the HTTP gateway adds {added:.3f} ms at p50; same hits on every path: {same}", err=as_json)
    _emit(report, as_json, out)
