"""`lamina bench maintenance`: search p99 steady, and while each index maintenance job runs in the
background and inline (under the write lock), side by side in one run (`lamina.bench.maintenance`)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("maintenance")
@click.option("--jobs", default="all", show_default=True,
              help="Comma-separated jobs: ivf-train, scan-codes-train, token-codec-train, tenant-retrain, "
                   "spann-build, snapshot (or all).")
@click.option("--n", default=100_000, show_default=True, help="Vectors of the IVF, scan-code and snapshot collections.")
@click.option("--dim", default=96, show_default=True)
@click.option("--token-rows", default=65_536, show_default=True, help="Token rows at which the codec trains.")
@click.option("--token-codec", default="pq8", show_default=True)
@click.option("--tenant-n", default=40_000, show_default=True, help="Vectors when the tenant tree re-clusters.")
@click.option("--spann-n", default=50_000, show_default=True, help="SPANN build_size.")
@click.option("--steady-s", default=3.0, show_default=True, help="Seconds of steady-state searching.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON report here.")
def bench_maintenance(jobs: str, n: int, dim: int, token_rows: int, token_codec: str, tenant_n: int,
                      spann_n: int, steady_s: float, seed: int, out: Path | None) -> None:
    """Search latency while IVF/scan-code/token-codec training, tenant re-clustering, the SPANN
    build and a snapshot run: steady, background (now) and inline (the old way), in one run."""
    from lamina.bench.maintenance import JOBS, run

    chosen = JOBS if jobs == "all" else tuple(j.strip() for j in jobs.split(",") if j.strip())
    try:
        report = run(chosen, n=n, dim=dim, token_rows=token_rows, token_codec=token_codec, tenant_n=tenant_n,
                     spann_n=spann_n, steady_s=steady_s, seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--jobs") from None
    click.echo(f"{'job':<20}{'steady p99':>12}{'background p99':>16}{'inline p99':>12}{'inline max':>12}"
               f"{'job s':>8}{'inline s':>9}{'ratio':>7}")
    for job, r in report["jobs"].items():
        s, b, i = r["steady"], r["background"], r["inline"]
        click.echo(f"{job:<20}{s.get('p99_ms', '-'):>12}{b.get('p99_ms', '-'):>16}{i.get('p99_ms', '-'):>12}"
                   f"{i.get('max_ms', '-'):>12}{b['job_s']:>8}{i['job_s']:>9}{r['background_p99_over_steady']!s:>7}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        click.echo(f"wrote {out}")
