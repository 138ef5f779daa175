"""The one output contract of every `lamina bench` subcommand, and its renderings.

A report is plain JSON:

    {"benchmark": "ann" | "quality" | ...,
     "dataset": "synthetic-200000-128",
     "meta": {"created", "lamina", "python", "numpy", "faiss", "cpus", "gpus", ...},
     "results": [{"system", "params", "recall@10", "qps", "p50_ms", "p99_ms",
                  "memory_bytes", "build_s", ...extras}, ...]}

Every result carries every key of `RESULT_KEYS` (null where it does not apply, e.g.
memory_bytes of a remote collection), so two runs, or two benchmarks, line up column for
column. Extras ("qps_batch", "ndcg@10", "build_params", ...) follow them. `qps` is single-query
throughput; `qps_batch` the throughput of one batched call.

The plot follows ann-benchmarks: recall against QPS (log scale), one Pareto frontier per system.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

RESULT_KEYS: tuple[str, ...] = (
    "system", "params", "recall@10", "qps", "p50_ms", "p99_ms", "memory_bytes", "build_s",
)
REPORT_KEYS: tuple[str, ...] = ("benchmark", "dataset", "meta", "results")


def _plain(value: Any) -> Any:
    """JSON-safe Python values: numpy scalars and arrays unwrapped, NaN and inf as null."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """What the numbers depend on: versions, CPU and GPU counts, time of the run."""
    import faiss

    from lamina.index.dense import gpu_count

    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "lamina": _version("lamina"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": getattr(faiss, "__version__", None),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "gpus": gpu_count(),
    }


def make_result(system: str, params: Mapping[str, Any] | None = None, **values: Any) -> dict[str, Any]:
    """One result row with every contract key (None where not given), extras after them."""
    row: dict[str, Any] = {key: None for key in RESULT_KEYS}
    row.update(values)
    row["system"] = system
    row["params"] = dict(params or {})
    return _plain(row)


def make_report(benchmark: str, dataset: str, results: Iterable[Mapping[str, Any]],
                *, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The standard report: results completed to the contract, JSON-safe, with run metadata.

    Raises ValueError for a result without a "system".
    """
    rows = []
    for i, result in enumerate(results):
        if not result.get("system"):
            raise ValueError(f"result {i} of benchmark {benchmark!r} has no 'system': {dict(result)!r}")
        extras = {key: value for key, value in result.items() if key not in ("system", "params")}
        rows.append(make_result(str(result["system"]), result.get("params"), **extras))
    return {
        "benchmark": benchmark,
        "dataset": dataset,
        "meta": _plain({**environment(), **(meta or {})}),
        "results": rows,
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "dataset"


def report_path(report: Mapping[str, Any], out_dir: str | Path, suffix: str = ".json") -> Path:
    """`<out_dir>/<benchmark>-<dataset>.json`: stable, so a rerun overwrites and diffs cleanly."""
    return Path(out_dir) / f"{_slug(report['benchmark'])}-{_slug(Path(str(report['dataset'])).name)}{suffix}"


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write the report as indented JSON under `out_dir` (created); returns the file's path."""
    path = report_path(report, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(report), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def write_report_and_plot(report: Mapping[str, Any], out_dir: str | Path,
                          say: Callable[[str], None] | None = None) -> tuple[Path, Path]:
    """`write_report` plus its recall-vs-QPS plot beside it (`<benchmark>-<dataset>.png`)."""
    json_path = write_report(report, out_dir)
    png_path = plot_recall_qps(report, report_path(report, out_dir, ".png"))
    if say:
        say(f"wrote {json_path} and {png_path}")
    return json_path, png_path


def read_report(path: str | Path) -> dict[str, Any]:
    """Load a report written by `write_report`, checking its top-level keys."""
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [key for key in ("benchmark", "dataset", "results") if key not in report]
    if missing:
        raise ValueError(f"{path} is not a lamina bench report: missing {', '.join(missing)}")
    return report


# ---------------------------------------------------------------------- table
def _format(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "memory_bytes":
        return f"{value / 2**20:,.1f} MiB"
    if key == "params":
        return " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        if key.startswith(("qps", "queries")):
            return f"{value:,.0f}"
        if key.endswith("_ms"):
            return f"{value:.3f}"
        if key.endswith("_s"):
            return f"{value:.2f}"
        return f"{value:.4f}"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def table_columns(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Contract keys first, then the extras that any result has (metrics before bookkeeping)."""
    extras: list[str] = []
    for row in results:
        extras.extend(key for key in row if key not in RESULT_KEYS and key not in extras)
    metrics = [key for key in extras if "@" in key or key.startswith("qps")]
    # bookkeeping stays in the JSON: the table is for reading across systems at a glance
    others = [key for key in extras if key not in metrics and key not in ("k", "queries", "build_params")]
    head = list(RESULT_KEYS[:4])
    return head + metrics + list(RESULT_KEYS[4:]) + others


def print_table(report: Mapping[str, Any], console: Any | None = None) -> None:
    """Print the results as a table (rich); `console` defaults to stdout."""
    from rich.console import Console
    from rich.table import Table

    results = report.get("results", [])
    table = Table(title=f"{report.get('benchmark')} on {report.get('dataset')}")
    columns = table_columns(results)
    for column in columns:
        table.add_column(column, justify="left" if column in ("system", "params", "build_params") else "right")
    for row in results:
        table.add_row(*(_format(column, row.get(column)) for column in columns))
    if console is None:
        console = Console()
        if not console.is_terminal:  # rich assumes 80 columns when piped: too narrow to read
            console = Console(width=max(console.width, 160))
    console.print(table)


# ---------------------------------------------------------------------- plot
def pareto_frontier(recall: np.ndarray, qps: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-optimal points (no other point has both more recall and more QPS),
    ordered by increasing recall. recall, qps: (n,) floats."""
    recall, qps = np.asarray(recall, dtype=np.float64), np.asarray(qps, dtype=np.float64)
    order = np.lexsort((-qps, -recall))  # best recall first; among equal recall, best qps first
    best_qps = np.maximum.accumulate(qps[order])
    # a point is on the frontier when it beats the qps of every point with at least its recall
    keep = np.concatenate([[True], qps[order][1:] > best_qps[:-1]])
    return order[keep][::-1]


def plot_recall_qps(report: Mapping[str, Any], path: str | Path, *, qps_key: str = "qps",
                    recall_key: str = "recall@10") -> Path:
    """Write a recall-vs-QPS PNG: every point faintly, each system's Pareto frontier as a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Figure + Agg canvas directly: no pyplot global state, no GUI backend, thread-safe
    fig = Figure(figsize=(8, 5.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    systems: dict[str, list[tuple[float, float]]] = {}
    for row in report.get("results", []):
        if row.get(recall_key) is not None and row.get(qps_key):
            systems.setdefault(str(row["system"]), []).append((float(row[recall_key]), float(row[qps_key])))
    # "<family>-<kind>": one colour per kind, one line style per family (lamina solid), so
    # lamina-hnsw and faiss-hnsw read as a pair
    kinds = list(dict.fromkeys(name.partition("-")[2] or name for name in sorted(systems)))
    families = sorted({name.partition("-")[0] for name in systems}, key=lambda f: (f != "lamina", f))
    for system, points in sorted(systems.items()):
        recall, qps = np.array(points).T
        family = families.index(system.partition("-")[0])
        color = f"C{kinds.index(system.partition('-')[2] or system) % 10}"
        ax.scatter(recall, qps, color=color, alpha=0.25, s=14)
        front = pareto_frontier(recall, qps)
        ax.plot(recall[front], qps[front], color=color, label=system, marker="osD^v"[family % 5],
                linestyle=("-", "--", ":", "-.")[family % 4], markerfacecolor="none" if family else color)
    if systems:
        ax.set_yscale("log")
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, f"no results with {recall_key} and {qps_key}", ha="center", transform=ax.transAxes)
    ax.set_xlabel(recall_key)
    ax.set_ylabel(f"{qps_key} (queries/s, log)")
    ax.set_title(f"{report.get('benchmark')} on {report.get('dataset')}: {recall_key} vs {qps_key}")
    ax.grid(True, which="both", alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path
