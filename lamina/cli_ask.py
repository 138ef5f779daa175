"""`lamina ask`: a cited answer from a collection, in-process or from a running server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lamina import config
from lamina.cli_remote import api_key_option


@click.command()
@click.argument("question")
@click.option("--collection", "name", required=True)
@click.option("--generator", default=None, metavar="local|openai|none|DIR",
              help="In-process: local (SmolLM2-135M-Instruct), local:DIR, openai ($LAMINA_OPENAI_BASE_URL) or "
                   "none (context and citations only) [default: local]. With --target: a name the server "
                   "offers [default: the server's].")
@click.option("--mode", type=click.Choice(["dense", "sparse", "hybrid", "hybrid+graph", "graph"]), default="hybrid",
              show_default=True, help="The retrieval; the +graph modes need a collection built with --graph.")
@click.option("-k", "k", default=20, show_default=True, type=int, help="Chunks retrieved before the budget.")
@click.option("--context-tokens", default=1024, show_default=True, type=int,
              help="Context budget in the generator's tokens.")
@click.option("--max-new-tokens", default=256, show_default=True, type=int)
@click.option("--filter", "filter_json", default=None, metavar="JSON", help="Metadata filter (as `lamina search`).")
@click.option("--tenant", default=None)
@click.option("--explain", is_flag=True, help="Print each stage's plan to stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as one JSON object.")
@click.option("--timeout", default=600.0, show_default=True, type=float, help="Seconds for a remote answer.")
@click.option("--target", default=None, metavar="HOST:PORT", help="Ask a running server.")
@api_key_option
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data directory [default: $LAMINA_DATA_DIR or ./lamina-data].")
def ask(question: str, name: str, generator: str | None, mode: str, k: int, context_tokens: int,
        max_new_tokens: int, filter_json: str | None, tenant: str | None, explain: bool, as_json: bool,
        timeout: float, target: str | None, data_dir: Path | None) -> None:
    """Answer QUESTION from a collection, citing the passages used; the answer streams as it is generated."""
    try:
        flt = json.loads(filter_json) if filter_json else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--filter") from None
    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            _show(client.answer_events(name, question, k=k, mode=mode, filter=flt, tenant=tenant,
                                       generator=generator or "", context_tokens=context_tokens,
                                       max_new_tokens=max_new_tokens, explain=explain, timeout=timeout),
                  as_json, explain)
        return
    from lamina.cli import _open_database

    with _open_database(config.data_dir(data_dir)) as db:
        pipeline = db.collection(name).as_pipeline(
            generator=generator or "local", search={"mode": mode, "k": k}, context_tokens=context_tokens,
            max_new_tokens=max_new_tokens)
        _show(pipeline.events(question, filter=flt, tenant=tenant, explain=explain), as_json, explain)


def _show(events: Any, as_json: bool, explain: bool) -> None:
    from lamina.rag.pipeline import DoneEvent, TokenEvent

    result = None
    for event in events:
        if isinstance(event, TokenEvent) and not as_json:
            click.echo(event.text, nl=False)
        elif isinstance(event, DoneEvent):
            result = event.result
    if result is None:
        raise click.ClickException("the answer ended without a result")
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        if result.answer:
            click.echo()
        for c in result.citations:
            where = "".join(f" {label}{value}" for label, value in (("", c.source), ("p.", c.page),
                                                                    ("§", c.section)) if value is not None)
            click.echo(f"[{c.number}] {c.chunk_id}{where}  ({c.score:.4f})")
        if result.error:
            click.echo(f"generator error: {result.error}", err=True)
        timings = ", ".join(f"{key} {value:.1f}" for key, value in result.timings.items())
        click.echo(f"({timings})", err=True)
    if explain and result.explain is not None:
        click.echo(json.dumps(result.explain), err=True)
    if result.error:
        raise SystemExit(1)
