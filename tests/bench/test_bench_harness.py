"""The ANN sweep (lamina.bench.harness) and `run_ann` on small synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from lamina.bench.ann import run_ann
from lamina.bench.datasets import load_dataset
from lamina.bench.groundtruth import exact_knn
from lamina.bench.harness import QUERY_ARGS, Algorithm, FaissPeer, LaminaDense, make_systems, run_sweep
from lamina.bench.report import RESULT_KEYS


@pytest.fixture(scope="module")
def small():
    return load_dataset("synthetic:3000:16", max_queries=200)


@pytest.fixture(scope="module")
def sweep(small):
    return run_sweep(small, make_systems(["flat", "ivf", "hnsw"], small.metric), k=10)


def test_systems_follow_the_protocol():
    systems = make_systems(["flat", "ivf", "hnsw"], "l2")
    assert [s.name for s in systems] == ["lamina-flat", "faiss-flat", "lamina-ivf", "faiss-ivf",
                                         "lamina-hnsw", "faiss-hnsw"]
    assert all(isinstance(s, Algorithm) for s in systems)
    assert [s.name for s in make_systems(["hnsw", "hnsw"], "ip", peers=False)] == ["lamina-hnsw"]
    with pytest.raises(ValueError, match="pq"):
        make_systems(["pq"], "l2")


def test_sweep_returns_the_contract(sweep):
    assert sweep
    for row in sweep:
        assert set(RESULT_KEYS) <= set(row)
        assert row["qps"] > 0 and row["qps_batch"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["memory_bytes"] > 3000 * 16 * 4 * 0.9 and row["build_s"] >= 0
        assert 0.0 <= row["recall@10"] <= 1.0 and row["queries"] == 200 and row["k"] == 10
    json.dumps(sweep)  # plain Python values only


def test_sweep_covers_each_grid(sweep):
    by_system: dict[str, list[dict]] = {}
    for row in sweep:
        by_system.setdefault(row["system"], []).append(row)
    assert set(by_system) == {"lamina-flat", "faiss-flat", "lamina-ivf", "faiss-ivf", "lamina-hnsw", "faiss-hnsw"}
    assert [r["params"] for r in by_system["lamina-hnsw"]] == QUERY_ARGS["hnsw"]
    assert [r["params"] for r in by_system["lamina-ivf"]] == [r["params"] for r in by_system["faiss-ivf"]]
    nlist = by_system["lamina-ivf"][0]["build_params"]["nlist"]
    assert by_system["faiss-ivf"][0]["build_params"]["nlist"] == nlist
    nprobes = [r["params"]["nprobe"] for r in by_system["lamina-ivf"]]
    assert max(nprobes) == nlist  # clipped to nlist, the exhaustive end kept


def test_sweep_recall(sweep):
    recall = {(r["system"], tuple(r["params"].items())): r["recall@10"] for r in sweep}
    assert recall[("lamina-flat", ())] == 1.0 and recall[("faiss-flat", ())] == 1.0
    ivf = [r["recall@10"] for r in sweep if r["system"] == "lamina-ivf"]
    assert ivf[-1] == 1.0 and ivf[0] < 1.0  # nprobe = nlist is exhaustive; nprobe = 1 is not
    assert all(b >= a - 0.02 for a, b in zip(ivf[:-1], ivf[1:], strict=True))  # more lists probed, no worse
    assert max(r["recall@10"] for r in sweep if r["system"] == "lamina-hnsw") >= 0.99


def test_lamina_flat_returns_faiss_flat_ids(small):
    ours, peer = LaminaDense("flat", "l2"), FaissPeer("flat", "l2")
    ours.fit(small.base)
    peer.fit(small.base)
    np.testing.assert_array_equal(ours.batch_query(small.queries, 10), peer.batch_query(small.queries, 10))
    np.testing.assert_array_equal(ours.query(small.queries[0], 10), peer.batch_query(small.queries[:1], 10)[0])
    _, true_ids = exact_knn(small.base, small.queries, 10, "l2")
    np.testing.assert_array_equal(ours.batch_query(small.queries, 10), true_ids)


def test_query_arguments_reach_the_index(small):
    for system in (LaminaDense("hnsw", "l2"), FaissPeer("hnsw", "l2")):
        system.fit(small.base[:500])
        system.set_query_arguments(ef_search=8)
        low = system.batch_query(small.queries, 10)
        system.set_query_arguments(ef_search=400)
        high = system.batch_query(small.queries, 10)
        _, true_ids = exact_knn(small.base[:500], small.queries, 10, "l2")
        assert (high == true_ids).mean() >= (low == true_ids).mean()
    peer = FaissPeer("hnsw", "l2")
    peer.fit(small.base[:50])
    with pytest.raises(ValueError, match="nprobe"):
        peer.set_query_arguments(nprobe=3)  # not an HNSW argument


def test_sweep_other_k_and_custom_grid_and_threads(small):
    threads = faiss.omp_get_max_threads()
    grid = {"ivf": [{"nprobe": 2}]}
    rows = run_sweep(small, make_systems(["ivf"], small.metric, peers=False), k=5, query_args=grid)
    assert [r["params"] for r in rows] == [{"nprobe": 2}]
    assert rows[0]["recall@10"] is None and 0 < rows[0]["recall@5"] <= 1
    rows = run_sweep(small, make_systems(["flat"], small.metric), k=20)
    assert all(r["recall@10"] == 1.0 and r["recall@20"] == 1.0 for r in rows)
    assert faiss.omp_get_max_threads() == threads  # restored


def test_inner_product_dataset(tmp_path: Path):
    vectors = np.random.default_rng(5).standard_normal((1500, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.save(tmp_path / "unit.npy", vectors)
    ds = load_dataset(str(tmp_path / "unit.npy"))
    assert ds.metric == "ip"
    rows = run_sweep(ds, make_systems(["flat", "hnsw"], ds.metric), query_args={"hnsw": [{"ef_search": 200}]})
    assert all(r["recall@10"] >= 0.99 for r in rows)


def test_run_ann_writes_report_and_plot(tmp_path: Path, capsys):
    report = run_ann("synthetic:2000:8:100", ["flat", "hnsw"], out_dir=tmp_path, progress=False)
    assert report["benchmark"] == "ann" and report["dataset"] == "synthetic-2000-8"
    assert {r["system"] for r in report["results"]} == {"lamina-flat", "faiss-flat", "lamina-hnsw", "faiss-hnsw"}
    assert report["meta"]["n"] == 2000 and report["meta"]["metric"] == "l2"
    saved = json.loads((tmp_path / "ann-synthetic-2000-8.json").read_text())
    assert saved["results"] == report["results"]
    png = tmp_path / "ann-synthetic-2000-8.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out == ""  # stdout stays free for the CLI's --json line


def test_run_ann_without_peers_reports_progress_on_stderr(capsys):
    report = run_ann("synthetic:1000:4:20", ["flat"], peers=False, out_dir=None, max_queries=10)
    assert [r["system"] for r in report["results"]] == ["lamina-flat"]
    assert report["results"][0]["queries"] == 10
    captured = capsys.readouterr()
    assert captured.out == "" and "lamina-flat" in captured.err
