"""`lamina build-ray`, `lamina serve-sharded` and `lamina bench shards`: scale-out on Ray."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click


@click.command("build-ray")
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@click.option("--root", type=click.Path(path_type=Path), required=True,
              help="The sharded collection's directory (sharded.json and shard-<i>/).")
@click.option("--collection", "name", required=True)
@click.option("--shards", type=int, default=2, show_default=True)
@click.option("--route", type=click.Choice(["id", "tenant"]), default="id", show_default=True)
@click.option("--index", "kind", type=click.Choice(["flat", "hnsw", "ivf"]), default="flat", show_default=True)
@click.option("--encoder", default=None, help="Dense model [default: all-MiniLM-L6-v2].")
@click.option("--actors", type=int, default=2, show_default=True, help="Encoding actors (the model loads once in each).")
@click.option("--actor-cpus", type=float, default=1.0, show_default=True, help="CPUs each encoding actor reserves.")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--ray", "address", default=None, metavar="ADDRESS",
              help="A running Ray cluster (ray://host:port or 'auto') [default: a local one].")
def build_ray(corpus: Path, root: Path, name: str, shards: int, route: str, kind: str, encoder: str | None,
              actors: int, actor_cpus: float, batch_size: int, address: str | None) -> None:
    """Build (or complete) a sharded collection from a BEIR directory or JSONL file on Ray."""
    from lamina.index.types import DEFAULT_ENCODER
    from lamina.retrieval.corpus import count_lines
    from lamina.retrieval.sharded.build import build_sharded

    with click.progressbar(length=count_lines(corpus), label="building", file=click.get_text_stream("stderr")) as bar:
        report = build_sharded(corpus, root, name, shards, route=route, encoder=encoder or DEFAULT_ENCODER,
                               actors=actors, num_cpus=actor_cpus, batch_size=batch_size, address=address,
                               progress=bar.update, index=kind)
    click.echo(" ".join(f"{k}={v}" for k, v in report.items()))


@click.command("serve-sharded")
@click.argument("roots", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=50051, show_default=True, type=int)
@click.option("--auth", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True)
@click.option("--api-keys-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--ray", "address", default=None, metavar="ADDRESS", help="A running Ray cluster [default: a local one].")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="The single-node data directory served beside them (API keys live there).")
def serve_sharded(roots: tuple[Path, ...], host: str, port: int, auth: str, api_keys_file: Path | None,
                  address: str | None, data_dir: Path | None) -> None:
    """Serve sharded collections (each ROOT made by `lamina build-ray`) over gRPC, with the data
    directory's other collections and keys, until SIGINT or SIGTERM."""
    from lamina import config
    from lamina.retrieval.collection import Database
    from lamina.retrieval.sharded import ShardedCollection, ensure_ray
    from lamina.retrieval.sharded.database import ShardedDatabase
    from lamina.service.server import serve_database

    ensure_ray(address)
    sharded = {}
    for root in roots:
        coll = ShardedCollection.open(root)
        sharded[coll.name] = coll
    database = ShardedDatabase(Database(config.data_dir(data_dir)), sharded)

    def ready(bound: int) -> None:
        names = ", ".join(f"{n} ({c.shards} shards)" for n, c in sharded.items())
        click.echo(f"lamina serving {names} on {host}:{bound}", err=True)

    try:
        asyncio.run(serve_database(database, host, port, ready=ready, auth=auth, api_keys_file=api_keys_file))
    finally:
        database.close()


@click.command("shards")
@click.option("--shards", "counts", default="1,2,4", show_default=True, help="Shard counts to measure.")
@click.option("--n", type=int, default=20000, show_default=True, help="Vectors (random, 384-d).")
@click.option("--dim", type=int, default=384, show_default=True)
@click.option("--queries", type=int, default=300, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (last line).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_shards(counts: str, n: int, dim: int, queries: int, as_json: bool, out: Path | None) -> None:
    """Build throughput, QPS and p50/p99 against the shard count, beside one in-process collection."""
    from lamina.bench.shards import run_shards
    from lamina.cli import _emit

    report = run_shards([int(c) for c in counts.split(",") if c.strip()], n=n, dim=dim, queries=queries)
    _emit(report, as_json, out)


RAY_COMMANDS = (build_ray, serve_sharded)
RAY_BENCH_COMMANDS = (bench_shards,)
