"""The RAG commands of the `lamina` CLI: `lamina ingest` (and `lamina bench ingest`).

Registered from `lamina.cli`, at its end. This module imports `lamina.cli` only inside its
commands: `python -m lamina.cli` runs that module as `__main__`, and a top-level import of it
from here would run it a second time, half-way through this one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from lamina import config
from lamina.index.errors import NotFound
from lamina.index.types import DEFAULT_ENCODER

INGEST_PAYLOAD = {"parent": "keyword"}  # filter a collection's chunks by their document

data_dir_option = click.option(  # as lamina.cli's
    "--data-dir", type=click.Path(path_type=Path), default=None,
    help="Data directory [default: $LAMINA_DATA_DIR or ./lamina-data].")
target_option = click.option(
    "--target", default=None, metavar="HOST:PORT", help="Write to a running server instead of the data directory.")


def _open_or_create(handle: Any, name: str, encoder: str) -> Any:
    """The collection `name` of a Database or a Client, created with a `parent` keyword field when missing."""
    try:
        return handle.collection(name)
    except NotFound:
        handle.create_collection(name, encoder=encoder, payload=INGEST_PAYLOAD)
        return handle.collection(name)


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--collection", "name", required=True, help="Collection to write (created if missing).")
@click.option("--chunker", "kind", type=click.Choice(["token", "sentence"]), default="token", show_default=True,
              help="token: windows with --overlap; sentence: whole sentences up to --chunk-tokens.")
@click.option("--chunk-tokens", default=256, show_default=True, type=int,
              help="Chunk budget, in tokens of the collection encoder's tokenizer.")
@click.option("--overlap", default=32, show_default=True, type=int, help="Tokens shared by consecutive windows.")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True,
              help="Dense encoder of a collection created here: all-MiniLM-L6-v2 or a local model directory.")
@click.option("--tenant", default=None, help="Write the chunks as this tenant's (in-process; remotely the "
              "API key's tenant).")
@click.option("--json", "as_json", is_flag=True, help="Print the ingest report as JSON.")
@target_option
@data_dir_option
def ingest_command(paths: tuple[Path, ...], name: str, kind: str, chunk_tokens: int, overlap: int, encoder: str,
                   tenant: str | None, as_json: bool, target: str | None, data_dir: Path | None) -> None:
    """Load, chunk and index PATH... (files or directories: .txt, .md, .html, .pdf).

    Idempotent by content hash: unchanged files are skipped; a changed file's chunks are
    replaced, and its chunks that are gone deleted, in one atomic write. A file that cannot be
    read is reported and the rest ingested; the exit code is then 1.
    """
    if target:
        from lamina.service.client import Client

        if tenant is not None:
            raise click.BadParameter("with --target the tenant is the API key's ($LAMINA_API_KEY)",
                                     param_hint="--tenant")
        with Client(target) as client:
            report = _run(_open_or_create(client, name, encoder), paths, kind, chunk_tokens, overlap, None, name)
    else:
        from lamina.cli import _open_database

        with _open_database(config.data_dir(data_dir)) as db:
            report = _run(_open_or_create(db, name, encoder), paths, kind, chunk_tokens, overlap, tenant, name)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        click.echo(f"{name}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                   f"{report.deleted} deleted; {report.chunks_written} chunks written, {report.chunks_deleted} "
                   f"deleted; {len(report.errors)} failed; {report.seconds:.2f} s")
    for error in report.errors:
        click.echo(f"  failed {error.source}: {error.error}: {error.message}", err=True)
    if report.errors:
        sys.exit(1)


def _run(coll: Any, paths: tuple[Path, ...], kind: str, chunk_tokens: int, overlap: int, tenant: str | None,
         name: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from lamina.rag.ingest import default_chunker, ingest

    chunker = default_chunker(coll, kind, chunk_tokens=chunk_tokens, overlap=overlap)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=not sys.stderr.isatty(), console=None) as bar:
        task = bar.add_task(f"ingesting into {name}", total=None)

        def progress(done: int, total: int, doc_id: str) -> None:
            bar.update(task, completed=done, total=total)

        return ingest(coll, list(paths), chunker=chunker, tenant=tenant, progress=progress)


@click.command("ingest")
@click.option("--chunks", "n_chunks", default=10_000, show_default=True, type=int, help="Chunks to ingest.")
@click.option("--chunk-tokens", default=256, show_default=True, type=int)
@click.option("--overlap", default=32, show_default=True, type=int)
@click.option("--with-training", is_flag=True,
              help="Add a row into a default flat index, which trains its PQ scan codes at 10,000 vectors.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_ingest_command(n_chunks: int, chunk_tokens: int, overlap: int, with_training: bool, as_json: bool,
                         out: Path | None) -> None:
    """Ingestion throughput without encoding: chunking alone, store write, and end to end
    (a synthetic text corpus; the dense encoder is a cheap deterministic stub)."""
    from lamina.bench.ingest import run_ingest
    from lamina.cli import _emit

    _emit(run_ingest(n_chunks, chunk_tokens=chunk_tokens, overlap=overlap, with_training=with_training),
          as_json, out)
