"""`lamina bench ann`: recall against throughput of Lamina's indexes and their peers.

Dense kinds (flat, ivf, hnsw) run beside their raw FAISS index; `spann` is Lamina's
disk-resident SPANN index and `diskann` diskannpy's SSD index (skipped, with a message on
stderr and under `meta.skipped` in the report, when diskannpy is not installed).

Loads a vector dataset (`lamina.bench.datasets.load_dataset`), computes exact ground truth once,
sweeps every system over its query-argument grid (`lamina.bench.harness`) and returns the
standard report (`lamina.bench.report`, benchmark "ann"); with `out_dir`, it also writes the
report's JSON and the recall-vs-QPS plot there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
from lamina.bench.datasets import TextEncoder, default_cache_dir, load_dataset
from lamina.bench.groundtruth import exact_knn
from lamina.bench.harness import make_systems, run_sweep
from lamina.bench.report import make_report, write_report_and_plot
from lamina.index.spann import SpannConfig
from lamina.index.types import IndexConfig


def _stderr(message: str) -> None:
    # progress goes to stderr: with --json the last line of stdout must be the report
    print(f"[bench ann] {message}", file=sys.stderr, flush=True)


def run_ann(
    dataset_spec: str,
    indexes: Sequence[str],
    *,
    k: int = 10,
    out_dir: Path | None = None,
    peers: bool = True,
    max_queries: int = 1000,
    progress: bool = True,
    batch_threads: int = 2,
    config: IndexConfig | None = None,
    query_args: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    encoder: TextEncoder | None = None,
    cache_dir: Path | None = None,
    cold: bool = True,
    lamina_dense: bool = True,
    spann_config: SpannConfig | None = None,
    spann_unchecked: bool = False,
) -> dict[str, Any]:
    """Benchmark `indexes` (a subset of flat, ivf, hnsw, spann, diskann) on `dataset_spec`; returns the report.

    dataset_spec: `synthetic:N:D[:NQ]`, a `.npy`/`.fvecs`/`.bvecs` path (optionally `:ip`/`:l2`),
    or `beir:DIR` (embedded with `encoder`, default Lamina's default dense encoder).
    peers: also run faiss-<kind> for each kind. config: Lamina's build and default search
    parameters (nlist, hnsw_m, ef_construction); the peers get the same. query_args: grids
    per kind, default `harness.QUERY_ARGS`. With `out_dir`, writes `ann-<dataset>.json` and
    `ann-<dataset>.png` there. Progress lines go to stderr when `progress`.
    cold: also sweep the disk systems with their files evicted from the page cache before each
    query (`<name>-cold`). lamina_dense: run lamina-<kind> beside faiss-<kind> (False: faiss
    only, to save build time at scale). spann_config: SPANN build and default search settings.
    spann_unchecked: also run lamina-spann-unchecked (the same files, CRC32C checks off).
    `minilm:N` and `beir:` datasets are embedded with the default dense encoder unless
    `encoder` is given; index files of disk systems go under `cache_dir`/indexes.
    """
    say = _stderr if progress else None
    if not indexes:
        raise ValueError("no index kinds to benchmark: pass a subset of flat, ivf, hnsw, spann, diskann")
    if dataset_spec.startswith(("beir:", "minilm:")) and encoder is None:
        from lamina.index.types import DEFAULT_ENCODER
        from lamina.retrieval.encoders.dense import (
            load_dense_encoder,  # loads torch: only when needed
        )

        encoder = load_dense_encoder(DEFAULT_ENCODER)
    start = time.perf_counter()
    dataset = load_dataset(dataset_spec, max_queries=max_queries, encoder=encoder, cache_dir=cache_dir)
    if say:
        say(f"dataset {dataset.name}: {dataset.base.shape[0]} x {dataset.dim} base, "
            f"{len(dataset.queries)} queries, metric {dataset.metric} ({time.perf_counter() - start:.1f} s)")
    skipped: list[dict[str, str]] = []
    workdir = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "indexes"
    systems = make_systems(indexes, dataset.metric, peers=peers, config=config, lamina_dense=lamina_dense,
                           spann_config=spann_config, workdir=workdir, skipped=skipped,
                           spann_unchecked=spann_unchecked)
    for skip in skipped:
        _stderr(f"skipping {skip['system']}: {skip['reason']}")  # shown even without progress
    start = time.perf_counter()
    ground_truth = exact_knn(dataset.base, dataset.queries, k, dataset.metric)
    if say:
        say(f"ground truth: exact top-{k} in {time.perf_counter() - start:.1f} s")
    results = run_sweep(dataset, systems, k=k, batch_threads=batch_threads, query_args=query_args,
                        ground_truth=ground_truth, progress=say, cold=cold)
    report = make_report("ann", dataset.name, results, meta={
        "spec": dataset_spec, "n": int(dataset.base.shape[0]), "dim": dataset.dim,
        "queries": len(dataset.queries), "metric": dataset.metric, "k": k,
        "batch_threads": batch_threads, "indexes": list(indexes), "peers": peers,
        "raw_bytes": int(dataset.base.nbytes), "skipped": skipped, "cold": cold,
        "gpus": faiss.get_num_gpus(),
    })
    if out_dir is not None:
        write_report_and_plot(report, out_dir, say)
    return report
