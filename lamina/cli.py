"""The `lamina` command line: build, serve, search, collections and bench.

Local commands open the data directory in-process (RocksDB allows one process at a time, so
while a server runs, talk to it with `--target HOST:PORT`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import click

from lamina import config
from lamina.index.errors import LaminaError
from lamina.index.types import DEFAULT_ENCODER, INDEX_KINDS, METRICS

BUILD_BATCH = 256


def _open_database(data_dir: Path):
    from lamina.retrieval.collection import Database

    try:
        return Database(data_dir)
    except RuntimeError as exc:
        if "lock" in str(exc).lower():
            raise click.ClickException(
                f"{data_dir} is in use by another process (a running `lamina serve`?): "
                "pass --target HOST:PORT to talk to it") from None
        raise click.ClickException(str(exc)) from None


def _batches(iterable, size: int) -> Iterator[list]:
    it = iter(iterable)
    while batch := list(islice(it, size)):
        yield batch


class _LaminaGroup(click.Group):
    """Print Lamina's own errors as one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LaminaError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None,
    help="Data directory [default: $LAMINA_DATA_DIR or ./lamina-data].")
target_option = click.option(
    "--target", default=None, metavar="HOST:PORT", help="Query a running server instead of the data directory.")


@click.group(cls=_LaminaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lamina")
def main() -> None:
    """Lamina: retrieval and vector search."""


# ---------------------------------------------------------------------- build
@main.command()
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@click.option("--collection", "name", required=True, help="Collection to build (created if missing).")
@click.option("--index", "kind", type=click.Choice(INDEX_KINDS), default="flat", show_default=True)
@click.option("--metric", type=click.Choice(METRICS), default="ip", show_default=True)
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True,
              help="all-MiniLM-L6-v2 or a local sentence-transformers directory.")
@click.option("--batch-size", default=BUILD_BATCH, show_default=True)
@data_dir_option
def build(corpus: Path, name: str, kind: str, metric: str, encoder: str, batch_size: int,
          data_dir: Path | None) -> None:
    """Embed and index CORPUS (a BEIR directory or a JSONL file of {"_id","title","text","metadata"}).

    Idempotent by id: records already stored with the same text and metadata are skipped, so
    an interrupted build can simply be run again.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from lamina.retrieval.corpus import count_lines, read_corpus

    total = count_lines(corpus)
    rejected: list[str] = []
    written = skipped = 0
    with _open_database(config.data_dir(data_dir)) as db:
        coll = db.get_or_create_collection(name, metric=metric, index=kind, encoder=encoder)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=not sys.stderr.isatty(), console=None) as progress:
            task = progress.add_task(f"building {name}", total=total)
            for batch in _batches(read_corpus(corpus), batch_size):
                for rec in batch:
                    if rec.error:
                        rejected.append(f"line {rec.line}: {rec.error}")
                points = [rec.point for rec in batch if rec.point is not None]
                stored = coll.get([p["id"] for p in points])
                fresh = [p for p, s in zip(points, stored)
                         if s is None or (s.text, s.metadata) != (p["text"], p["metadata"])]
                skipped += len(points) - len(fresh)
                for rec, result in zip(fresh, coll.upsert(fresh, wait=False) if fresh else []):
                    if result.ok:
                        written += 1
                    else:
                        rejected.append(f"id {result.id!r}: {result.error}")
                progress.advance(task, len(batch))
        count = coll.count()
    click.echo(f"{name}: {written} written, {skipped} unchanged, {len(rejected)} rejected; {count} documents")
    for line in rejected[:20]:
        click.echo(f"  rejected {line}", err=True)
    if len(rejected) > 20:
        click.echo(f"  ... and {len(rejected) - 20} more", err=True)
    if rejected:
        sys.exit(1)


# ---------------------------------------------------------------------- serve
@main.command()
@click.option("--host", default=config.DEFAULT_HOST, show_default=True)
@click.option("--port", default=config.DEFAULT_PORT, show_default=True, type=int)
@click.option("--demo/--no-demo", default=False,
              help="Build the demo collection first when the data directory has no collection.")
@data_dir_option
def serve(host: str, port: int, demo: bool, data_dir: Path | None) -> None:
    """Run the gRPC server until SIGINT or SIGTERM."""
    from lamina.service.server import run

    directory = config.data_dir(data_dir)
    if demo:
        _ensure_demo(directory)

    def ready(bound: int) -> None:
        click.echo(f"lamina serving {directory} on {host}:{bound}", err=True)
        if demo:
            click.echo(f'try: lamina search --target {host}:{bound} --collection demo "how do I sort a list"',
                       err=True)

    run(directory, host=host, port=port, on_ready=ready)


def _ensure_demo(directory: Path) -> None:
    from lamina.demo import DEMO_COLLECTION, demo_documents

    with _open_database(directory) as db:
        if db.list_collections():
            return
        click.echo(f"no collection in {directory}: building '{DEMO_COLLECTION}' from Python's docstrings ...",
                   err=True)
        coll = db.create_collection(DEMO_COLLECTION)
        results = coll.upsert(list(demo_documents()), wait=True)
        click.echo(f"{DEMO_COLLECTION}: {sum(r.ok for r in results)} documents", err=True)


# ---------------------------------------------------------------------- search
@main.command()
@click.argument("query")
@click.option("--collection", "name", required=True)
@click.option("-k", "k", default=10, show_default=True, type=int)
@click.option("--param", "params", multiple=True, metavar="NAME=INT", help="Search parameter, e.g. nprobe=32.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON lines.")
@target_option
@data_dir_option
def search(query: str, name: str, k: int, params: tuple[str, ...], as_json: bool, target: str | None,
           data_dir: Path | None) -> None:
    """Search a collection by text."""
    parsed = _parse_params(params)
    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            hits = client.search(name, query, k, params=parsed)
    else:
        with _open_database(config.data_dir(data_dir)) as db:
            hits = db.collection(name).search(query, k, params=parsed)
    for rank, hit in enumerate(hits, start=1):
        if as_json:
            click.echo(json.dumps({"id": hit.id, "score": hit.score, "text": hit.text, "metadata": hit.metadata}))
        else:
            text = (hit.text or "").replace("\n", " ")
            click.echo(f"{rank:>3}. {hit.score:8.4f}  {hit.id}  {text[:100]}")


def _parse_params(params: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise click.BadParameter(f"{item!r} is not NAME=INTEGER", param_hint="--param")
        out[key] = int(value)
    return out


# ---------------------------------------------------------------------- collections
@main.group()
def collections() -> None:
    """List or drop collections."""


@collections.command("list")
@target_option
@data_dir_option
def collections_list(target: str | None, data_dir: Path | None) -> None:
    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            configs = client.list_collections()
    else:
        with _open_database(config.data_dir(data_dir)) as db:
            configs = db.list_collections()
    for cfg in configs:
        click.echo(f"{cfg.name}\tdim={cfg.dim}\tmetric={cfg.metric}\tindex={cfg.index.kind}\tencoder={cfg.encoder}")


@collections.command("drop")
@click.argument("name")
@target_option
@data_dir_option
def collections_drop(name: str, target: str | None, data_dir: Path | None) -> None:
    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            client.drop_collection(name)
    else:
        with _open_database(config.data_dir(data_dir)) as db:
            db.drop_collection(name)
    click.echo(f"dropped {name}")


# ---------------------------------------------------------------------- bench
@main.group()
def bench() -> None:
    """Benchmarks. With --json the last line printed is one JSON report:
    {"benchmark", "dataset", "results": [{"system", "params", "recall@10", "qps", ...}]}."""


def _emit(report: dict[str, Any], as_json: bool, out: Path | None) -> None:
    from lamina.bench.report import print_table, write_report

    if out is not None:
        write_report(report, out)
    print_table(report)
    if as_json:
        click.echo(json.dumps(report))


@bench.command("quality")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--collection", "name", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
@target_option
@data_dir_option
def bench_quality(dataset_dir: Path, name: str, as_json: bool, out: Path | None, target: str | None,
                  data_dir: Path | None) -> None:
    """nDCG@10, MRR@10 and Recall@100 of a collection on a BEIR directory's test queries."""
    from lamina.bench.quality import quality_report

    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            report = quality_report(dataset_dir, client.collection(name), system="lamina-dense")
    else:
        with _open_database(config.data_dir(data_dir)) as db:
            report = quality_report(dataset_dir, db.collection(name), system="lamina-dense")
    result = report["results"][0]
    click.echo(f"nDCG@10 {result['ndcg@10']:.4f}  MRR@10 {result['mrr@10']:.4f}  Recall@100 {result['recall@100']:.4f}",
               err=as_json)
    if out is not None:
        from lamina.bench.report import write_report

        write_report(report, out)
    if as_json:
        click.echo(json.dumps(report | {k: result[k] for k in ("ndcg@10", "mrr@10", "recall@100")}))


@bench.command("ann")
@click.option("--dataset", required=True, help="synthetic:N:D[:NQ], a .npy or .fvecs file, or beir:DIR.")
@click.option("--index", "indexes", default="flat,ivf,hnsw", show_default=True,
              help="Comma-separated index kinds to measure (each beside its faiss peer).")
@click.option("-k", "k", default=10, show_default=True)
@click.option("--max-queries", default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/out"), show_default=True,
              help="Directory for the JSON report and the recall-vs-QPS plot.")
def bench_ann(dataset: str, indexes: str, k: int, max_queries: int, as_json: bool, out: Path) -> None:
    """Recall@10 against QPS, latency, build time and memory: ours beside raw faiss."""
    from lamina.bench.ann import run_ann
    from lamina.bench.report import plot_recall_qps

    kinds = [x.strip() for x in indexes.split(",") if x.strip()]
    unknown = set(kinds) - set(INDEX_KINDS)
    if unknown:
        raise click.BadParameter(f"unknown index kind(s) {', '.join(sorted(unknown))}", param_hint="--index")
    report = run_ann(dataset, kinds, k=k, out_dir=out, max_queries=max_queries, progress=not as_json)
    out.mkdir(parents=True, exist_ok=True)
    plot_recall_qps(report, out / "ann-recall-qps.png")
    _emit(report, as_json, out)


if __name__ == "__main__":
    main()
