"""`lamina bench facet`: facet latency from the payload index beside a brute-force numpy count.

Workload: n documents with a keyword field `topic` (n_values values, Zipf-distributed, s = 1.1),
a numeric field `year` (integers 1900..2024, uniform) and a numeric field `r` (uniform in
[0, 1e6)) that the filters range over, at selectivities 100% (no filter), 50%, 1% and 0.01%.

Systems, side by side in one run, single-threaded:

- `lamina-payload`: what `Collection.facet` runs under its read lock: `PayloadIndex.evaluate`
  for the filter, then the facet kernels (`lamina.index.facets`) over the field's cached pairs;
- `numpy-brute-force`: the same question over plain per-document columns (a value code per
  document, the numbers as float64): the filter as a numpy mask, then `np.bincount` and a
  lexsort for the top values, `min`/`max`/`np.histogram` for the numeric field.

Each answer is checked equal to the other's (`exact`). A third row per field, `lamina-after-write`,
times the first facet after a write, which rebuilds the field's pairs from the postings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from lamina.bench.report import make_report, write_report
from lamina.index.facets import FacetResult, check_bins, facet
from lamina.index.filters import Filter, Range
from lamina.index.payload import PayloadIndex

SELECTIVITIES: tuple[float, ...] = (1.0, 0.5, 0.01, 0.0001)
R_RANGE = 1_000_000.0
LIMIT, BINS = 10, 10


def make_columns(n: int, n_values: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The workload's columns: topic codes (n,) int64 Zipf over n_values, year and r (n,) float64."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_values + 1) ** 1.1
    topic = rng.choice(n_values, size=n, p=weights / weights.sum()).astype(np.int64)
    return {"topic": topic, "year": rng.integers(1900, 2025, size=n).astype(np.float64),
            "r": np.floor(rng.uniform(0, R_RANGE, size=n))}


def build_index(columns: Mapping[str, np.ndarray], names: list[str]) -> PayloadIndex:
    """A PayloadIndex over the columns through `add_many`, as a collection's writes build it."""
    index = PayloadIndex({"topic": "keyword", "year": "numeric", "r": "numeric"})
    topic, year, r = (columns[k].tolist() for k in ("topic", "year", "r"))
    metadatas = [{"topic": names[t], "year": int(y), "r": x} for t, y, x in zip(topic, year, r)]
    index.add_many(np.arange(len(metadatas), dtype=np.int64), metadatas)
    return index


def lamina_facet(index: PayloadIndex, key: str, flt: Filter | None) -> FacetResult:
    allowed = None if flt is None else index.evaluate(flt)
    documents = len(allowed) if allowed is not None else len(index)
    return facet(index.facet_pairs(key), key, allowed, index.tombstones(), documents,
                 limit=LIMIT, bins=check_bins(BINS) if key == "year" else None)


def brute_facet(columns: Mapping[str, np.ndarray], names: list[str], key: str, threshold: float | None) -> tuple:
    mask = None if threshold is None else columns["r"] < threshold
    if key == "topic":
        codes = columns["topic"] if mask is None else columns["topic"][mask]
        counts = np.bincount(codes, minlength=len(names))
        order = np.lexsort((np.arange(len(names)), -counts))[:LIMIT]
        return tuple((names[c], int(counts[c])) for c in order if counts[c])
    year = columns["year"] if mask is None else columns["year"][mask]
    if not len(year):
        return (0, None, None, (), ())
    counts, edges = np.histogram(year, bins=BINS)
    return (len(year), float(year.min()), float(year.max()), tuple(edges.tolist()), tuple(counts.tolist()))


def _as_tuple(result: FacetResult) -> tuple:
    if result.kind == "keyword":
        return tuple((c.value, c.count) for c in result.counts)
    s = result.stats
    return (s.count, s.min, s.max, s.edges, s.counts)


def _time(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float]]:
    out, times = None, []
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        times.append(1e3 * (time.perf_counter() - started))
    return out, times


def run_facet(n: int, n_values: int, *, repeats: int = 20, seed: int = 0,
              out_dir: Path | None = None) -> dict[str, Any]:
    """Every (field, selectivity) case for both systems, plus the first facet after a write."""
    columns = make_columns(n, n_values, seed)
    names = [f"v{i:06d}" for i in range(n_values)]  # code order is value order: the tie order agrees
    started = time.perf_counter()
    index = build_index(columns, names)
    build_s = time.perf_counter() - started
    rows: list[dict[str, Any]] = []
    for key in ("topic", "year"):
        for selectivity in SELECTIVITIES:
            threshold = None if selectivity >= 1 else selectivity * R_RANGE
            flt = None if threshold is None else Filter(must=(Range("r", lt=threshold),))
            lamina_facet(index, key, flt)  # warm: the field's pairs are built once per write
            ours, ours_ms = _time(lambda: lamina_facet(index, key, flt), repeats)
            theirs, theirs_ms = _time(lambda: brute_facet(columns, names, key, threshold), repeats)
            exact = _as_tuple(ours) == theirs
            for system, times in (("lamina-payload", ours_ms), ("numpy-brute-force", theirs_ms)):
                rows.append({"system": system, "params": {"field": key, "selectivity": selectivity},
                             "matching": ours.documents, "exact": exact,
                             "p50_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99))})
        index.add(n, {"topic": names[0], "year": 2000, "r": R_RANGE + 1})  # r beyond every filter
        _, cold_ms = _time(lambda: lamina_facet(index, key, None), 1)
        rows.append({"system": "lamina-after-write", "params": {"field": key, "selectivity": 1.0},
                     "matching": n + 1, "p50_ms": cold_ms[0], "p99_ms": cold_ms[0]})
        index.remove(n, {"topic": names[0], "year": 2000, "r": R_RANGE + 1})
    report = make_report("facet", f"synthetic-{n}-{n_values}", rows,
                         meta={"n": n, "values": n_values, "repeats": repeats, "build_s": round(build_s, 2),
                               "limit": LIMIT, "bins": BINS, "threads": 1})
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The report as a markdown table, one line per (field, selectivity, system)."""
    lines = ["| field | selectivity | matching | system | exact | p50 ms | p99 ms |", "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        p = r["params"]
        exact = "-" if r.get("exact") is None else ("yes" if r["exact"] else "NO")
        lines.append(f"| {p['field']} | {p['selectivity']:.2%} | {r['matching']} | {r['system']} | {exact} | "
                     f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")
    return lines
