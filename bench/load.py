"""`lamina bench load`: a real `lamina serve` subprocess on loopback under mixed concurrent load.

The data directory holds two collections, built before the server starts:
- `vectors`: `n` random vectors (default 100,000, dim 64) in an HNSW index;
- `texts`: short synthetic texts embedded by a real encoder (default all-MiniLM-L6-v2).

Clients are threads of this process, each with its own gRPC channel, calling in a closed loop. Of
every 100 calls, `mix` (searches:writes) sets how many are searches (half on each collection: a
vector query on `vectors`, a text query on `texts`) and how many are upserts of one text to
`texts` (encoded on the server's write pool; ids are drawn from a fixed set, so the data does not
grow). Each `--clients` level runs `duration` seconds and reports QPS, p50/p99 and errors by status
code. The server's RSS is sampled every half second throughout.

Then the abandoned-queries phase: 8 steady clients run; a burst of heavy searches (HNSW at the
work bound: k 1,000 with ef_search 10,000) is sent with a 50 ms deadline and abandoned; p99 of the
steady calls is taken in 250 ms windows by start time, and the recovery is the time from the burst
to the end of the last window whose p99 is over twice the steady p99 before the burst.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lamina.service.v1 import common_pb2, points_pb2, points_pb2_grpc, search_pb2, search_pb2_grpc

WORDS = ("wing lift drag heat transfer boundary layer flow shock pressure supersonic laminar turbulent "
         "nozzle jet plate cylinder cone vortex wake stream mach number body surface temperature").split()
TEXT_IDS = 1000  # upserts overwrite these ids
WINDOW_S = 0.25
CALL_TIMEOUT_S = 30.0


# ------------------------------------------------------------------------------------------ data
def build_data(data_dir: Path, n: int, dim: int, texts: int, encoder: str) -> dict[str, float]:
    """Create the two collections; returns how long each took (s)."""
    from lamina.retrieval.collection import Database

    rng = np.random.default_rng(0)
    took = {}
    with Database(data_dir) as db:
        started = time.perf_counter()
        coll = db.create_collection("vectors", dim=dim, encoder=None, index={"kind": "hnsw", "scan_codes": False})
        for start in range(0, n, 10_000):
            block = rng.standard_normal((min(n, start + 10_000) - start, dim)).astype(np.float32)
            coll.upsert([{"id": f"v{start + i}", "vector": v} for i, v in enumerate(block)])
        took["vectors_s"] = time.perf_counter() - started
        started = time.perf_counter()
        coll = db.create_collection("texts", encoder=encoder)
        coll.upsert([{"id": f"t{i}", "text": _sentence(rng)} for i in range(texts)], wait=True)
        took["texts_s"] = time.perf_counter() - started
    return {key: round(value, 1) for key, value in took.items()}


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(6, 16))))


# ------------------------------------------------------------------------------------------ server
class ServerProcess:
    """`lamina serve` on a free loopback port; SERVING once its encoders are loaded."""

    def __init__(self, data_dir: Path, extra: list[str] | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        command = [sys.executable, "-m", "lamina.cli", "serve", "--data-dir", str(data_dir), "--port",
                   str(self.port), "--auth", "off", "--drain-seconds", "0", *(extra or [])]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.target = f"127.0.0.1:{self.port}"

    def wait_serving(self, limit: float = 600.0) -> float:
        started = time.monotonic()
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() - started < limit:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited: {self.process.stderr.read()[-2000:]}")
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        return time.monotonic() - started
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise TimeoutError(f"the server was not SERVING within {limit} s")

    def rss_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RssSampler(threading.Thread):
    """The server's RSS every `every` seconds, labelled with the phase running."""

    def __init__(self, server: ServerProcess, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.server, self.every, self.phase = server, every, "start"
        self.samples: list[tuple[float, float, str]] = []
        self._halt = threading.Event()
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            rss = self.server.rss_mib()
            if rss is not None:
                self.samples.append((round(time.monotonic() - self._t0, 2), round(rss, 1), self.phase))

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)


# ------------------------------------------------------------------------------------------ calls
@dataclass
class Call:
    started: float
    seconds: float
    kind: str
    code: str


class Caller:
    """One client: its own channel, and the three calls of the mix."""

    def __init__(self, target: str, dim: int, seed: int) -> None:
        self.channel = grpc.insecure_channel(target)
        self.search = search_pb2_grpc.SearchStub(self.channel).Search
        self.upsert = points_pb2_grpc.PointsStub(self.channel).Upsert
        self.rng = np.random.default_rng(seed)
        self.dim = dim

    def vector_search(self) -> Any:
        vector = common_pb2.Vector(dense=common_pb2.DenseVector(
            values=self.rng.standard_normal(self.dim).astype(np.float32).tolist()))
        return search_pb2.SearchRequest(collection="vectors", vector=vector, k=10)

    def text_search(self) -> Any:
        return search_pb2.SearchRequest(collection="texts", text=_sentence(self.rng), k=10)

    def write(self) -> Any:
        point = common_pb2.Point(id=f"t{int(self.rng.integers(TEXT_IDS))}", text=_sentence(self.rng))
        return points_pb2.UpsertPointsRequest(collection="texts", points=[point])

    def one(self, write_share: float, t0: float) -> Call:
        if self.rng.random() < write_share:
            kind, method, request = "write", self.upsert, self.write()
        elif self.rng.random() < 0.5:
            kind, method, request = "search-vectors", self.search, self.vector_search()
        else:
            kind, method, request = "search-texts", self.search, self.text_search()
        return timed(method, request, kind, t0)

    def close(self) -> None:
        self.channel.close()


def timed(method: Callable[..., Any], request: Any, kind: str, t0: float, timeout: float = CALL_TIMEOUT_S) -> Call:
    started = time.perf_counter()
    try:
        method(request, timeout=timeout)
        code = "OK"
    except grpc.RpcError as exc:
        code = exc.code().name
    return Call(started - t0, time.perf_counter() - started, kind, code)


def closed_loop(target: str, dim: int, clients: int, duration: float, write_share: float,
                t0: float, seed: int = 0) -> list[Call]:
    """`clients` threads calling for `duration` seconds; every call, timed from `t0`."""
    calls: list[Call] = []
    lock = threading.Lock()
    end = time.perf_counter() + duration

    def client(i: int) -> None:
        caller = Caller(target, dim, seed * 1000 + i)
        mine = []
        try:
            while time.perf_counter() < end:
                mine.append(caller.one(write_share, t0))
        finally:
            caller.close()
        with lock:
            calls.extend(mine)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 2 * CALL_TIMEOUT_S)
    return calls


def summarize(calls: list[Call], duration: float) -> dict[str, Any]:
    seconds = np.array([c.seconds for c in calls if c.code == "OK"]) * 1e3
    searches = np.array([c.seconds for c in calls if c.code == "OK" and c.kind != "write"]) * 1e3
    writes = seconds[[c.kind == "write" for c in calls if c.code == "OK"]] if len(seconds) else seconds

    def pct(values: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(values, q)), 2) if len(values) else None

    return {"calls": len(calls), "qps": round(len(calls) / duration, 1),
            "p50_ms": pct(seconds, 50), "p99_ms": pct(seconds, 99),
            "search_p50_ms": pct(searches, 50), "search_p99_ms": pct(searches, 99),
            "write_p50_ms": pct(writes, 50), "write_p99_ms": pct(writes, 99),
            "errors": dict(Counter(c.code for c in calls if c.code != "OK"))}


# ------------------------------------------------------------------------------------------ abandoned
def heavy_request(caller: Caller, k: int = 1000, ef: int = 10_000) -> Any:
    request = caller.vector_search()
    request.k = k
    request.params["ef_search"] = ef
    return request


def abandoned_phase(target: str, dim: int, clients: int, heavy: int, write_share: float, k: int = 1000,
                    ef: int = 10_000, before: float = 3.0, after: float = 5.0) -> dict[str, Any]:
    """Steady clients; at `before` s a burst of `heavy` heavy searches abandoned at 50 ms; the p99 of the
    steady calls by 250 ms window of start time, and when it is back to twice the steady p99."""
    probe = Caller(target, dim, 99)
    try:
        one_heavy = timed(probe.search, heavy_request(probe, k, ef), "heavy", 0.0)
        refused = timed(probe.search, heavy_request(probe, k=10_000, ef=10_000), "issue-heavy", 0.0)
        t0 = time.perf_counter()
        result: dict[str, Any] = {}

        def burst() -> None:
            time.sleep(before)
            result["burst_at"] = time.perf_counter() - t0
            futures = [probe.search.future(heavy_request(probe, k, ef), timeout=0.05) for _ in range(heavy)]
            result["burst_codes"] = dict(Counter(f.exception().code().name if f.exception() else "OK"
                                                 for f in futures))

        burster = threading.Thread(target=burst, daemon=True)
        burster.start()
        calls = closed_loop(target, dim, clients, before + after, write_share, t0, seed=7)
        burster.join(10)
    finally:
        probe.close()
    return _recovery(calls, result["burst_at"], before + after) | {
        "clients": clients, "heavy_queries": heavy, "heavy_query": {"k": k, "ef_search": ef},
        "heavy_ms_when_not_abandoned": round(one_heavy.seconds * 1e3, 1), "heavy_code": one_heavy.code,
        "issue_heavy_k10000_ef10000_code": refused.code, "burst_codes": result["burst_codes"]}


def _recovery(calls: list[Call], burst_at: float, total: float) -> dict[str, Any]:
    ok = [c for c in calls if c.code == "OK"]
    steady = np.array([c.seconds for c in ok if 0.5 <= c.started < burst_at]) * 1e3
    steady_p99 = float(np.percentile(steady, 99)) if len(steady) else float("nan")
    windows = []
    for start in np.arange(burst_at, total, WINDOW_S):
        inside = np.array([c.seconds for c in ok if start <= c.started < start + WINDOW_S]) * 1e3
        if len(inside):
            windows.append((round(float(start - burst_at), 2), round(float(np.percentile(inside, 99)), 2)))
    over = [t for t, p99 in windows if p99 > 2 * steady_p99]
    return {"steady_p99_ms": round(steady_p99, 2), "windows_p99_ms": windows,
            "recovery_s": round(over[-1] + WINDOW_S, 2) if over else 0.0,
            "errors": dict(Counter(c.code for c in calls if c.code != "OK"))}


# ------------------------------------------------------------------------------------------ the run
def rss_summary(samples: list[tuple[float, float, str]]) -> dict[str, Any]:
    loaded = [(t, rss) for t, rss, phase in samples if phase != "start"]
    if len(loaded) < 2:
        return {}
    t, rss = np.array(loaded).T
    slope = float(np.polyfit(t, rss, 1)[0]) * 60
    return {"first_mib": float(rss[0]), "last_mib": float(rss[-1]), "max_mib": float(rss.max()),
            "slope_mib_per_min": round(slope, 2)}


def run_load(data_dir: Path, *, clients: list[int], write_share: float, duration: float, n: int, dim: int,
             texts: int, encoder: str, heavy: int, heavy_queries: list[tuple[int, int]] = ((1000, 10_000),),
             server_args: list[str] | None = None,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the data, serve it in a subprocess, run each client level and the abandoned phase."""
    log(f"building {n:,} vectors and {texts:,} texts ...")
    built = build_data(data_dir, n, dim, texts, encoder)
    server = ServerProcess(data_dir, server_args)
    sampler = RssSampler(server)
    try:
        serving_s = server.wait_serving()
        log(f"server SERVING after {serving_s:.1f} s (encoders loaded first)")
        sampler.start()
        closed_loop(server.target, dim, 4, 2.0, write_share, time.perf_counter())  # warm up
        levels = []
        for count in clients:
            sampler.phase = f"clients-{count}"
            calls = closed_loop(server.target, dim, count, duration, write_share, time.perf_counter())
            levels.append({"clients": count, **summarize(calls, duration)})
            log(f"{count:>3} clients: {levels[-1]}")
        abandoned = []
        for k, ef in heavy_queries:
            sampler.phase = f"abandoned-k{k}-ef{ef}"
            abandoned.append(abandoned_phase(server.target, dim, min(clients), heavy, write_share, k, ef))
            log(f"abandoned heavy queries (k {k}, ef {ef}, {abandoned[-1]['heavy_ms_when_not_abandoned']} ms "
                f"alone): recovery {abandoned[-1]['recovery_s']} s, steady p99 {abandoned[-1]['steady_p99_ms']} ms")
    finally:
        sampler.stop()
        server.stop()
    return {"build_s": built, "serving_after_s": round(serving_s, 1), "levels": levels, "abandoned": abandoned,
            "rss_mib": sampler.samples, "rss": rss_summary(sampler.samples), "server_pid_cpus": os.cpu_count()}


def targets(report: dict[str, Any], concurrency_limit: int = 256) -> dict[str, Any]:
    """The issue's targets, each with the figure it is judged on and whether it is met."""
    levels = {row["clients"]: row for row in report["levels"]}
    below = [row for row in report["levels"] if row["clients"] < concurrency_limit]
    errors = sum(sum(row["errors"].values()) for row in below)
    out: dict[str, Any] = {"errors_below_limit": {"value": errors, "met": errors == 0}}
    if 8 in levels and 32 in levels and levels[8]["p99_ms"]:
        ratio = levels[32]["p99_ms"] / levels[8]["p99_ms"]
        out["p99_32_over_8"] = {"value": round(ratio, 2), "met": ratio <= 4}
    for phase in report["abandoned"]:
        q = phase["heavy_query"]
        out[f"recovery_s_k{q['k']}_ef{q['ef_search']}"] = {"value": phase["recovery_s"],
                                                           "met": phase["recovery_s"] <= 1.0}
    slope = report["rss"].get("slope_mib_per_min")
    if slope is not None:
        out["rss_slope_mib_per_min"] = {"value": slope, "met": abs(slope) < 10,
                                        "note": f"over {len(report['levels'])} levels, not 10 minutes"}
    return out
