"""`lamina bench tenants --bm25-docs N`: what per-tenant BM25 statistics cost (issue #23).

Two collections over the same real passages (`passages.gather_passages`: Cranfield, then text
found on the machine), split among tenants of Zipfian sizes, side by side in one run:

- `tenant-stats`: the default, BM25 against each tenant's own statistics for its documents and its
  bound searches (`lamina.retrieval.tenant_bm25`);
- `collection-stats`: the same with the per-tenant statistics switched off (the BM25 encoder's
  `per_tenant = False`): every tenant's documents and queries use the collection-wide statistics,
  as before the change.

Measured: the memory of the per-tenant statistics beside the sparse index's; the ingest time; the
p50/p99 of tenant-bound sparse and hybrid searches (the whole `Collection.search`, query encoding
included; queries of four words from a random document of the tenant, the two systems alternating
query by query, one thread); and the leak itself: how much a tenant's top-5 scores move when
another tenant adds 30 documents holding the query's terms.
The dense side of hybrid is a random projection of the term counts (no model to load), the same
for both systems.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lamina.bench.passages import gather_passages
from lamina.retrieval.collection import Collection, Database
from lamina.retrieval.encoders.sparse import BM25Encoder

SYSTEMS = ("tenant-stats", "collection-stats")
_BATCH = 1_000


class ProjectionEncoder:
    """Dense vectors as a fixed random projection of WordPiece term counts (no model)."""

    name = "projection"

    def __init__(self, dim: int = 64, seed: int = 7) -> None:
        self._tokens = BM25Encoder()
        self.dim = dim
        rng = np.random.default_rng(seed)
        self._matrix = rng.standard_normal((self._tokens.vocab_size, dim)).astype(np.float32)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        counts, _ = self._tokens.counts(list(texts))
        out = np.asarray(counts.to_scipy(self._tokens.vocab_size) @ self._matrix, dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    encode_queries = encode_documents


def tenant_sizes(n_docs: int, n_tenants: int, exponent: float = 1.0) -> np.ndarray:
    """Zipfian tenant sizes (n_tenants,) summing to n_docs, each at least 1."""
    weights = 1.0 / np.arange(1, n_tenants + 1) ** exponent
    sizes = np.maximum(1, np.floor(weights / weights.sum() * n_docs)).astype(np.int64)
    sizes[0] += n_docs - sizes.sum()
    return sizes


def _open(path: Path, per_tenant: bool, dense: ProjectionEncoder) -> tuple[Database, Collection]:
    def sparse(name: str) -> BM25Encoder:
        encoder = BM25Encoder(idf_side="query")
        encoder.per_tenant = per_tenant
        return encoder

    db = Database(path, encoder_loader=lambda name: dense, sparse_loader=sparse)
    return db, db.create_collection("c", encoder="projection")


def _ingest(colls: dict[str, Collection], texts: Sequence[str], owners: np.ndarray) -> dict[str, float]:
    """Seconds each system took to write every tenant's documents, batch by batch in turns."""
    seconds = dict.fromkeys(colls, 0.0)
    for tenant in np.unique(owners):
        rows = np.flatnonzero(owners == tenant)
        for start in range(0, len(rows), _BATCH):
            points = [{"id": f"d{i}", "text": texts[i]} for i in rows[start:start + _BATCH]]
            for name, coll in colls.items():
                started = time.perf_counter()
                coll.upsert(points, tenant=str(tenant))
                seconds[name] += time.perf_counter() - started
    return seconds


def _queries(texts: Sequence[str], owners: np.ndarray, count: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(texts), size=count, replace=True):
        words = texts[i].split()
        start = int(rng.integers(0, max(1, len(words) - 4)))
        out.append((" ".join(words[start:start + 4]), str(owners[i])))
    return out


def _latencies(colls: dict[str, Collection], queries: list[tuple[str, str]], mode: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in colls}
    for text, tenant in queries:
        for name, coll in colls.items():  # alternating, so that both see the same machine load
            started = time.perf_counter()
            coll.search(text, 10, mode=mode, tenant=tenant)
            times[name].append(1e3 * (time.perf_counter() - started))
    return times


def _leak(colls: dict[str, Collection], texts: Sequence[str], owners: np.ndarray) -> dict[str, dict[str, Any]]:
    """Top-5 scores of a small tenant (the smallest with at least 5 documents, as in the issue) for a
    query of its own, before and after another tenant writes 30 documents holding the query's words."""
    names, sizes = np.unique(owners.astype(str), return_counts=True)
    victim = str(names[sizes >= 5][np.argmin(sizes[sizes >= 5])]) if (sizes >= 5).any() else str(names[0])
    doc = texts[int(np.flatnonzero(owners.astype(str) == victim)[0])]
    query = " ".join(doc.split()[:3])
    out = {}
    for name, coll in colls.items():
        before = [h.score for h in coll.search(query, 5, mode="sparse", tenant=victim)]
        coll.upsert([{"id": f"leak{i}", "text": f"{query} {query} filler {i}"} for i in range(30)],
                    tenant="intruder")
        after = [h.score for h in coll.search(query, 5, mode="sparse", tenant=victim)]
        coll.delete([f"leak{i}" for i in range(30)], tenant="intruder")
        change = max((abs(a - b) / b for a, b in zip(after, before) if b), default=0.0)
        out[name] = {"query": query, "tenant": victim, "tenant_documents": int(sizes[names == victim][0]),
                     "before": before, "after": after,
                     "max_relative_change": change}
    return out


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def run_tenant_bm25(n_docs: int, n_tenants: int, n_queries: int = 400, *, texts: Sequence[str] | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """The report (see the module notes); `texts` replaces the gathered passages (tests)."""
    texts = gather_passages(n_docs) if texts is None else list(texts)[:n_docs]
    sizes = tenant_sizes(len(texts), min(n_tenants, len(texts)))
    owners = np.repeat(np.array([f"t{i}" for i in range(len(sizes))], dtype=object), sizes)
    dense = ProjectionEncoder()
    dense.encode_documents(["warm up"])
    report: dict[str, Any] = {"documents": len(texts), "tenants": len(sizes),
                              "largest_tenant": int(sizes.max()), "systems": {}}
    with tempfile.TemporaryDirectory(prefix="lamina-bench-bm25-") as tmp:
        opened = {name: _open(Path(tmp) / name, name == "tenant-stats", dense) for name in SYSTEMS}
        colls = {name: coll for name, (_, coll) in opened.items()}
        for name, seconds in _ingest(colls, texts, owners).items():
            memory = colls[name].indexes.memory_bytes()
            report["systems"][name] = {"ingest_s": round(seconds, 2), "sparse_bytes": memory.get("sparse", 0),
                                       "tenant_stats_bytes": memory.get("bm25_tenants", 0)}
            if progress:
                print(f"{name}: ingested {len(texts)} documents in {seconds:.1f} s", flush=True)
        queries = _queries(texts, owners, n_queries)
        for mode in ("sparse", "hybrid"):
            _latencies(colls, queries[:20], mode)  # warm-up: numba kernels, caches
            for name, values in _latencies(colls, queries, mode).items():
                report["systems"][name][f"{mode}_p50_ms"] = _pct(values, 50)
                report["systems"][name][f"{mode}_p99_ms"] = _pct(values, 99)
        for name, leak in _leak(colls, texts, owners).items():
            report["systems"][name]["leak"] = leak
        stats = colls["tenant-stats"].indexes.bm25_tenants
        report["tenant_stats_entries"] = int(len(stats._keys) + len(stats._dkeys))
        for db, _ in opened.values():
            db.close()
    return report


def bm25_lines(section: dict[str, Any]) -> list[str]:
    lines = [f"BM25 per tenant: {section['documents']} documents, {section['tenants']} tenants "
             f"(largest {section['largest_tenant']}), {section['tenant_stats_entries']} tenant x term entries"]
    for name, row in section["systems"].items():
        lines.append(f"  {name:17s} stats {row['tenant_stats_bytes'] / 2**20:7.2f} MiB (sparse index "
                     f"{row['sparse_bytes'] / 2**20:.1f} MiB), ingest {row['ingest_s']:.1f} s, sparse p50/p99 "
                     f"{row['sparse_p50_ms']}/{row['sparse_p99_ms']} ms, hybrid p50/p99 {row['hybrid_p50_ms']}/"
                     f"{row['hybrid_p99_ms']} ms, top-5 score change from another tenant's writes "
                     f"{100 * row['leak']['max_relative_change']:.1f}%")
    return lines


def main_bm25(n_docs: int, n_tenants: int, out: Path | None, as_json: bool) -> None:
    """The CLI's part: run, print the summary (to stderr with --json), write
    tenants-bm25-<documents>-<tenants>.json under `out`."""
    import json
    import sys

    section = run_tenant_bm25(n_docs, n_tenants, progress=not as_json)
    for line in bm25_lines(section):
        print(line, file=sys.stderr if as_json else sys.stdout)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"tenants-bm25-{section['documents']}-{section['tenants']}.json").write_text(
            json.dumps(section, indent=2) + "\n")
    if as_json:
        print(json.dumps(section))
