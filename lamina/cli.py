"""The `lamina` command line: build, serve, search, collections, keys and bench.

Local commands open the data directory in-process (RocksDB allows one process at a time, so
while a server runs, talk to it with `--target HOST:PORT`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import click

from lamina import config
from lamina.cli_serve_options import apply_serve_options, serve_options
from lamina.index.errors import LaminaError
from lamina.index.types import DEFAULT_ENCODER, INDEX_KINDS, METRICS

BUILD_BATCH = 256


def _open_database(data_dir: Path):
    from lamina.retrieval.collection import Database

    return Database(data_dir)  # StoreLocked names the directory and says to pass --target HOST:PORT


@contextmanager
def open_target(target: str | None, data_dir: Path | None) -> Iterator[Any]:
    """A `Client` of the server at `target`, else the local `Database` in `data_dir`: both have
    `collection(name)`, `list_collections()` and `drop_collection(name)`."""
    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            yield client
    else:
        with _open_database(config.data_dir(data_dir)) as db:
            yield db


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
_target = click.option(
    "--target", default=None, metavar="HOST:PORT", help="Query a running server instead of the data directory "
    "(http://HOST:PORT: over its HTTP/JSON API).")


def target_option(command: Any) -> Any:
    """--target, and --api-key beside it (`lamina.cli_remote`)."""
    from lamina.cli_remote import api_key_option

    return _target(api_key_option(command))


@click.group(cls=_LaminaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lamina")
@click.option("--torch-threads", type=int, default=None, metavar="N",
              help="Torch intra-op threads for every model this command (or server) runs "
                   "[default: $LAMINA_TORCH_THREADS, else min(cores available, 4)].")
def main(torch_threads: int | None) -> None:
    """Lamina: retrieval and vector search."""
    config.use_torch_threads(torch_threads)


# ---------------------------------------------------------------------- build
@main.command()
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@click.option("--collection", "name", required=True, help="Collection to build (created if missing).")
@click.option("--index", "kind", type=click.Choice(INDEX_KINDS), default="flat", show_default=True)
@click.option("--spann-param", "spann_params", multiple=True, metavar="NAME=VALUE",
              help="A SPANN build option with --index spann, e.g. dtype=int8, head_ratio=0.08. Repeatable.")
@click.option("--metric", type=click.Choice(METRICS), default="ip", show_default=True)
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True,
              help="all-MiniLM-L6-v2 or a local sentence-transformers directory.")
@click.option("--sparse", "sparse", default="bm25", show_default=True,
              help="Sparse first stage: bm25, splade-tiny (packaged SPLADE, queries by an IDF table; "
                   "splade-tiny:query-model encodes them), a local SPLADE model directory, or none.")
@click.option("--multivector/--no-multivector", default=False, show_default=True,
              help="Also keep the encoder's token vectors, for MaxSim reranking (--rerank).")
@click.option("--token-encoder", default=None, help="Token vectors' model: a local ColBERT-style directory "
              "[default: the --encoder's own contextual token embeddings].")
@click.option("--token-codec", default="float16", show_default=True,
              help="How token vectors are stored: float16, rq32 (31 bytes a token), pq<M>, "
                   "ivf<L>[x<S>]pq<M>[x<bits>] or faiss:<factory>.")
@click.option("--payload", "payload", multiple=True, metavar="FIELD:KIND",
              help="Index a metadata field for filters; KIND is keyword or numeric. Repeatable.")
@click.option("--tenant-tree", is_flag=True, help="Keep a Curator-style tree so each tenant searches its sub-tree.")
@click.option("--clustering-key", default=None, metavar="FIELD",
              help="A numeric --payload field: keep scan codes in its order, so a range over it scans one run.")
@click.option("--graph", "graph", type=click.Choice(["spacy", "regex"]), default=None, flag_value="spacy",
              is_flag=False, help="Keep an entity graph for graph searches (--graph or --graph=regex: the extractor).")
@click.option("--batch-size", default=BUILD_BATCH, show_default=True)
@data_dir_option
def build(corpus: Path, name: str, kind: str, spann_params: tuple[str, ...], metric: str, encoder: str, sparse: str,
          multivector: bool, token_encoder: str | None, token_codec: str, payload: tuple[str, ...], tenant_tree: bool,
          clustering_key: str | None, graph: str | None, batch_size: int, data_dir: Path | None) -> None:
    """Embed and index CORPUS (a BEIR directory or a JSONL file of {"_id","title","text","metadata"}).

    Every document gets a dense vector and, by default, BM25 sparse weights (so `lamina search
    --mode sparse|hybrid` works); `--multivector` adds token vectors for reranking.
    Idempotent by id: records already stored with the same text and metadata are skipped, so
    an interrupted build can simply be run again.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from lamina.retrieval.corpus import count_lines, read_corpus

    if spann_params and kind != "spann":
        raise click.BadParameter("SPANN options need --index spann", param_hint="--spann-param")
    index: str | dict[str, Any] = kind
    if spann_params:
        index = {"kind": "spann", "spann": _parse_typed_params(spann_params, "--spann-param")}
    total = count_lines(corpus)
    rejected: list[str] = []
    written = skipped = 0
    with _open_database(config.data_dir(data_dir)) as db:
        coll = db.get_or_create_collection(
            name, metric=metric, index=index, encoder=encoder, sparse=None if sparse == "none" else sparse,
            multivector={"encoder": token_encoder or encoder, "codec": token_codec} if multivector else None,
            payload=_parse_payload(payload), tenant_tree=tenant_tree, clustering_key=clustering_key,
            graph={"extractor": graph} if graph else None)
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


def _parse_payload(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        field, sep, kind = item.rpartition(":")
        if not sep or not field:
            raise click.BadParameter(f"{item!r} is not FIELD:KIND", param_hint="--payload")
        out[field] = kind
    return out


# ---------------------------------------------------------------------- serve
@main.command()
@click.option("--host", default=config.DEFAULT_HOST, show_default=True)
@click.option("--port", default=config.DEFAULT_PORT, show_default=True, type=int)
@click.option("--demo/--no-demo", default=False,
              help="Build the demo collection first when the data directory has no collection.")
@click.option("--api-keys-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Also accept the API keys of this JSON/YAML file (format: lamina.service.auth).")
@click.option("--auth", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Require API keys: auto = once any key exists (see `lamina keys`).")
@click.option("--generator", "generator", type=click.Choice(["local", "openai", "none"]), default="local",
              show_default=True, help="The Rag service's default generator (each loads on first use).")
@click.option("--preload-generator", is_flag=True, help="Load the default generator before serving.")
@click.option("--kv-cache-mib", type=int, default=0, show_default=True,
              help="Reuse the KV caches of retrieved chunks in the local generator, in up to this many MiB "
                   "of memory (0: off).")
@click.option("--http", "http_port", type=int, default=None, metavar="PORT",
              help="Also serve the HTTP/JSON API, /metrics and the web console on this port (off by default).")
@serve_options
@data_dir_option
def serve(host: str, port: int, demo: bool, api_keys_file: Path | None, auth: str, generator: str,
          preload_generator: bool, kv_cache_mib: int, http_port: int | None, data_dir: Path | None,
          **overload: Any) -> None:
    """Run the gRPC server until SIGINT or SIGTERM."""
    from lamina.service.rag import GeneratorPool
    from lamina.service.server import run

    directory = config.data_dir(data_dir)
    if demo:
        _ensure_demo(directory)

    def ready(bound: int) -> None:
        click.echo(f"lamina serving {directory} on {host}:{bound}", err=True)
        if demo:
            prog = os.path.relpath(sys.argv[0]) if os.sep in sys.argv[0] else "lamina"  # .venv/bin/lamina under make run
            click.echo(f'try: {prog} search --target {host}:{bound} --collection demo "how do I sort a list"',
                       err=True)

    prefiller = None
    if kv_cache_mib > 0:
        from lamina.rag.kvcache import ChunkKVCache

        prefiller = ChunkKVCache(memory_bytes=kv_cache_mib << 20)
    generators = GeneratorPool(default=generator, prefiller=prefiller)
    if preload_generator:
        click.echo(f"loading the {generator!r} generator ...", err=True)
        generators.preload()
    def http_ready(bound: int) -> None:
        click.echo(f"HTTP/JSON API, /metrics and the console on http://{host}:{bound}/", err=True)

    run(directory, host=host, port=port, on_ready=ready, auth=auth, api_keys_file=api_keys_file,
        generators=generators, http_port=http_port, http_ready=http_ready, **apply_serve_options(overload))


def _ensure_demo(directory: Path) -> None:
    from lamina.demo import DEMO_COLLECTION, DEMO_OPTIONS, demo_documents

    with _open_database(directory) as db:
        if db.list_collections():
            return
        click.echo(f"no collection in {directory}: building '{DEMO_COLLECTION}' from Python's docstrings ...",
                   err=True)
        coll = db.create_collection(DEMO_COLLECTION, **DEMO_OPTIONS)
        results = coll.upsert(list(demo_documents()), wait=True)
        click.echo(f"{DEMO_COLLECTION}: {sum(r.ok for r in results)} documents", err=True)


# ---------------------------------------------------------------------- search
@main.command()
@click.argument("query")
@click.option("--collection", "name", required=True)
@click.option("-k", "k", default=10, show_default=True, type=int)
@click.option("--mode", type=click.Choice(["dense", "sparse", "hybrid", "hybrid+graph", "dense+graph", "graph"]),
              default="dense", show_default=True,
              help="First stage: dense, sparse (BM25/SPLADE), or both fused; +graph expands by PPR over the "
                   "entity graph; graph ranks by PPR from the query's entities alone.")
@click.option("--graph", "graph", is_flag=True, help="Add the graph expansion to --mode (hybrid --graph = hybrid+graph).")
@click.option("--fusion", type=click.Choice(["adaptive", "rrf", "weighted", "zscore"]), default=None,
              help="How a hybrid search fuses its stages [default: adaptive].")
@click.option("--rerank", "kappa", type=int, default=None, metavar="KAPPA",
              help="Rerank the best KAPPA candidates by MaxSim over token vectors.")
@click.option("--alpha", type=float, default=None, help="Rerank candidate pruning, in [0, 1).")
@click.option("--beta", type=int, default=None, help="Rerank early exit after BETA misses.")
@click.option("--filter", "filter_json", default=None, metavar="JSON",
              help='Metadata filter, e.g. \'{"must": [{"key": "year", "range": {"gte": 1990}}]}\'.')
@click.option("--tenant", default=None, help="Search one tenant's documents only.")
@click.option("--param", "params", multiple=True, metavar="NAME=NUMBER",
              help="Index parameter, e.g. nprobe=32, ef_search=128, query_cut=20, heap_factor=0.9, "
                   "exact_postings=0 (never answer a sparse query exactly term at a time), "
                   "scan_candidates=512 (a large filter's rescoring depth). A 'dense.' or 'sparse.' prefix "
                   "sends it to that stage of a hybrid search only (sparse.query_cut=20).")
@click.option("--explain", is_flag=True, help="Print the plan each stage ran, with timings, to stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON lines.")
@target_option
@data_dir_option
def search(query: str, name: str, k: int, mode: str, graph: bool, fusion: str, kappa: int | None, alpha: float | None,
           beta: int | None, filter_json: str | None, tenant: str | None, params: tuple[str, ...], explain: bool,
           as_json: bool, target: str | None, data_dir: Path | None) -> None:
    """Search a collection by text."""
    from lamina.retrieval.query import Rerank, SearchRequest

    try:
        flt = json.loads(filter_json) if filter_json else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--filter") from None
    rerank = Rerank(kappa, alpha, beta) if kappa is not None else None
    if graph and "graph" not in mode:
        mode += "+graph"
    request = SearchRequest.simple(query, k, mode=mode, params=_parse_params(params), fusion=fusion, rerank=rerank,
                                   filter=flt, tenant=tenant, explain=explain)
    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            result = client.query(name, request)
    else:
        with _open_database(config.data_dir(data_dir)) as db:
            result = db.collection(name).query(request)
    for rank, hit in enumerate(result.hits, start=1):
        if as_json:
            click.echo(json.dumps({"id": hit.id, "score": hit.score, "text": hit.text, "metadata": hit.metadata,
                                   "tenant": hit.tenant}))
        else:
            text = (hit.text or "").replace("\n", " ")
            click.echo(f"{rank:>3}. {hit.score:8.4f}  {hit.id}  {text[:100]}")
    if explain and result.explain is not None:
        click.echo(json.dumps(result.explain), err=True)


def _parse_params(params: tuple[str, ...]) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for item in params:
        key, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not key or number is None:
            raise click.BadParameter(f"{item!r} is not NAME=NUMBER", param_hint="--param")
        out[key] = int(number) if number.is_integer() and "." not in value else number
    return out


# ---------------------------------------------------------------------- collections
@main.group()
def collections() -> None:
    """List or drop collections."""


@collections.command("list")
@target_option
@data_dir_option
def collections_list(target: str | None, data_dir: Path | None) -> None:
    with open_target(target, data_dir) as opened:
        configs = opened.list_collections()
    for cfg in configs:
        click.echo(f"{cfg.name}\tdim={cfg.dim}\tmetric={cfg.metric}\tindex={cfg.index.kind}\tencoder={cfg.encoder}")


@collections.command("drop")
@click.argument("name")
@target_option
@data_dir_option
def collections_drop(name: str, target: str | None, data_dir: Path | None) -> None:
    with open_target(target, data_dir) as opened:
        opened.drop_collection(name)
    click.echo(f"dropped {name}")


# ---------------------------------------------------------------------- keys
@main.group()
def keys() -> None:
    """Create, revoke and list API keys (kept hashed in the data directory, or in a keys file)."""


def _collections(value: str | None) -> list[str]:
    return [c.strip() for c in (value or "").split(",") if c.strip()]


def _key_line(record: Any, source: str = "store") -> str:
    rights = ",".join(f"{c}:{'+'.join(sorted(r))}" for c, r in sorted(record.rights.items())) or "-"
    state = "revoked" if record.revoked is not None else "active"
    role = "admin" if record.admin else f"tenant={record.tenant or '*'}"
    return f"{record.id}\t{state}\t{role}\trights={rights}\t{source}"


@keys.command("create")
@click.option("--tenant", default=None, help="Restrict the key to this tenant's data.")
@click.option("--read", "read_", default=None, metavar="C1,C2", help="Collections it may read ('*': all).")
@click.option("--write", default=None, metavar="C1,C2", help="Collections it may write ('*': all).")
@click.option("--admin", is_flag=True, help="Manage collections and keys; every right, no tenant.")
@click.option("--file", "keys_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append the key to this keys file instead of the data directory's store.")
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "key"} as JSON.')
@target_option
@data_dir_option
def keys_create(tenant: str | None, read_: str | None, write: str | None, admin: bool, keys_file: Path | None,
                as_json: bool, target: str | None, data_dir: Path | None) -> None:
    """Create an API key and print it: it is shown this once, only its hash is kept."""
    from lamina.service.auth import append_to_keys_file, new_key

    rights: dict[str, set[str]] = {}
    for right, names in (("read", read_), ("write", write)):
        for name in _collections(names):
            rights.setdefault(name, set()).add(right)
    if target and keys_file is not None:
        raise click.UsageError("--file writes a keys file here; --target creates the key on the server: pick one")
    if target:
        from lamina.service.client import Client

        with Client(target) as client:  # the Keys admin RPC: needs an admin key once auth is on
            record, secret = client.create_key(tenant=tenant, admin=admin, rights=rights)
    elif keys_file is not None:
        record, secret = new_key(tenant=tenant, admin=admin, rights=rights)
        append_to_keys_file(keys_file, record)
    else:
        from lamina.service.auth import KeyStore

        with _open_database(config.data_dir(data_dir)) as db:
            record, secret = KeyStore(db.store).create(tenant=tenant, admin=admin, rights=rights)
    if as_json:
        click.echo(json.dumps({"id": record.id, "key": secret}))
    else:
        click.echo(_key_line(record, str(keys_file) if keys_file else target or "store"))
        click.echo(secret)
        click.echo("store this key now: it cannot be shown again", err=True)


@keys.command("revoke")
@click.argument("key_id")
@target_option
@data_dir_option
def keys_revoke(key_id: str, target: str | None, data_dir: Path | None) -> None:
    """Revoke a key (with --target: on the running server, refused from its next call)."""
    from lamina.service.auth import KeyStore

    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            client.revoke_key(key_id)
    else:
        with _open_database(config.data_dir(data_dir)) as db:
            KeyStore(db.store).revoke(key_id)
    click.echo(f"revoked {key_id}")


@keys.command("list")
@click.option("--file", "keys_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="List this keys file's keys instead of the data directory's.")
@target_option
@data_dir_option
def keys_list(keys_file: Path | None, target: str | None, data_dir: Path | None) -> None:
    """List keys (ids, tenants, rights; never the keys themselves)."""
    from lamina.service.auth import KeyStore, load_keys_file

    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            for key in client.list_keys():
                click.echo(_key_line(key, key.source))
        return
    if keys_file is not None:
        records, source = KeyStore(file_records=load_keys_file(keys_file)).list(), str(keys_file)
    else:
        with _open_database(config.data_dir(data_dir)) as db:
            records, source = KeyStore(db.store).list(), "store"
    for record in records:
        click.echo(_key_line(record, source))


# ---------------------------------------------------------------------- index
@main.group("index")
def index_group() -> None:
    """Maintain a SPANN index directory (disk-resident index files)."""


@index_group.command("verify")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def index_verify(path: Path) -> None:
    """Check the manifest, every file's size and checksum, and each posting list's CRC32C; for a
    collection's directory (DATA_DIR/indexes/NAME/spann, no server running) also the generation's
    sequence number against the store's log.

    Prints one summary line (problems follow on stderr); exits 1 when anything is wrong."""
    from lamina.index.spann.admin import verify_index

    result = verify_index(path)
    click.echo(result.summary)
    for problem in result.problems:
        click.echo(f"  {problem}", err=True)
    if not result.ok:
        sys.exit(1)


@index_group.command("compact")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def index_compact(path: Path) -> None:
    """Rewrite the posting file: deltas merged, tombstones and retired heads dropped."""
    from lamina.index.spann.admin import compact_index

    click.echo(compact_index(path))


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
@click.option("--mode", "modes", default="dense", show_default=True, metavar="MODE[,MODE...]",
              help="First stage(s) to search with: dense, sparse, hybrid, or several (one row each).")
@click.option("--fusion", "fusions", default=None, metavar="METHOD[,METHOD...]",
              help="Hybrid fusion(s), one row each: rrf, weighted, zscore, adaptive [default: the hybrid default].")
@click.option("--weights", default=None, metavar="W_DENSE,W_SPARSE", help="Fusion weights of the hybrid stages.")
@click.option("--feedback", "feedbacks", default=None, metavar="M[,M...]",
              help="Pseudo-relevance feedback: fused documents that move the dense query (0: off), one row each "
                   "[default: the fusion's own, 1 for adaptive].")
@click.option("--feedback-weight", type=float, default=None, help="Rocchio's beta for --feedback [default: 0.5].")
@click.option("--rerank", "kappa", type=int, default=None, metavar="KAPPA",
              help="Rerank the best KAPPA candidates by MaxSim (needs token vectors) and take the best 10, as a "
                   "k=10 search does; ranks 11-100 follow the unreranked search, for Recall@100.")
@click.option("--alpha", type=float, default=None, help="Rerank candidate pruning, in [0, 1) [default: off].")
@click.option("--beta", type=int, default=None, help="Rerank early exit after BETA misses [default: off].")
@target_option
@data_dir_option
def bench_quality(dataset_dir: Path, name: str, as_json: bool, out: Path | None, modes: str, fusions: str | None,
                  weights: str | None, feedbacks: str | None, feedback_weight: float | None, kappa: int | None, alpha: float | None, beta: int | None,
                  target: str | None, data_dir: Path | None) -> None:
    """nDCG@10, MRR@10 and Recall@100 of a collection on a BEIR directory's test queries."""
    from lamina.bench.quality import QualitySearcher, quality_configs, quality_report

    try:
        configs = quality_configs(modes, fusions, weights, kappa, alpha, beta, feedbacks, feedback_weight)
    except LaminaError as exc:
        raise click.BadParameter(str(exc)) from None

    def evaluate(coll: Any) -> dict[str, Any]:
        report: dict[str, Any] | None = None
        for system, options in configs:
            one = quality_report(dataset_dir, QualitySearcher(coll, **options), system=system,
                                 params=QualitySearcher.params(**options))
            if report is None:
                report = one
            else:
                report["results"].extend(one["results"])
        return report

    with open_target(target, data_dir) as opened:
        report = evaluate(opened.collection(name))
    for result in report["results"]:
        click.echo(f"{result['system']:<32} nDCG@10 {result['ndcg@10']:.4f}  MRR@10 {result['mrr@10']:.4f}  "
                   f"Recall@100 {result['recall@100']:.4f}", err=as_json)
    if out is not None:
        from lamina.bench.report import write_report

        write_report(report, out)
    if as_json:
        first = report["results"][0]
        click.echo(json.dumps(report | {k: first[k] for k in ("ndcg@10", "mrr@10", "recall@100")}))


@bench.command("ann")
@click.option("--dataset", required=True,
              help="synthetic:N:D[:NQ], minilm:N[:NQ] (real text embeddings), a .npy or .fvecs file, or beir:DIR.")
@click.option("--index", "indexes", default="flat,ivf,hnsw", show_default=True,
              help="Comma-separated kinds: flat, ivf, hnsw (each beside its faiss peer), spann, diskann.")
@click.option("-k", "k", default=10, show_default=True)
@click.option("--max-queries", default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/out"), show_default=True,
              help="Directory for the JSON report and the recall-vs-QPS plot.")
@click.option("--cold/--no-cold", default=True, show_default=True,
              help="Also sweep spann/diskann with their files evicted from the page cache before each query.")
@click.option("--faiss-only", is_flag=True, help="For flat/ivf/hnsw run only the raw faiss index, not Lamina's wrapper.")
@click.option("--spann-param", "spann_params", multiple=True, metavar="NAME=VALUE",
              help="SPANN build setting, e.g. head_ratio=0.08 (see SpannConfig).")
@click.option("--spann-unchecked", is_flag=True,
              help="Also run lamina-spann-unchecked: the same SPANN files read without their CRC32C checks.")
def bench_ann(dataset: str, indexes: str, k: int, max_queries: int, as_json: bool, out: Path, cold: bool,
              faiss_only: bool, spann_params: tuple[str, ...], spann_unchecked: bool) -> None:
    """Recall@10 against QPS, latency, build time, memory and disk: ours beside faiss and diskannpy."""
    from lamina.bench.ann import run_ann
    from lamina.bench.harness import BENCH_KINDS
    from lamina.bench.report import plot_recall_qps
    from lamina.index.spann import SpannConfig

    kinds = [x.strip() for x in indexes.split(",") if x.strip()]
    unknown = set(kinds) - set(BENCH_KINDS)
    if unknown:
        raise click.BadParameter(f"unknown index kind(s) {', '.join(sorted(unknown))}", param_hint="--index")
    spann_config = SpannConfig.from_dict(_parse_typed_params(spann_params, "--spann-param")) if spann_params else None
    report = run_ann(dataset, kinds, k=k, out_dir=out, max_queries=max_queries, progress=not as_json, cold=cold,
                     lamina_dense=not faiss_only, spann_config=spann_config, spann_unchecked=spann_unchecked)
    out.mkdir(parents=True, exist_ok=True)
    plot_recall_qps(report, out / "ann-recall-qps.png")
    _emit(report, as_json, out)


def _parse_typed_params(params: tuple[str, ...], hint: str) -> dict[str, Any]:
    """NAME=VALUE pairs; values read as JSON (ints, floats, true/false), else kept as strings."""
    out: dict[str, Any] = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=hint)
        try:
            out[name.strip()] = json.loads(value)
        except ValueError:
            out[name.strip()] = value
    return out


@bench.command("rerank")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--collection", "name", required=True, help="Name the cached embeddings and token stores are kept under.")
@click.option("--codec", "codecs", default="float16,rq32", show_default=True,
              help="Comma-separated token codecs; the first is the reference the others' nDCG loss is measured to.")
@click.option("--kappa", "kappas", default="15,20,30,50,100", show_default=True, help="Comma-separated kappas.")
@click.option("--alpha", default=0.1, show_default=True, type=float, help="Candidate pruning of the 'cp' rules.")
@click.option("--beta", default=20, show_default=True, type=int, help="Early exit of the 'ee' rules.")
@click.option("--each-rule", is_flag=True, help="Also run candidate pruning alone.")
@click.option("--exhaustive-all", is_flag=True, help="Exhaustive MaxSim with every codec, not only the first.")
@click.option("--all-rules", is_flag=True, help="Rerank with the rules for every codec, not only the first.")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="Dense and token encoder.")
@click.option("--max-queries", default=None, type=int, help="Judged queries to run (default: all).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Embedding and token-store cache [default: $LAMINA_CACHE_DIR/bench or ~/.cache/lamina/bench].")
def bench_rerank(dataset_dir: Path, name: str, codecs: str, kappas: str, alpha: float, beta: int, each_rule: bool,
                 exhaustive_all: bool, all_rules: bool, encoder: str, max_queries: int | None, as_json: bool,
                 out: Path | None, cache_dir: Path | None) -> None:
    """nDCG@10 and latency of first stages, exhaustive MaxSim and MaxSim reranking (kappa, rules, codecs)."""
    from lamina.bench.report import print_table, write_report
    from lamina.bench.rerank import describe_summary, rule_settings, run_rerank

    try:
        kappa_list = [int(x) for x in kappas.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{kappas!r} is not a comma-separated list of integers", param_hint="--kappa") from None
    codec_list = [x.strip() for x in codecs.split(",") if x.strip()]
    report = run_rerank(dataset_dir, name, codecs=codec_list, kappas=kappa_list,
                        rules=rule_settings(alpha, beta, separate=each_rule), cache_dir=cache_dir, encoder=encoder,
                        max_queries=max_queries, exhaustive_all=exhaustive_all, all_rules=all_rules,
                        progress=lambda line: click.echo(line, err=True))
    if out is not None:
        write_report(report, out)
    print_table(report)
    for line in describe_summary(report["summary"]):
        click.echo(line)
    if as_json:
        click.echo(json.dumps(report))


@bench.command("tenants")
@click.option("--n", "n", default=200_000, show_default=True, type=click.IntRange(min=1), help="Vectors.")
@click.option("--dim", default=192, show_default=True, type=click.IntRange(min=1))
@click.option("--tenants", "n_tenants", default=1_000, show_default=True, type=click.IntRange(min=1))
@click.option("--per-bucket", default=100, show_default=True, type=click.IntRange(min=1),
              help="Queries per tenant-size bucket.")
@click.option("--filter-queries", default=100, show_default=True, type=click.IntRange(min=1),
              help="Queries per selectivity of the filter sweep.")
@click.option("--threshold", default=20_000, show_default=True, type=click.IntRange(min=0),
              help="The planner's brute-force threshold (matching ids).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
@click.option("--bm25-docs", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also measure per-tenant BM25 statistics over this many passages (0: no; bench/tenant_bm25.py).")
@click.option("--bm25-only", is_flag=True, help="Only the per-tenant BM25 part (with --bm25-docs).")
def bench_tenants(n: int, dim: int, n_tenants: int, per_bucket: int, filter_queries: int, threshold: int,
                  as_json: bool, out: Path | None, bm25_docs: int, bm25_only: bool) -> None:
    """Multi-tenant search (Curator's protocol) and a filter selectivity sweep: ours beside faiss."""
    from lamina.bench.tenants import run_tenants, summary_lines

    if bm25_docs:
        from lamina.bench.tenant_bm25 import main_bm25

        main_bm25(bm25_docs, n_tenants, out, as_json)
    if bm25_only:
        return
    report = run_tenants(n, dim, n_tenants, per_bucket=per_bucket, filter_queries=filter_queries,
                         threshold=threshold, out_dir=out, progress=True)
    for line in summary_lines(report):
        click.echo(line, err=as_json)
    if as_json:
        click.echo(json.dumps(report))


@bench.command("sparse")
@click.option("--dataset", required=True, help="synthetic-sparse:N[:NQ], or a BEIR directory (also beir:DIR).")
@click.option("--systems", default="exact,lamina-sparse,pyseismic,bm25s", show_default=True,
              help="Comma-separated systems (bm25s runs on BEIR directories only).")
@click.option("--max-queries", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/out"), show_default=True,
              help="Directory for the JSON report and the recall-vs-QPS plot.")
@click.option("--seismic-param", "seismic_params", multiple=True, metavar="NAME=VALUE",
              help="Build setting of lamina-sparse and pyseismic alike, e.g. summary_energy=0.7 (see SeismicConfig).")
def bench_sparse(dataset: str, systems: str, max_queries: int, as_json: bool, out: Path,
                 seismic_params: tuple[str, ...]) -> None:
    """Recall@10 against exact sparse search, single-thread latency, build time and memory:
    lamina-sparse beside pyseismic-lsr, scipy exact scoring and (BEIR) bm25s with nDCG@10."""
    from lamina.bench.sparse import SYSTEMS, run_sparse
    from lamina.bench.sparse_data import check_sparse_spec
    from lamina.index.sparse import SeismicConfig

    names = [x.strip() for x in systems.split(",") if x.strip()]
    unknown = set(names) - set(SYSTEMS)
    if unknown:
        raise click.BadParameter(f"unknown system(s) {', '.join(sorted(unknown))}; expected some of "
                                 f"{', '.join(SYSTEMS)}", param_hint="--systems")
    try:
        check_sparse_spec(dataset)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--dataset") from None
    seismic = None
    if seismic_params:
        seismic = SeismicConfig.from_dict(_parse_typed_params(seismic_params, "--seismic-param"))
    report = run_sparse(dataset, names, out_dir=out, max_queries=max_queries, progress=True, config=seismic)
    _emit(report, as_json, None)


# ---------------------------------------------------------------------- commands in modules of their own
def _register_commands() -> None:
    from lamina.cli_ask import ask
    from lamina.cli_bench_encode import bench_encode
    from lamina.cli_bench_load import bench_load
    from lamina.cli_bench_maintenance import bench_maintenance
    from lamina.cli_bench_rag import bench_rag
    from lamina.cli_bench_transport import bench_transport
    from lamina.cli_facet import bench_facet, facet
    from lamina.cli_generate import bench_generate
    from lamina.cli_graph import bench_graph
    from lamina.cli_kvcache import bench_kvcache, kvcache
    from lamina.cli_ray import RAY_BENCH_COMMANDS, RAY_COMMANDS
    from lamina.cli_rag import bench_ingest_command, ingest_command
    from lamina.cli_remote import call
    from lamina.cli_store import BENCH_COMMANDS, COMMANDS  # store check/repair, backup, restore, snapshot

    for command in (ask, facet, ingest_command, kvcache, call, *COMMANDS, *RAY_COMMANDS):
        main.add_command(command)
    for command in (bench_rag, bench_generate, bench_facet, bench_ingest_command, bench_kvcache, bench_graph,
                    bench_transport, bench_load, bench_encode, bench_maintenance, *BENCH_COMMANDS, *RAY_BENCH_COMMANDS):
        bench.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
