"""`lamina bench load`: QPS, p50/p99, errors by status and RSS of a real server under mixed load (`lamina.bench.load`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from lamina.index.types import DEFAULT_ENCODER


def _ints(value: str) -> list[int]:
    try:
        out = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return out


def _mix(value: str) -> float:
    """"90:10" (searches:writes) -> the share of writes."""
    try:
        searches, writes = (float(part) for part in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"expected SEARCHES:WRITES such as 90:10, got {value!r}") from None
    if searches < 0 or writes < 0 or searches + writes <= 0:
        raise click.BadParameter(f"expected non-negative shares, got {value!r}")
    return writes / (searches + writes)


@click.command("load")
@click.option("--clients", default="8,16,32", show_default=True, help="Concurrent clients of each level.")
@click.option("--mix", default="90:10", show_default=True, help="Searches:writes (writes upsert one text).")
@click.option("--duration", default=20.0, show_default=True, help="Seconds of each level.")
@click.option("--vectors", "n", default=100_000, show_default=True, help="Vectors in the HNSW collection.")
@click.option("--dim", default=64, show_default=True)
@click.option("--texts", default=1000, show_default=True, help="Texts in the text collection.")
@click.option("--encoder", default=DEFAULT_ENCODER, show_default=True, help="The text collection's encoder.")
@click.option("--heavy", default=20, show_default=True, help="Heavy searches abandoned at 50 ms in the burst.")
@click.option("--heavy-query", "heavy_queries", multiple=True, default=["1000:10000"], show_default=True,
              metavar="K:EF", help="The heavy search of a burst (one burst each); past the server's max_ef_k "
                                   "it is refused, so raise it with --server-arg.")
@click.option("--server-arg", "server_args", multiple=True, metavar="ARG",
              help="An option for `lamina serve`, e.g. --server-arg=--max-ef-k=100000000.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Where to build the data (default: a temporary directory, removed after).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (last line).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_load(clients: str, mix: str, duration: float, n: int, dim: int, texts: int, encoder: str, heavy: int,
               heavy_queries: tuple[str, ...], server_args: tuple[str, ...], data_dir: Path | None, as_json: bool,
               out: Path | None) -> None:
    """Mixed load on a `lamina serve` subprocess: QPS, p50/p99, errors by status, RSS, abandoned queries."""
    from lamina.bench.load import run_load, targets
    from lamina.bench.report import make_report
    from lamina.cli import _emit

    levels, write_share = _ints(clients), _mix(mix)
    bursts = [tuple(_ints(q.replace(":", ","))) for q in heavy_queries]
    if any(len(b) != 2 for b in bursts):
        raise click.BadParameter(f"--heavy-query takes K:EF, got {heavy_queries}")

    def log(line: str) -> None:
        click.echo(line, err=True)

    with tempfile.TemporaryDirectory() as tmp:
        directory = data_dir or Path(tmp) / "data"
        run = run_load(directory, clients=levels, write_share=write_share, duration=duration, n=n, dim=dim,
                       texts=texts, encoder=encoder, heavy=heavy, heavy_queries=bursts,
                       server_args=list(server_args), log=log)
    met = targets(run)
    rows = [{"system": f"lamina-{row['clients']}-clients", "qps": row["qps"], "p50_ms": row["p50_ms"],
             "p99_ms": row["p99_ms"], **{k: v for k, v in row.items() if k not in ("qps", "p50_ms", "p99_ms")}}
            for row in run["levels"]]
    report = make_report("load", f"random:{n}:{dim}+texts:{texts}", rows,
                         meta={"mix": mix, "duration_s": duration, "encoder": encoder, "targets": met,
                               "server_args": list(server_args),
                               **{k: v for k, v in run.items() if k != "levels"}})
    for name, target in met.items():
        log(f"{name}: {target['value']} ({'met' if target['met'] else 'MISSED'})")
    _emit(report, as_json, out)
