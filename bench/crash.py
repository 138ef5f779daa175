"""The crasher: a subprocess server killed at random moments under load, then checked (issue #20).

Each round starts `lamina serve` on one data directory, checks every invariant against the model
of what was acknowledged so far, then runs a writer (upserts and deletes with `wait=True`, with
tenants and payload) and a reader (searches, counts) until the server is killed: SIGKILL at a
random moment, or now and then SIGTERM (a graceful stop, which takes the index snapshots that
the next crash then has to replay after). The invariants, checked at the start of every round
and after the last:

    durable     every acknowledged upsert is there with its vector, payload and tenant;
    deletes     no acknowledged delete is resurrected;
                (the one write in flight at the kill may have landed or not: either is right)
    count       `Count` equals the points stored;
    search      every hit is a live point with its true score; flat search equals brute force,
                an approximate index searched exhaustively finds >= 90 % of brute force's top 10;
                a tenant's search returns that tenant's points only.

A `Scenario` says which collections (one per index kind) and how each round writes. The
"threshold" scenarios write just under an index's build threshold (SPANN `build_size`, IVF's
training size), stop gracefully so that the snapshot holds the exact buffer, then cross the
threshold and crash before the next snapshot: issue #20's case 1.

The test suite runs a bounded crasher (tests/service/test_crash.py); `lamina bench crash` a
longer one (`run_crash`). A violation is reported, never raised, so that a run counts them all.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DIM = 8
TENANTS = ("t0", "t1", "t2")
SPANN_BUILD = 100
IVF_TRAIN = 10_000  # DenseIndex's training size for IVF (not a collection option)
KINDS: dict[str, dict[str, Any]] = {
    "flat": {"kind": "flat"},
    "ivf": {"kind": "ivf", "nprobe": 1 << 14},
    "hnsw": {"kind": "hnsw", "ef_search": 512},
    "spann": {"kind": "spann", "spann": {"build_size": SPANN_BUILD}},
}
EXHAUSTIVE: dict[str, dict[str, float]] = {
    "flat": {}, "ivf": {"nprobe": 1 << 14}, "hnsw": {"ef_search": 1024},
    "spann": {"max_postings": 1 << 14},
}
Point = tuple[bytes, tuple[tuple[str, Any], ...], str | None]  # vector bytes, payload items, tenant


@dataclass
class Scenario:
    kinds: tuple[str, ...]
    pool: int = 300  # ids drawn from p0..p<pool-1>
    batch: int = 8
    rounds: int = 10
    kill_after: tuple[float, float] = (0.3, 1.2)  # seconds of writing before the kill
    graceful: float = 0.2  # chance that a round ends with SIGTERM instead
    threshold: str | None = None  # "spann" or "ivf": the build-threshold crossing
    seed: int = 0


@dataclass
class Model:
    """What the crasher knows each collection holds: acknowledged states, and the write in flight."""

    state: dict[str, dict[str, Point | None]] = field(default_factory=dict)
    inflight: tuple[str, dict[str, Point | None]] | None = None


@dataclass
class RoundReport:
    round: int
    signal: str
    writes: int
    violations: list[str]
    seconds: float


class Server:
    """`lamina serve --port 0` on `data_dir` in a subprocess."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            # the invariant checks search exhaustively (EXHAUSTIVE), past the default work bound
            [sys.executable, "-m", "lamina.cli", "serve", "--port", "0", "--data-dir", str(data_dir),
             "--max-ef-k", str(1 << 40)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.target = self._wait_ready()
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_ready(self) -> str:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {''.join(lines[-20:])}")
            lines.append(line)
            match = re.search(r"serving .* on (\S+:\d+)", line)
            if match:
                return match.group(1)
        raise RuntimeError("server did not start within 120 s")

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        self.proc.wait(timeout=120)


def collection_name(kind: str) -> str:
    return f"c_{kind}"


def _point(vector: np.ndarray, payload: dict[str, Any], tenant: str | None) -> Point:
    return np.asarray(vector, dtype=np.float32).tobytes(), tuple(sorted(payload.items())), tenant


def _create(client: Any, kinds: tuple[str, ...], model: Model) -> None:
    for kind in kinds:
        name = collection_name(kind)
        if name not in model.state:
            client.create_collection(name, DIM, metric="l2", index=dict(KINDS[kind]), encoder=None,
                                     sparse=False, payload={"round": "numeric", "tag": "keyword"})
            model.state[name] = {}


def _write(client: Any, scenario: Scenario, model: Model, rng: np.random.Generator, round_no: int,
           stop: threading.Event, limit: int | None = None, offset: int = 0) -> int:
    """Write until `stop` is set or the server dies; returns the writes acknowledged. With `limit`:
    upsert exactly the points p<offset>..p<offset+limit-1>, in large batches, then return."""
    names = [collection_name(k) for k in scenario.kinds]
    done = upserted = 0
    while not stop.is_set() and (limit is None or upserted < limit):
        name = names[int(rng.integers(len(names)))]
        pool = scenario.pool
        if limit is None and rng.random() < 0.25:
            ids = [f"p{j}" for j in rng.choice(pool, min(3, pool), replace=False)]
            change: dict[str, Point | None] = dict.fromkeys(ids)
            call = lambda: client.delete(name, ids, wait=True)  # noqa: E731
        else:
            n = scenario.batch if limit is None else min(500, limit - upserted)
            ids = ([f"p{j}" for j in rng.choice(pool, n, replace=False)] if limit is None
                   else [f"p{j}" for j in range(offset + upserted, offset + upserted + n)])
            vectors = rng.standard_normal((n, DIM)).astype(np.float32)
            tenants = [TENANTS[int(t)] for t in rng.integers(len(TENANTS), size=n)]
            payloads = [{"round": round_no, "tag": f"g{int(rng.integers(4))}"} for _ in ids]
            change = {i: _point(v, p, t) for i, v, p, t in zip(ids, vectors, payloads, tenants)}
            points = [{"id": i, "vector": v, "metadata": p, "tenant": t}
                      for i, v, p, t in zip(ids, vectors, payloads, tenants)]
            call = lambda: client.upsert(name, points, wait=True)  # noqa: E731
        model.inflight = (name, change)
        try:
            result = call()
        except Exception:  # the server died with this write in flight: it may or may not have landed
            return done
        if isinstance(result, list) and result and hasattr(result[0], "ok") and not all(r.ok for r in result):
            raise RuntimeError(f"a write was refused: {[r.error for r in result if not r.ok][:3]}")
        model.state[name].update(change)
        model.inflight = None
        done += 1
        upserted += len(change) if limit is not None else 0
    return done


def _read(client: Any, scenario: Scenario, stop: threading.Event, rng: np.random.Generator) -> None:
    names = [collection_name(k) for k in scenario.kinds]
    while not stop.is_set():
        try:
            name = names[int(rng.integers(len(names)))]
            client.search(name, rng.standard_normal(DIM).astype(np.float32), k=5)
            client.count(name)
        except Exception:
            return


def verify(client: Any, model: Model, rng: np.random.Generator, n_queries: int = 10) -> list[str]:
    """Every invariant of the module doc; returns the violations found (and settles the model to what
    the server holds, where the write in flight left a choice)."""
    violations: list[str] = []
    for name, state in model.state.items():
        try:
            violations += _verify_collection(client, name, state, model, rng, n_queries)
        except Exception as exc:  # a collection that fails every request is a violation too
            violations.append(f"{name}: unavailable after the restart: {type(exc).__name__}: {exc}")
    model.inflight = None
    return violations


def _verify_collection(client: Any, name: str, state: dict[str, Point | None], model: Model,
                       rng: np.random.Generator, n_queries: int) -> list[str]:
    violations: list[str] = []
    pending = model.inflight[1] if model.inflight and model.inflight[0] == name else {}
    ids = sorted(set(state) | set(pending))
    docs = client.get(name, ids, with_vectors=True) if ids else []
    for doc_id, doc in zip(ids, docs):
        seen = None if doc is None else _point(doc.vector, doc.metadata, doc.tenant)
        allowed = [state.get(doc_id)] + ([pending[doc_id]] if doc_id in pending else [])
        if seen not in allowed:
            what = "lost" if seen is None else ("resurrected" if allowed == [None] else "wrong")
            violations.append(f"{name}/{doc_id}: {what} (expected {_describe(allowed)}, got {_describe([seen])})")
        state[doc_id] = seen
    live = {i: p for i, p in state.items() if p is not None}
    count = client.count(name)
    if count != len(live):
        violations.append(f"{name}: Count {count}, {len(live)} points stored")
    violations += _check_search(client, name, live, rng, n_queries)
    return violations


def _describe(states: list[Point | None]) -> str:
    return " or ".join("absent" if s is None else f"point(tenant={s[2]}, {dict(s[1])})" for s in states)


def _check_search(client: Any, name: str, live: dict[str, Point], rng: np.random.Generator,
                  n_queries: int) -> list[str]:
    if not live:
        return []
    kind = name.removeprefix("c_")
    ids = sorted(live)
    position = {i: j for j, i in enumerate(ids)}
    matrix = np.stack([np.frombuffer(live[i][0], dtype=np.float32) for i in ids])
    out = []
    for q in rng.standard_normal((n_queries, DIM)).astype(np.float32):
        tenant = TENANTS[int(rng.integers(len(TENANTS)))] if rng.random() < 0.3 else None
        mask = np.array([tenant is None or live[i][2] == tenant for i in ids])
        if not mask.any():
            continue
        true = -((matrix - q) ** 2).sum(1)
        order = [j for j in np.argsort(-true, kind="stable") if mask[j]][:10]
        hits = client.search(name, q, k=10, params=EXHAUSTIVE[kind] or None, tenant=tenant)
        for h in hits:
            j = position.get(h.id, -1)
            if j < 0 or not mask[j]:
                out.append(f"{name}: search returned {h.id!r}, not a live point{'' if tenant is None else ' of ' + tenant}")
            elif abs(h.score - true[j]) > 1e-3 * max(1.0, abs(true[j])):
                out.append(f"{name}: {h.id!r} scored {h.score:.5f}, its true score is {true[j]:.5f}")
        found = {h.id for h in hits} & {ids[j] for j in order}
        need = len(order) if kind == "flat" else int(np.ceil(0.9 * len(order)))
        if len(found) < need:
            out.append(f"{name}: search found {len(found)} of brute force's top {len(order)}")
    return out


def run_round(data_dir: Path, scenario: Scenario, model: Model, round_no: int, rng: np.random.Generator,
              *, limit: int | None = None, offset: int = 0, sig: int | None = None) -> RoundReport:
    """One round: start, verify, write (and read) until the kill."""
    started = time.monotonic()
    server = Server(data_dir)
    try:
        return _round(server, scenario, model, round_no, rng, limit, offset, sig, started)
    finally:
        server.stop(signal.SIGKILL)  # a no-op after the kill; never leaves a server behind on an error


def _round(server: Server, scenario: Scenario, model: Model, round_no: int, rng: np.random.Generator,
           limit: int | None, offset: int, sig: int | None, started: float) -> RoundReport:
    from lamina.service.client import Client

    with Client(server.target, timeout=120) as client:  # a first request opens (and replays) the collection
        violations = verify(client, model, rng)
        _create(client, scenario.kinds, model)
        stop = threading.Event()
        if sig is None:
            sig = signal.SIGTERM if rng.random() < scenario.graceful else signal.SIGKILL
        delay = float(rng.uniform(*scenario.kill_after))
        reader = threading.Thread(target=_read, args=(client, scenario, stop, np.random.default_rng(round_no)))
        reader.start()
        if limit is None:
            killer = threading.Timer(delay, server.stop, (sig,))
            killer.start()
            writes = _write(client, scenario, model, rng, round_no, stop)
            killer.join()
        else:  # write exactly `limit` points, then stop
            writes = _write(client, scenario, model, rng, round_no, stop, limit=limit, offset=offset)
            server.stop(sig)
        stop.set()
        reader.join()
    return RoundReport(round_no, signal.Signals(sig).name, writes, violations, time.monotonic() - started)


def final_check(data_dir: Path, model: Model, rng: np.random.Generator) -> list[str]:
    from lamina.service.client import Client

    server = Server(data_dir)
    try:
        with Client(server.target, timeout=120) as client:
            return verify(client, model, rng)
    finally:
        server.stop(signal.SIGTERM)


def run_scenario(data_dir: Path, scenario: Scenario, progress: Any = None) -> dict[str, Any]:
    """Every round of `scenario`, then a last check; returns {"rounds", "violations", ...}."""
    rng = np.random.default_rng(scenario.seed)
    model = Model()
    reports = []
    if scenario.threshold is not None:  # under the threshold, graceful; then over it, killed
        below = SPANN_BUILD // 2 if scenario.threshold == "spann" else IVF_TRAIN - 50
        reports.append(run_round(data_dir, scenario, model, 0, rng, limit=below, sig=signal.SIGTERM))
        reports.append(run_round(data_dir, scenario, model, 1, rng, limit=60, offset=below, sig=signal.SIGKILL))
    for r in range(len(reports), scenario.rounds):
        reports.append(run_round(data_dir, scenario, model, r, rng))
        if progress:
            progress(f"round {r}: {reports[-1].signal} after {reports[-1].writes} writes, "
                     f"{len(reports[-1].violations)} violation(s)")
            for violation in reports[-1].violations[:5]:
                progress(f"  VIOLATION {violation}")
    last = final_check(data_dir, model, rng)
    violations = [v for rep in reports for v in rep.violations] + last
    return {"kinds": list(scenario.kinds), "threshold": scenario.threshold, "rounds": len(reports),
            "sigkill": sum(r.signal == "SIGKILL" for r in reports),
            "sigterm": sum(r.signal == "SIGTERM" for r in reports),
            "acknowledged_writes": sum(r.writes for r in reports),
            "points": {n: sum(p is not None for p in s.values()) for n, s in model.state.items()},
            "violations": violations, "seconds": sum(r.seconds for r in reports)}
