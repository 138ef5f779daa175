"""`lamina kvcache warm` and `lamina bench kvcache`: the chunk-KV cache from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lamina import config


def default_cache_dir() -> Path:
    from lamina.rag.generators.models import cache_root

    return cache_root() / "kvcache"


@click.group("kvcache")
def kvcache() -> None:
    """The chunk-KV cache of the local generator (lamina.rag.kvcache)."""


@kvcache.command("warm")
@click.option("--collection", "name", required=True, help="Collection whose chunks to prefill.")
@click.option("--top", default=100, show_default=True, type=int,
              help="Prefill the N most recently written chunks (highest write sequence).")
@click.option("--ids", default=None, help="Comma-separated chunk ids to prefill instead of the most recent.")
@click.option("--model", default=None, help="Generator model: a directory, a .gguf, or smollm2 (the default).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Disk cache [default: $LAMINA_CACHE_DIR/kvcache or ~/.cache/lamina/kvcache].")
@click.option("--disk-mib", default=4096, show_default=True, type=int, help="Disk budget of the cache.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
def kvcache_warm(name: str, top: int, ids: str | None, model: str | None, cache_dir: Path | None, disk_mib: int,
                 data_dir: Path | None) -> None:
    """Prefill a collection's chunks into the disk cache, ahead of the questions that retrieve them."""
    from lamina.cli import _open_database
    from lamina.rag.generators.local import LocalGenerator
    from lamina.rag.kvcache import ChunkKVCache
    from lamina.rag.types import Prompt, PromptPart

    if top < 1:
        raise click.BadParameter(f"--top must be at least 1, got {top}", param_hint="--top")
    with _open_database(config.data_dir(data_dir)) as db:
        coll = db.collection(name)
        if ids:
            wanted = [x.strip() for x in ids.split(",") if x.strip()]
            docs = coll.get(wanted)
            missing = [doc_id for doc_id, doc in zip(wanted, docs) if doc is None]
            if missing:
                raise click.ClickException(f"collection {name!r} has no chunk {', '.join(missing[:5])}")
            texts = [(doc.id, doc.text or "") for doc in docs]
        else:
            recent = sorted(coll.store.iter_documents(coll.name), key=lambda doc: -doc.seq)[:top]
            texts = [(doc.id, doc.text or "") for doc in recent]
    generator = LocalGenerator(model).load()
    cache = ChunkKVCache(memory_bytes=0, disk_bytes=disk_mib << 20, directory=cache_dir or default_cache_dir())
    segments = [segment for chunk_id, text in texts if text
                for segment in generator.segments(Prompt(parts=(PromptPart(text, chunk_id=chunk_id),)))
                if segment.chunk_key is not None]
    computed = cache.warm(generator.model, segments, persist=True)
    click.echo(f"{len(segments)} chunks of {name!r}: {computed} prefilled, {len(segments) - computed} already cached; "
               f"{cache.store.disk_bytes_used / 2**20:.1f} MiB on disk in {cache.store.disk.directory}")


@click.command("kvcache")
@click.option("--prompts", default=24, show_default=True, type=int, help="RAG prompts in the quality pass.")
@click.option("--ttft-prompts", default=2, show_default=True, type=int, help="~2k-token prompts timed.")
@click.option("--repeats", default=3, show_default=True, type=int, help="Timings per prompt (median).")
@click.option("--dataset-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="HotpotQA dev directory [default: ../shared/datasets/hotpotqa-dev500].")
@click.option("--model", default=None, help="Generator model (default: the packaged SmolLM2-135M-Instruct).")
@click.option("--parts", default="quality,ttft,eviction", show_default=True,
              help="Comma-separated parts: quality (tokens, deviation), ttft (timings), eviction.")
@click.option("--threads", default=1, show_default=True, type=int, help="torch intra-op threads.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"), show_default=True,
              help="Directory for the JSON report and the KL plot.")
def bench_kvcache(prompts: int, ttft_prompts: int, repeats: int, dataset_dir: Path | None, model: str | None,
                  parts: str, threads: int, as_json: bool, out: Path) -> None:
    """Chunk-KV reuse against full prefill and prefix caching: tokens, TTFT, deviation, eviction."""
    from lamina.bench.kvcache import describe, run

    from lamina.index.errors import InvalidArgument

    if min(prompts, ttft_prompts, repeats, threads) < 1:
        raise click.BadParameter("--prompts, --ttft-prompts, --repeats and --threads must be at least 1")
    try:
        report = run(prompts=prompts, ttft_prompts=ttft_prompts, repeats=repeats, dataset_dir=dataset_dir,
                     model=model, threads=threads, out_dir=out, say=lambda line: click.echo(line, err=True),
                     parts=[p.strip() for p in parts.split(",") if p.strip()])
    except InvalidArgument as exc:
        raise click.ClickException(str(exc)) from None
    for line in describe(report):
        click.echo(line)
    if as_json:
        click.echo(json.dumps(report))

