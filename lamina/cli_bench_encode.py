"""`lamina bench encode`: encode-once build rate and forward passes, and SPLADE-tiny's quality (issue #24)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("encode")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--what", type=click.Choice(["build", "sparse", "both"]), default="both", show_default=True,
              help="build: dense-only vs --multivector build docs/s and forward passes; sparse: BM25, the "
                   "--sparse model and dense, alone and fused.")
@click.option("--sparse", "sparse", default="splade-tiny", show_default=True,
              help="Learned sparse model to measure (a --sparse name or a masked-LM directory).")
@click.option("--max-docs", default=512, show_default=True, help="Documents built (the build part).")
@click.option("--queries", "n_queries", default=20, show_default=True, help="Reranked searches counted.")
@click.option("--no-dense", is_flag=True, help="Skip the dense stage (and its fusions) in the sparse part.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the JSON report.")
def bench_encode(dataset_dir: Path, what: str, sparse: str, max_docs: int, n_queries: int, no_dense: bool,
                 out: Path | None) -> None:
    """Encoding costs and learned-sparse quality on a BEIR directory (see lamina.bench.encode)."""
    from lamina.bench.encode import run_encode_once, run_sparse_quality
    from lamina.retrieval.encoders.threads import applied_torch_threads, ensure_torch_threads

    ensure_torch_threads()
    report = {"torch_threads": applied_torch_threads()}
    if what in ("build", "both"):
        report["build"] = run_encode_once(dataset_dir, max_docs=max_docs, n_queries=n_queries)
    if what in ("sparse", "both"):
        report["sparse"] = run_sparse_quality(dataset_dir, sparse=sparse, with_dense=not no_dense)
    text = json.dumps(report, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    click.echo(text)
