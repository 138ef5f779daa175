"""`lamina bench shards`: what sharding on Ray costs, against one in-process `Collection`.

Random unit vectors (flat index, so every configuration returns the same answers), written in
batches of 1,000, then single queries one at a time (k=10, with payload):
- `in-process`: a `Collection` in this process, no Ray;
- `ray-N`: a `ShardedCollection` of N shard actors on this machine (simulated nodes: they share
  its cores, so read the figures as overhead, not speed-up).
Per configuration: build seconds and points/s, QPS, p50/p99 latency, and the scatter-gather
overhead: the p50 latency minus that of the in-process collection.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lamina.retrieval.collection import Database
from lamina.retrieval.query import SearchRequest

BATCH = 1000


def _data(n: int, dim: int, queries: int, seed: int = 0) -> tuple[list[dict[str, Any]], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [{"id": f"v{i}", "vector": vectors[i], "metadata": {"i": i}} for i in range(n)]
    return points, rng.standard_normal((queries, dim)).astype(np.float32)


def _measure(coll: Any, points: list[dict[str, Any]], queries: np.ndarray) -> tuple[dict[str, Any], list[list[str]]]:
    started = time.perf_counter()
    for start in range(0, len(points), BATCH):
        coll.upsert(points[start:start + BATCH])
    build = time.perf_counter() - started
    for q in queries[:20]:  # warm-up
        coll.query(SearchRequest(q, 10))
    latencies, answers = [], []
    started = time.perf_counter()
    for q in queries:
        t0 = time.perf_counter()
        hits = coll.query(SearchRequest(q, 10)).hits
        latencies.append(time.perf_counter() - t0)
        answers.append([h.id for h in hits])
    wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1e3
    return {"build_s": round(build, 3), "build_points_per_s": round(len(points) / build, 1),
            "qps": round(len(queries) / wall, 1), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}, answers


def run_shards(counts: Sequence[int], *, n: int = 20000, dim: int = 384, queries: int = 300) -> dict[str, Any]:
    from lamina.retrieval.sharded import ShardedCollection, ensure_ray

    points, qs = _data(n, dim, queries)
    results = []
    with tempfile.TemporaryDirectory(prefix="lamina-bench-shards-") as tmp:
        db = Database(Path(tmp) / "one")
        try:
            row, truth = _measure(db.create_collection("b", dim=dim, encoder=None, sparse=None), points, qs)
        finally:
            db.close()
        results.append({"system": "in-process", "shards": 1, **row, "overhead_p50_ms": 0.0, "same_answers": 1.0})
        base = row["p50_ms"]
        ensure_ray(num_cpus=2)
        for count in counts:
            coll = ShardedCollection.create(Path(tmp) / f"s{count}", "b", count, dim=dim, encoder=None, sparse=None,
                                          timeout_s=600.0)  # a shared machine: a batch may queue long
            try:
                row, answers = _measure(coll, points, qs)
            finally:
                coll.close()
            same = float(np.mean([a == t for a, t in zip(answers, truth)]))
            results.append({"system": f"ray-{count}", "shards": count, **row,
                            "overhead_p50_ms": round(row["p50_ms"] - base, 3), "same_answers": same})
    return {"benchmark": "shards", "dataset": f"random-{n}-{dim}", "k": 10, "queries": queries,
            "machine": "2 cores, shared with other sessions; shards are actors on this one machine",
            "results": results}
