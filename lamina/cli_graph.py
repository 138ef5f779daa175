"""`lamina bench graph`: multi-hop retrieval with the entity graph (see `lamina.bench.graph`)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("graph")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--modes", default="dense,sparse,hybrid,hybrid+graph,graph", show_default=True)
@click.option("--extractor", type=click.Choice(["spacy", "regex"]), default="spacy", show_default=True)
@click.option("--max-queries", default=None, type=click.IntRange(min=1))
@click.option("--no-scale", is_flag=True, help="Skip the 100k-node PPR and write timings.")
@click.option("--scale-nodes", default=100_000, show_default=True, type=click.IntRange(min=1000))
@click.option("--no-peer", is_flag=True, help="Skip the LightRAG peer.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_graph(dataset_dir: Path, modes: str, extractor: str, max_queries: int | None, no_scale: bool,
                scale_nodes: int, no_peer: bool, as_json: bool, out: Path | None) -> None:
    """Recall@2/5/10 and all-gold-in-top-5 of dense, BM25, hybrid, hybrid+graph and graph alone on a
    BEIR directory; the graph's build rate; PPR and one-document writes at 100k nodes."""
    from lamina.bench.graph import run_graph, summary_lines
    from lamina.retrieval.query import MODES

    names = [m.strip() for m in modes.split(",") if m.strip()]
    bad = set(names) - set(MODES)
    if bad or not names:
        raise click.BadParameter(f"unknown mode(s) {', '.join(sorted(bad)) or '(none)'}", param_hint="--modes")
    report = run_graph(dataset_dir, modes=names, extractor=extractor, max_queries=max_queries,
                       scale=not no_scale, scale_nodes=scale_nodes, peer=not no_peer)
    for line in summary_lines(report):
        click.echo(line, err=as_json)
    if out is not None:
        from lamina.bench.report import write_report

        write_report(report, out)
    if as_json:
        click.echo(json.dumps(report))
