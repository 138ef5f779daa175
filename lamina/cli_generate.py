"""`lamina bench generate`: a generator's time to first token at a given context, beside the full prefill."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("generate")
@click.option("--generator", "spec", default="local", show_default=True,
              help="local, local:DIR, openai, openai:BASE_URL (see the README's Generators section).")
@click.option("--context-tokens", type=click.IntRange(min=64), default=1024, show_default=True,
              help="Prompt size in the generator's tokens, template included.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--new-tokens", type=click.IntRange(min=1), default=16, show_default=True,
              help="Tokens generated a run (the decode rate comes from them).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch intra-op threads (local).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (last line).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_generate(spec: str, context_tokens: int, repeats: int, new_tokens: int, threads: int | None,
                   as_json: bool, out: Path | None) -> None:
    """Time to first token and full prefill time of a generator at a context of --context-tokens."""
    from lamina.bench.generation import measure_ttft
    from lamina.bench.report import make_report, print_table, write_report
    from lamina.rag.generators import LocalGenerator, load_generator

    generator = load_generator(spec)
    if isinstance(generator, LocalGenerator):
        if threads is not None:
            generator.threads = threads
        generator.load()
    result = measure_ttft(generator, context_tokens=context_tokens, repeats=repeats, new_tokens=new_tokens)
    params = {"context_tokens": context_tokens, "new_tokens": new_tokens, "repeats": repeats}
    runs = result.pop("runs")
    report = make_report("generate", f"synthetic-context-{context_tokens}",
                         [{**result, "system": f"{generator.name}:{result.get('model', spec)}", "params": params}],
                         meta={"spec": spec, "runs": runs})
    if out is not None:
        write_report(report, out)
    print_table(report)
    if as_json:
        click.echo(json.dumps(report))
