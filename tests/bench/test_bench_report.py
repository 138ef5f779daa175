"""The report contract, its JSON file, table and plot (lamina.bench.report)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from lamina.bench.report import (
    RESULT_KEYS,
    make_report,
    pareto_frontier,
    plot_recall_qps,
    print_table,
    read_report,
    write_report,
)

ROWS = [
    {"system": "lamina-ivf", "params": {"nprobe": 1}, "recall@10": 0.5, "qps": 9000.0, "qps_batch": 50000.0},
    {"system": "lamina-ivf", "params": {"nprobe": 4}, "recall@10": 0.9, "qps": 5000.0},
    {"system": "lamina-ivf", "params": {"nprobe": 2}, "recall@10": 0.8, "qps": 2000.0},  # dominated
    {"system": "faiss-ivf", "params": {"nprobe": 1}, "recall@10": np.float64(0.52), "qps": np.float32(12000),
     "memory_bytes": np.int64(123), "p50_ms": float("nan")},
]


def test_make_report_completes_every_result():
    report = make_report("ann", "synthetic-10-2", ROWS)
    assert list(report)[:2] == ["benchmark", "dataset"] and report["benchmark"] == "ann"
    assert {"faiss", "numpy", "python", "created", "cpus"} <= set(report["meta"])
    for row in report["results"]:
        assert list(row)[:len(RESULT_KEYS)] == list(RESULT_KEYS)  # contract keys first, in order
    first, last = report["results"][0], report["results"][-1]
    assert first["p50_ms"] is None and first["memory_bytes"] is None and first["build_s"] is None
    assert first["qps_batch"] == 50000.0  # extras kept, after the contract keys
    assert type(last["recall@10"]) is float and type(last["memory_bytes"]) is int
    assert last["p50_ms"] is None  # NaN is not JSON
    json.loads(json.dumps(report, allow_nan=False))


def test_make_report_meta_and_errors():
    assert make_report("quality", "x", [], meta={"k": 100})["meta"]["k"] == 100
    with pytest.raises(ValueError, match="system"):
        make_report("ann", "x", [{"params": {}}])


def test_write_and_read_report(tmp_path: Path):
    report = make_report("ann", "synthetic:10:2", ROWS)
    path = write_report(report, tmp_path / "out")
    assert path == tmp_path / "out" / "ann-synthetic-10-2.json"
    assert read_report(path) == report
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="benchmark"):
        read_report(tmp_path / "bad.json")


def test_pareto_frontier():
    recall = np.array([0.5, 0.9, 0.8, 0.9, 0.3, 1.0])
    qps = np.array([900.0, 500.0, 200.0, 400.0, 800.0, 100.0])
    front = pareto_frontier(recall, qps)
    assert front.tolist() == [0, 1, 5]  # increasing recall; (0.8, 200), (0.9, 400), (0.3, 800) dominated


def test_plot_recall_qps_writes_png(tmp_path: Path):
    path = plot_recall_qps(make_report("ann", "d", ROWS), tmp_path / "plots" / "ann.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    empty = plot_recall_qps(make_report("quality", "d", [{"system": "s"}]), tmp_path / "empty.png")
    assert empty.stat().st_size > 0


def test_print_table():
    out = io.StringIO()
    print_table(make_report("ann", "d", ROWS), Console(file=out, width=200))
    text = out.getvalue()
    assert "lamina-ivf" in text and "faiss-ivf" in text and "nprobe=4" in text and "qps_batch" in text
    assert "0.9000" in text and "9,000" in text
