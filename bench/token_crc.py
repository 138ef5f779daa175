"""What checking token rows on read costs a rerank's fetch (`lamina bench token-crc`).

One saved `TokenStore` (float16 rows, memory-mapped, every page cached), opened twice: as saved
(each read checks the gathered rows of every document against its CRC32C, index/token_crc.py) and
with the CRCs dropped from its segments (unchecked). Each "query" fetches `candidates` random
documents with `get_packed` (what `retrieval/rerank.py` does) and scores them with MaxSim against
random query tokens, so the figure is relative to the rerank stage, not to the fetch alone. The two
stores are timed query by query side by side, which goes first alternating.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lamina.index.multivector import TokenStore


def _unchecked(store: TokenStore) -> TokenStore:
    view = store._view
    store._view = replace(view, segments=tuple(replace(s, crcs=None) for s in view.segments))
    return store


def run(work_dir: Path, docs: int = 20_000, dim: int = 128, tokens: int = 120, candidates: int = 30,
        queries: int = 500, seed: int = 0) -> dict[str, Any]:
    shutil.rmtree(work_dir, ignore_errors=True)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(tokens // 2, tokens * 3 // 2, docs)
    matrices = [rng.standard_normal((int(n), dim)).astype(np.float32) for n in lengths]
    TokenStore.build(np.arange(docs, dtype=np.int64), matrices).save(work_dir)
    del matrices
    stores = {"checked": TokenStore.load(work_dir), "unchecked": _unchecked(TokenStore.load(work_dir))}
    for store in stores.values():  # every page cached, both ways
        for _ in store.iter_blocks():
            pass
    latencies: dict[str, list[float]] = {name: [] for name in stores}
    clock = time.perf_counter
    for i in range(queries):
        ids = rng.choice(docs, candidates, replace=False)
        query = rng.standard_normal((32, dim)).astype(np.float32)
        for name in (("checked", "unchecked") if i % 2 == 0 else ("unchecked", "checked")):
            start = clock()
            rows, offsets = stores[name].get_packed(ids)
            sims = query @ rows.T  # MaxSim: best row of each document per query token, summed
            np.maximum.reduceat(sims, offsets[:-1], axis=1).sum(axis=0)
            latencies[name].append(clock() - start)
    report: dict[str, Any] = {"docs": docs, "dim": dim, "mean_tokens": float(lengths.mean()),
                              "candidates": candidates, "queries": queries}
    for name, values in latencies.items():
        ms = np.asarray(values) * 1e3
        report[name] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
    report["overhead_p50_pct"] = 100 * (report["checked"]["p50_ms"] / report["unchecked"]["p50_ms"] - 1)
    return report
