"""`lamina bench ingest` runs end to end on a small corpus and reports every phase."""

from __future__ import annotations

from lamina.bench.ingest import run_ingest


def test_bench_ingest_reports_each_phase():
    report = run_ingest(40, chunk_tokens=64, overlap=8)
    rows = {r["system"]: r for r in report["results"]}
    assert set(rows) == {"chunking", "store write", "end to end", "unchanged re-ingest", "end to end + bm25"}
    # every phase ingests the same chunks: the corpus is sized to about the chunks asked for
    assert len({r["chunks"] for r in rows.values()}) == 1 and 30 <= rows["chunking"]["chunks"] <= 50
    assert all(r["chunks_per_s"] > 0 for r in rows.values())
    assert rows["end to end"]["target_met"] in (True, False) and "stub" in report["encoding"]
