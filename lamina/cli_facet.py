"""`lamina facet` (exact aggregates of a payload field) and `lamina bench facet`, registered from `lamina.cli`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lamina import config


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def _text_lines(result: Any) -> list[str]:
    """The facet as lines: a keyword's values with their counts, or a numeric field's range and bins."""
    if result.kind == "keyword":
        lines = [f"{json.dumps(c.value)}\t{c.count}" for c in result.counts]
        return [*lines, f"{result.documents} documents, {result.distinct} distinct values of {result.field}"]
    s = result.stats
    head = f"{result.documents} documents, {s.count} with a value of {result.field}"
    if s.count:
        head += f": min {_number(s.min)}, max {_number(s.max)}"
    bins = [f"[{_number(lo)}, {_number(hi)}{']' if i == len(s.counts) - 1 else ')'}\t{n}"
            for i, (lo, hi, n) in enumerate(zip(s.edges[:-1], s.edges[1:], s.counts))]
    return [*bins, head]


@click.command()
@click.argument("field")
@click.option("--collection", "name", required=True)
@click.option("--limit", default=10, show_default=True, type=int, help="Keyword fields: the top values shown.")
@click.option("--bins", default=None, type=int, help="Numeric fields: a histogram of BINS equal-width bins.")
@click.option("--edges", default=None, metavar="E0,E1,...",
              help="Numeric fields: a histogram over these increasing edges (instead of --bins).")
@click.option("--filter", "filter_json", default=None, metavar="JSON",
              help='Metadata filter, e.g. \'{"must": [{"key": "year", "range": {"gte": 1990}}]}\'.')
@click.option("--tenant", default=None, help="One tenant's documents only.")
@click.option("--target", default=None, metavar="HOST:PORT", help="Ask a running server instead of the data directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the facet as one JSON object.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data directory [default: $LAMINA_DATA_DIR or ./lamina-data].")
def facet(field: str, name: str, limit: int, bins: int | None, edges: str | None, filter_json: str | None,
          tenant: str | None, target: str | None, as_json: bool, data_dir: Path | None) -> None:
    """Exact counts of FIELD's values (keyword), or its min, max and histogram (numeric)."""
    try:
        flt = json.loads(filter_json) if filter_json else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--filter") from None
    if bins is not None and edges is not None:
        raise click.BadParameter("give --bins or --edges, not both", param_hint="--edges")
    histogram: int | list[float] | None = bins
    if edges is not None:
        try:
            histogram = [float(e) for e in edges.split(",")]
        except ValueError:
            raise click.BadParameter(f"not a comma-separated list of numbers: {edges!r}", param_hint="--edges") from None
    options = {"limit": limit, "bins": histogram, "filter": flt, "tenant": tenant}
    if target:
        from lamina.service.client import Client

        with Client(target) as client:
            result = client.facet(name, field, **options)
    else:
        from lamina.cli import _open_database

        with _open_database(config.data_dir(data_dir)) as db:
            result = db.collection(name).facet(field, **options)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "time_ms": result.time_ms}))
    else:
        click.echo("\n".join(_text_lines(result)))


@click.command("facet")
@click.option("--n", "n", default=1_000_000, show_default=True, type=click.IntRange(min=1), help="Documents.")
@click.option("--values", "n_values", default=1_000, show_default=True, type=click.IntRange(min=1),
              help="Distinct keyword values (Zipf-distributed).")
@click.option("--repeats", default=20, show_default=True, type=click.IntRange(min=1), help="Timed runs per case.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_facet(n: int, n_values: int, repeats: int, as_json: bool, out: Path | None) -> None:
    """Facet latency from the payload index beside a brute-force numpy count over value columns."""
    from lamina.bench.facet import run_facet, summary_lines

    report = run_facet(n, n_values, repeats=repeats, out_dir=out)
    for line in summary_lines(report):
        click.echo(line, err=as_json)
    if as_json:
        click.echo(json.dumps(report))
