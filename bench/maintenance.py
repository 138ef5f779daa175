"""`lamina bench maintenance`: search latency while index maintenance runs (issue 23).

For each maintenance job, one in-process collection is filled to just below the job's threshold;
one client thread then searches it back to back, and the run records the search latencies

  steady      for `steady_s` seconds with nothing else running;
  background  from the write that crosses the threshold (or the `snapshot()` call) until the
              job has been swapped in: the job runs on the collection's maintenance worker;
  inline      while the same job runs under the collection's write lock (what Lamina did before:
              the build, or the snapshot's file writing, inside the lock), on the same collection.

Jobs: IVF training, scan-code (PQ) training of a flat collection, token-codec training, the
tenant tree's re-clustering, the SPANN build, and a snapshot. The target is background p99 <= 2x
steady p99. The data is synthetic (random vectors; texts of random words for the token codec,
embedded by a table look-up, no model), so the figures measure locking, not encoders.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lamina.retrieval.collection import Collection, Database

JOBS = ("ivf-train", "scan-codes-train", "token-codec-train", "tenant-retrain", "spann-build", "snapshot")
BATCH = 10_000


class TableTokenEncoder:
    """Texts of words "w<number>": each word's token vector is a row of a fixed random table (unit rows)."""

    name = "table-tokens"

    def __init__(self, dim: int = 32, words: int = 4_096, seed: int = 0) -> None:
        table = np.random.default_rng(seed).standard_normal((words, dim)).astype(np.float32)
        self.table = table / np.linalg.norm(table, axis=1, keepdims=True)
        self.dim = dim

    def _rows(self, text: str) -> np.ndarray:
        numbers = np.array([int(w) for w in re.findall(r"w(\d+)", text)] or [0], dtype=np.int64)
        return self.table[numbers % len(self.table)]

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self._rows(t) for t in texts]

    encode_queries = encode_documents


class TableDenseEncoder(TableTokenEncoder):
    """The mean of the token rows, normalised: a dense encoder for the same texts."""

    name = "table-dense"

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.stack([m.mean(0) for m in TableTokenEncoder.encode_documents(self, texts)])
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    encode_documents = _encode  # type: ignore[assignment]
    encode_queries = _encode  # type: ignore[assignment]


@dataclass
class Setup:
    """A collection just below a job's threshold: `trigger` starts the job the way Lamina does,
    `inline` runs the same work under the write lock, `search` is one client query."""

    coll: Collection
    trigger: Callable[[], Any]
    inline: Callable[[], Any]
    search: Callable[[int], Any]


class Searcher:
    """One thread searching back to back, recording (start, latency) of each search."""

    def __init__(self, search: Callable[[int], Any]) -> None:
        self._search, self._log, self._lock = search, [], threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            started = time.perf_counter()
            self._search(i)
            with self._lock:
                self._log.append((started, time.perf_counter() - started))
            i += 1

    def between(self, start: float, stop: float) -> np.ndarray:
        """Latencies (s) of the searches that ran during [start, stop) (started before `stop`,
        finished after `start`), once each has finished: a search blocked by a job counts."""
        while True:
            with self._lock:
                if self._log and self._log[-1][0] >= stop or self._stop.is_set():
                    return np.array([t for s, t in self._log if s < stop and s + t > start])
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

def _summary(times: np.ndarray, seconds: float) -> dict[str, Any]:
    if not len(times):
        return {"searches": 0, "seconds": round(seconds, 3)}
    return {"searches": int(len(times)), "seconds": round(seconds, 3),
            "p50_ms": round(1e3 * float(np.percentile(times, 50)), 3),
            "p99_ms": round(1e3 * float(np.percentile(times, 99)), 3),
            "max_ms": round(1e3 * float(times.max()), 3)}


def _points(data: np.ndarray, start: int, tenants: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"p{start + i}", "vector": v, **({"tenant": f"t{(start + i) % tenants}"} if tenants else {})}
            for i, v in enumerate(data)]


def _fill(coll: Collection, data: np.ndarray, tenants: int = 0) -> None:
    for start in range(0, len(data), BATCH):
        coll.upsert(_points(data[start:start + BATCH], start, tenants))
        coll.wait_for_maintenance()


def _part_inline(coll: Collection, part: str) -> Callable[[], None]:
    def build_locked() -> None:
        with coll._lock.write():  # the old way: the whole build inside the write lock
            built = coll.indexes.build_part(part, coll.store)
            setattr(coll.indexes, part, built)
    return build_locked


def _vector_setup(db: Database, job: str, n: int, dim: int, rng: np.random.Generator) -> Setup:
    kind = {"ivf-train": "ivf", "scan-codes-train": "flat", "snapshot": "flat"}[job]
    coll = db.create_collection(job, dim, metric="ip", encoder=None, sparse=False, index={"kind": kind})
    coll.index.train_size = n if job != "snapshot" else 10_000
    data = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((256, dim)).astype(np.float32)
    _fill(coll, data[:-1] if job != "snapshot" else data)
    last = _points(data[-1:], n - 1)  # the one write that crosses the threshold
    search = lambda i: coll.search(queries[i % len(queries)], 10, with_payload=False)  # noqa: E731
    if job == "snapshot":
        def snapshot_inline() -> None:
            with coll._lock.write():  # the old way: the files written inside the write lock
                coll._write_snapshot()
        return Setup(coll, coll.snapshot, snapshot_inline, search)
    return Setup(coll, lambda: coll.upsert(last), _part_inline(coll, "dense"), search)


def _tenant_setup(db: Database, n: int, dim: int, rng: np.random.Generator) -> Setup:
    coll = db.create_collection("tenants", dim, metric="l2", encoder=None, sparse=False, tenant_tree=True)
    data = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((256, dim)).astype(np.float32)
    _fill(coll, data[:-1], tenants=16)  # trained at 10,000; re-clustered again at 4x that
    last = _points(data[-1:], n - 1, tenants=16)
    search = lambda i: coll.search(queries[i % len(queries)], 10, tenant=f"t{i % 16}", with_payload=False)  # noqa: E731
    return Setup(coll, lambda: coll.upsert(last), _part_inline(coll, "tenants"), search)


def _token_setup(db: Database, n_rows: int, codec: str, rng: np.random.Generator) -> Setup:
    coll = db.create_collection("tokens", encoder="table", sparse=False, multivector={"codec": codec})
    coll.indexes.tokens.train_size = n_rows
    words = 24
    docs = n_rows // words + 1
    texts = [" ".join(f"w{w}" for w in rng.integers(0, 4_096, words)) for _ in range(docs)]
    cut = docs - 1
    for start in range(0, cut, 2_000):
        coll.upsert([{"id": f"d{i}", "text": texts[i]} for i in range(start, min(start + 2_000, cut))])
    last = [{"id": f"d{i}", "text": texts[i]} for i in range(cut, docs)]
    queries = [" ".join(f"w{w}" for w in rng.integers(0, 4_096, 6)) for _ in range(64)]
    search = lambda i: coll.search(queries[i % len(queries)], 10, rerank=50, with_payload=False)  # noqa: E731
    return Setup(coll, lambda: coll.upsert(last), _part_inline(coll, "tokens"), search)


def _spann_setup(db: Database, n: int, dim: int, rng: np.random.Generator) -> Setup:
    coll = db.create_collection("spann", dim, metric="l2", encoder=None, sparse=False,
                                index={"kind": "spann", "spann": {"build_size": n}})
    data = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((256, dim)).astype(np.float32)
    _fill(coll, data[:-1])
    last = _points(data[-1:], n - 1)
    search = lambda i: coll.search(queries[i % len(queries)], 10, with_payload=False)  # noqa: E731

    def inline() -> None:  # the build, as `add` ran it in place, inside the write lock
        from lamina.index.spann import SpannIndex

        with coll._lock.write():
            ids = np.arange(n, dtype=np.int64)
            SpannIndex.build(ids, data, metric="l2", config=coll.index.config,
                             path=Path(tempfile.mkdtemp(prefix="lamina-bench-spann-")))
    return Setup(coll, lambda: coll.upsert(last), inline, search)


def _window(searcher: Searcher, action: Callable[[], Any], coll: Collection) -> dict[str, Any]:
    started = time.perf_counter()
    action()
    coll.wait_for_maintenance()
    stopped = time.perf_counter()
    return {**_summary(searcher.between(started, stopped), stopped - started), "job_s": round(stopped - started, 3)}


def measure(setup: Setup, steady_s: float) -> dict[str, Any]:
    """Latencies in the three windows (module docstring), in one run on one collection."""
    searcher = Searcher(setup.search)
    try:
        time.sleep(0.5)  # warm-up
        started = time.perf_counter()
        time.sleep(steady_s)
        steady = _summary(searcher.between(started, time.perf_counter()), steady_s)
        background = _window(searcher, setup.trigger, setup.coll)
        time.sleep(0.5)
        inline = _window(searcher, setup.inline, setup.coll)
    finally:
        searcher.stop()
    ratio = background.get("p99_ms", float("inf")) / steady["p99_ms"] if steady.get("p99_ms") else None
    return {"steady": steady, "background": background, "inline": inline,
            "background_p99_over_steady": None if ratio is None else round(ratio, 2),
            "meets_target": ratio is not None and ratio <= 2.0}


def run(jobs: Sequence[str] = JOBS, *, n: int = 100_000, dim: int = 96, token_rows: int = 65_536,
        token_codec: str = "pq8", tenant_n: int = 40_000, spann_n: int = 50_000, steady_s: float = 3.0,
        seed: int = 0, data_dir: Path | None = None) -> dict[str, Any]:
    """Measure each job; returns {"config": ..., "jobs": {job: measure(...)}}."""
    unknown = set(jobs) - set(JOBS)
    if unknown:
        raise ValueError(f"unknown job(s) {sorted(unknown)}; expected some of {', '.join(JOBS)}")
    rng = np.random.default_rng(seed)
    tokens, dense = TableTokenEncoder(), TableDenseEncoder()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        with Database(tmp, encoder_loader=lambda name: dense, token_loader=lambda name: tokens) as db:
            for job in jobs:
                if job == "tenant-retrain":
                    setup = _tenant_setup(db, tenant_n, dim, rng)
                elif job == "token-codec-train":
                    setup = _token_setup(db, token_rows, token_codec, rng)
                elif job == "spann-build":
                    setup = _spann_setup(db, spann_n, dim, rng)
                else:
                    setup = _vector_setup(db, job, n, dim, rng)
                results[job] = measure(setup, steady_s)
                db.drop_collection(setup.coll.name)
    config = {"n": n, "dim": dim, "token_rows": token_rows, "token_codec": token_codec, "tenant_n": tenant_n,
              "spann_n": spann_n, "steady_s": steady_s, "seed": seed, "search_threads": 1}
    return {"config": config, "jobs": results}
