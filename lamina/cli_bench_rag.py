"""`lamina bench rag`: context recall at token budgets, stage latencies, and answer quality."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("rag")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--budgets", default="512,1024,2048", show_default=True, help="Context budgets, in the generator's tokens.")
@click.option("--modes", default="hybrid,dense", show_default=True, help="Retrieval modes to measure.")
@click.option("--generator", default="none", show_default=True, metavar="none|local|local:DIR|openai",
              help="With a generator: budgets count its tokens, and a dataset with answers is scored "
                   "(exact match, F1) with no, retrieved and gold context.")
@click.option("--max-queries", type=int, default=None, help="Questions for context recall [default: all].")
@click.option("--answer-queries", type=int, default=50, show_default=True, help="Questions answered by the generator.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("bench/out/rag-data"), show_default=True,
              help="Where the dataset's collection is built (once: reruns reuse it).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (last line).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_rag(dataset_dir: Path, budgets: str, modes: str, generator: str, max_queries: int | None,
              answer_queries: int, data_dir: Path, as_json: bool, out: Path | None) -> None:
    """Context recall of the RAG pipeline at token budgets beside the search's recall@n, per-stage
    latency and overhead, and (with a generator) answer EM/F1 with none, retrieved and gold context."""
    from lamina.bench.rag import run_rag
    from lamina.cli import _emit, _open_database

    try:
        budget_list = [int(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise click.BadParameter(f"{budgets!r} is not a list of integers", param_hint="--budgets") from None
    gen = None
    if generator != "none":
        from lamina.rag.generators import load_generator

        gen = load_generator(generator)
    with _open_database(data_dir) as db:
        report = run_rag(dataset_dir, db, generator=gen, budgets=budget_list,
                         modes=[m.strip() for m in modes.split(",") if m.strip()], max_queries=max_queries,
                         answer_queries=answer_queries, progress=True)
    _emit(report, as_json, out)
