"""What the high-water mark costs a `wait=true` write (`lamina bench highwater`).

Every synced write (`Store.write(sync=True)`, the API's wait=true) is followed by one 16-byte
`pwrite` of `catalog.seq` (index/catalog.py, no fsync). This measures write latency on two stores
in the same directory tree, one tracking a high-water mark and one not, write by write side by
side (which goes first alternates), so that the drift of a shared machine and its disk lands on
both; and, apart, the cost of the `note` call alone.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from lamina.index.catalog import HighWater
from lamina.index.store import Store, StoredDoc
from lamina.index.types import CollectionConfig


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


def run(work_dir: Path, writes: int = 2000, dim: int = 128, seed: int = 0) -> dict[str, Any]:
    """`writes` synced single-document writes to each store; the report's latencies in ms."""
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    stores = {"with_highwater": Store(work_dir / "a" / "store"), "without": Store(work_dir / "b" / "store")}
    stores["with_highwater"].track(HighWater(work_dir / "a"))
    rng = np.random.default_rng(seed)
    latencies: dict[str, list[float]] = {name: [] for name in stores}
    try:
        for store in stores.values():
            store.create_collection(CollectionConfig(name="c", dim=dim, metric="l2", encoder=None))
        clock = time.perf_counter
        for i in range(writes):
            doc = StoredDoc(id=f"d{i}", metadata={"i": i},
                            vectors={"dense": rng.standard_normal(dim).astype(np.float32).tobytes()})
            for name in (("with_highwater", "without") if i % 2 == 0 else ("without", "with_highwater")):
                start = clock()
                stores[name].write("c", [doc], sync=True)
                latencies[name].append(clock() - start)
        (work_dir / "c").mkdir()
        mark = HighWater(work_dir / "c")
        mark.open(0)
        note: list[float] = []
        for seq in range(1, writes + 1):
            start = clock()
            mark.note(seq)
            note.append(clock() - start)
        mark.close()
    finally:
        for store in stores.values():
            store.close()
    report = {name: _percentiles(values) for name, values in latencies.items()}
    report["note_alone"] = _percentiles(note)
    with_, without = report["with_highwater"], report["without"]
    report["overhead_p50_pct"] = 100 * (with_["p50_ms"] / without["p50_ms"] - 1)
    report["overhead_p99_pct"] = 100 * (with_["p99_ms"] / without["p99_ms"] - 1)
    report["writes"] = writes
    return report
