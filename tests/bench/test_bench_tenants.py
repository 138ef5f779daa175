"""`lamina bench tenants` on a tiny workload: the workload's shape, the ground truth, the
report's contract, and that the exact systems are exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lamina.bench.report import RESULT_KEYS
from lamina.bench.tenants import (
    SharedIVF,
    _filter_phase,
    make_workload,
    recall_rows,
    run_tenants,
    size_bucket,
    summary_lines,
    tenant_ground_truth,
    tenant_queries,
)


@pytest.fixture(scope="module")
def workload():
    return make_workload(4_000, 16, 40, seed=3)


def test_workload_follows_curators_protocol(workload):
    sizes = np.array([len(a) for a in workload.access])
    owned = np.bincount(workload.owner, minlength=40)
    assert owned.sum() == 4_000 and owned[0] > 5 * np.median(owned)  # Zipfian: a head and a long tail
    for t in range(40):  # each tenant accesses what it owns plus what was shared with it
        mine = set(np.flatnonzero(workload.owner == t).tolist())
        shared = set(workload.shares[workload.shares[:, 1] == t, 0].tolist())
        assert set(workload.access[t].tolist()) == mine | shared
        assert np.all(np.diff(workload.access[t]) > 0)
    assert not (workload.owner[workload.shares[:, 0]] == workload.shares[:, 1]).any()
    assert 0 < len(workload.shares) <= 0.1 * 4_000 * 3
    assert sizes.sum() == 4_000 + len(workload.shares)
    assert workload.filter_values.min() >= 0


def test_ground_truth_is_the_tenants_exact_top_k(workload):
    tenants, queries = tenant_queries(workload, 5)
    truth = tenant_ground_truth(workload, tenants, queries, 10)
    for tenant, query, row in zip(tenants.tolist(), queries, truth):
        ids = workload.access[tenant]
        dist = ((workload.vectors[ids] - query) ** 2).sum(1)
        expected = ids[np.argsort(dist, kind="stable")[:10]]
        assert set(row[row >= 0].tolist()) == set(expected.tolist())


def test_recall_rows_and_buckets():
    found = np.array([[1, 2, 3], [4, -1, -1]])
    truth = np.array([[3, 2, 9], [4, -1, -1]])
    np.testing.assert_allclose(recall_rows(found, truth), [2 / 3, 1.0])
    assert [size_bucket(s) for s in (1, 999, 1_000, 99_999, 100_000)] == ["<1k", "<1k", "1k-10k", "10k-100k", ">=100k"]


@pytest.mark.slow
def test_run_tenants_report(tmp_path):
    report = run_tenants(3_000, 16, 30, per_bucket=10, filter_queries=10, selectivities=(0.01, 0.5),
                         inserts=20, threshold=500, out_dir=tmp_path, progress=False)
    json.dumps(report)
    assert (tmp_path / "tenants-curator-3000-16-30.json").exists()
    rows = report["results"]
    assert all(set(RESULT_KEYS) <= set(row) for row in rows)
    systems = {row["system"] for row in rows}
    assert systems == {"lamina-tenants", "faiss-ivf-selector", "faiss-per-tenant", "lamina-planner"}
    tenant_rows = [r for r in rows if r["bucket"] == "all" and r["system"] != "lamina-planner"]
    assert all(0 <= r["recall@10"] <= 1 and 0 < r["p50_ms"] <= r["p99_ms"] for r in tenant_rows)
    assert all(r["memory_bytes"] > 3_000 * 16 * 4 for r in tenant_rows)
    lamina = [r for r in tenant_rows if r["system"] == "lamina-tenants"]
    assert min(r["recall@10"] for r in lamina) >= 0.95 and all(r["complete"] == 1.0 for r in lamina)
    per_tenant = [r for r in tenant_rows if r["system"] == "faiss-per-tenant"]
    assert all(r["recall@10"] == 1.0 for r in per_tenant)  # every tenant is small enough for flat
    planner = {(r["selectivity"], r["params"]["scan_codes"]): r for r in rows if r["system"] == "lamina-planner"}
    for codes in ("scattered", "clustered"):  # the default, and the filtered field as clustering key
        assert planner[0.01, codes]["plan"] == "brute_force" and planner[0.01, codes]["recall@10"] == 1.0
        # 1,500 ids: above the brute-force threshold, but the planner has scan codes, and scores up
        # to 4,096 ids exactly (PlannerConfig.exact_threshold)
        assert planner[0.5, codes]["plan"] == "brute_force" and planner[0.5, codes]["recall@10"] == 1.0
    assert planner[0.5, "clustered"]["memory_bytes"] > planner[0.5, "scattered"]["memory_bytes"]
    inserts = [r for r in rows if r["bucket"] == "insert+grant"]
    assert len(inserts) == 3 and all(r["insert_grant_p50_us"] > 0 for r in inserts)
    after_write = {r["system"]: r for r in rows if r["bucket"] == "search after write"}
    assert set(after_write) == {"lamina-tenants", "faiss-ivf-selector"}
    assert all(0 < r["p50_ms"] <= r["p99_ms"] and r["queries"] == 5 for r in after_write.values())
    assert any("search after a write" in line for line in summary_lines(report))


@pytest.mark.slow
def test_cli_bench_tenants_prints_the_report_last(tmp_path):
    from click.testing import CliRunner

    from lamina.cli import main

    result = CliRunner().invoke(main, ["bench", "tenants", "--n", "2000", "--dim", "8", "--tenants", "10",
                                       "--per-bucket", "5", "--filter-queries", "5", "--json",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "tenants" and report["meta"]["n"] == 2000
    assert (tmp_path / "tenants-curator-2000-8-10.json").exists()


def test_filter_sweep_runs_the_quantized_scan_beside_its_variants():
    """6,000 matching ids: above the exact threshold, so the planner scans codes; the sweep also
    runs it without codes (exact brute force), with fewer or more candidates rescored, and with
    the filtered field as clustering key (its run of clustered codes)."""
    workload = make_workload(12_000, 16, 20, seed=3)
    shared = SharedIVF(workload.vectors, 64)
    memory = {"faiss-ivf-selector": shared.memory_bytes()}
    rows = _filter_phase(workload, shared, 10, 10, (0.5,), 20_000, memory, None)
    planner = [r for r in rows if r["system"] == "lamina-planner"]
    assert [r["plan"] for r in planner] == ["quantized_scan", "brute_force", "quantized_scan", "quantized_scan",
                                            "clustered_scan"]
    assert [r["params"].get("scan_candidates") for r in planner] == [None, None, 128, 1024, None]
    assert [r["params"]["scan_codes"] for r in planner] == ["scattered", "none", "scattered", "scattered",
                                                           "clustered"]
    assert planner[1]["recall@10"] == 1.0 and all(r["complete"] == 1.0 for r in planner)
    assert planner[0]["recall@10"] >= 0.9 and planner[4]["recall@10"] >= 0.9
    assert memory["lamina-planner-clustered"] > memory["lamina-planner"]
    assert memory["lamina-planner"] > memory["faiss-ivf-selector"]  # the payload index and the codes
