"""`lamina store check|repair`, `lamina backup`, `lamina restore` and `lamina snapshot`: the data
directory's safety commands (README, "Durability")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from lamina import config
from lamina.index.errors import StoreCorrupted

data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None,
    help="Data directory [default: $LAMINA_DATA_DIR or ./lamina-data].")


@click.group("store")
def store_group() -> None:
    """Check and repair the data directory's store (RocksDB)."""


def _existing(data_dir: Path | None) -> Path:
    directory = config.data_dir(data_dir)
    if not (directory / "store").is_dir():
        raise click.ClickException(f"{directory} holds no store (no {directory / 'store'} directory)")
    return directory


@store_group.command("check")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def store_check(data_dir: Path | None, as_json: bool) -> None:
    """Read every key of every column family with checksums verified, check the counters, id maps,
    documents and vectors against one another and the store against the catalog; exit 1 on damage."""
    from lamina.index.catalog import check_store
    from lamina.index.store import Store
    from lamina.index.store_check import StoreReport, check_store_files

    directory = _existing(data_dir)
    try:
        store = Store(directory / "store")
    except StoreCorrupted as exc:
        report = StoreReport(problems=[str(exc)])
    else:
        try:
            report = check_store_files(store)
            try:
                check_store(directory, store.last_seq, list(report.collections))
            except StoreCorrupted as exc:
                report.problems.append(str(exc))
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "seq": report.seq, "keys": report.keys,
                               "collections": report.collections, "problems": report.problems}))
    else:
        click.echo(f"store {directory / 'store'}: seq {report.seq}, keys read "
                   + ", ".join(f"{cf} {n}" for cf, n in report.keys.items()))
        for name, n in report.collections.items():
            click.echo(f"  collection {name}: {n} documents")
        for problem in report.problems:
            click.echo(f"DAMAGE: {problem}")
        click.echo("OK" if report.ok else f"{len(report.problems)} problem(s) found: run `lamina store repair`")
    if not report.ok:
        raise SystemExit(1)


@store_group.command("repair")
@data_dir_option
def store_repair(data_dir: Path | None) -> None:
    """RocksDB repair (salvage every readable record), the records mended to agree, every index
    snapshot dropped and rebuilt from the repaired store; reports what was lost against the catalog."""
    from lamina.index.catalog import CATALOG, HIGHWATER, Catalog, witnesses
    from lamina.index.store_check import repair_store, store_counts
    from lamina.retrieval.collection import Database

    directory = _existing(data_dir)
    before = Catalog.read(directory)
    seen = witnesses(directory)
    counted = store_counts(directory / "store") or {}
    dropped = repair_store(directory / "store")
    shutil.rmtree(directory / "indexes", ignore_errors=True)
    for name in (CATALOG, HIGHWATER):  # the loss is accepted now: the catalog restarts from the store
        (directory / name).unlink(missing_ok=True)
    with Database(directory) as db:
        names = [c.name for c in db.list_collections()]
        for name in names:
            db.collection(name).rebuild()
            now = db.collection(name).count()
            was = f" (its counter said {counted[name]}: {counted[name] - now} lost)" \
                if counted.get(name, now) != now else ""
            click.echo(f"collection {name}: {now} documents{was}, indexes rebuilt")
        seq = db.store.last_seq
    expected = max(seen.values(), default=seq)
    lost_collections = sorted(set(before.collections) - set(names)) if before else []
    gap = f"{expected - seq} acknowledged write(s) lost" if expected > seq else "its sequence number is the catalog's"
    click.echo(f"store repaired at seq {seq} (the catalog had acknowledged {expected}): {gap}")
    if lost_collections:
        click.echo(f"collections lost: {', '.join(lost_collections)}")
    for line in dropped:
        click.echo(f"lost {line}")


@click.command("backup")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
def backup(data_dir: Path, dest: Path) -> None:
    """A consistent copy of DATA_DIR in DEST (new or empty): a RocksDB checkpoint plus the index
    snapshots. While a server holds DATA_DIR, ask it instead: `lamina snapshot --target HOST:PORT`."""
    from lamina.index.errors import StoreLocked
    from lamina.retrieval.collection import Database

    try:
        db = Database(data_dir)
    except StoreLocked as exc:
        raise click.ClickException(f"{exc}; while a server runs, ask it for the backup: "
                                   "`lamina snapshot NAME --target HOST:PORT`") from None
    with db:
        manifest = db.backup(dest)
    click.echo(f"backup of {data_dir} at seq {manifest['seq']} in {dest} "
               f"({len(manifest['collections'])} collection(s))")


@click.command("restore")
@click.argument("backup_dir", metavar="BACKUP", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data_dir", type=click.Path(path_type=Path))
def restore(backup_dir: Path, data_dir: Path) -> None:
    """Restore BACKUP into DATA_DIR (new or empty); it answers as the original did at the backup's seq."""
    from lamina.retrieval.backup import restore_backup

    manifest = restore_backup(backup_dir, data_dir)
    click.echo(f"restored {backup_dir} (seq {manifest['seq']}) into {data_dir}")


@click.command("snapshot")
@click.argument("name", required=False)
@click.option("--target", default=None, metavar="HOST:PORT", help="The server [default: $LAMINA_TARGET].")
@click.option("--api-key", envvar="LAMINA_API_KEY", default=None, help="An admin key [default: $LAMINA_API_KEY].")
def snapshot(name: str | None, target: str | None, api_key: str | None) -> None:
    """Ask a running server for a backup of its data directory (Collections/Snapshot), written to
    <data_dir>/backups/NAME on the server (default NAME: backup-<UTC time>)."""
    from lamina.service.client import Client

    with Client(target or config.default_target(), api_key=api_key) as client:
        path, seq = client.snapshot(name)
    click.echo(f"backup at seq {seq} in {path} (on the server)")


@click.command("crash")
@click.option("--rounds", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--kinds", default="flat,ivf,hnsw,spann", show_default=True,
              help="Index kinds, one collection each, all in one server.")
@click.option("--thresholds/--no-thresholds", default=True, show_default=True,
              help="Also run the build-threshold crossing (SPANN build_size, IVF training) scenarios.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("bench/out/crash"), show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_crash(rounds: int, kinds: str, thresholds: bool, seed: int, work_dir: Path, as_json: bool,
                out: Path | None) -> None:
    """SIGKILL a server at random moments under a writer and a reader, ROUNDS times, and check that
    no acknowledged write is lost, no delete resurrected, Count and search right (bench/crash.py)."""
    from lamina.bench.crash import KINDS, Scenario, run_scenario

    names = tuple(k.strip() for k in kinds.split(",") if k.strip())
    if not names or set(names) - set(KINDS):
        raise click.BadParameter(f"expected some of {', '.join(KINDS)}", param_hint="--kinds")
    scenarios = [("random", Scenario(kinds=names, rounds=rounds, seed=seed))]
    if thresholds:
        scenarios += [(f"{t}-threshold", Scenario(kinds=(t,), rounds=max(2, rounds // 10), threshold=t, seed=seed))
                      for t in ("spann", "ivf") if t in names]
    results = {}
    for label, scenario in scenarios:
        shutil.rmtree(work_dir / label, ignore_errors=True)
        results[label] = run_scenario(work_dir / label, scenario,
                                      progress=lambda line, label=label: click.echo(f"{label} {line}", err=True))
        rep = results[label]
        click.echo(f"{label}: {rep['rounds']} rounds ({rep['sigkill']} SIGKILL, {rep['sigterm']} SIGTERM), "
                   f"{rep['acknowledged_writes']} acknowledged writes, points {rep['points']}, "
                   f"{len(rep['violations'])} violation(s) in {rep['seconds']:.0f} s", err=as_json)
        for violation in rep["violations"][:20]:
            click.echo(f"  VIOLATION {violation}", err=as_json)
    report = {"benchmark": "crash", "scenarios": results}
    _write(report, out, "crash.json")
    if as_json:
        click.echo(json.dumps(report))


@click.command("corrupt")
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("bench/out/corrupt"), show_default=True)
@click.option("--all-files", is_flag=True, help="Every file, not the first and last of each kind.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_corrupt(work_dir: Path, all_files: bool, as_json: bool, out: Path | None) -> None:
    """Flip, truncate and delete every file of a data directory in turn; record whether Lamina served
    every acknowledged point, repaired, refused with a named error, or answered wrong (bench/corrupt.py).
    Also opens a damaged WAL under each RocksDB recovery mode, RocksDB alone (the choice of mode)."""
    from lamina.bench.corrupt import recovery_modes, run_sweep

    report = run_sweep(work_dir, progress=lambda line: click.echo(line, err=True), per_kind=None if all_files else 2)
    report["recovery_modes"] = recovery_modes(work_dir)
    for row in report["recovery_modes"]:
        click.echo(f"RocksDB alone, {row['damage']:<34} {row['mode']:<32} {row['outcome']}", err=as_json)
    for row in report["table"]:
        click.echo(f"{row['kind']:<26} {row['mutation']:<9} {row['outcome']:<14} {row['cases']}", err=as_json)
    click.echo(f"{len(report['cases'])} cases over {report['files']} files: {report['outcomes']}; "
               f"{report['wrong_answers']} wrong answer(s)", err=as_json)
    _write(report, out, "corrupt.json")
    if as_json:
        click.echo(json.dumps(report))


@click.command("highwater")
@click.option("--writes", default=2000, show_default=True, type=click.IntRange(min=10))
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("bench/out/highwater"), show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_highwater(writes: int, work_dir: Path, as_json: bool, out: Path | None) -> None:
    """Latency of wait=true writes with and without the high-water mark's pwrite, side by side
    write by write (bench/highwater.py)."""
    from lamina.bench.highwater import run

    report = {"benchmark": "highwater", **run(work_dir, writes)}
    for name in ("with_highwater", "without", "note_alone"):
        row = report[name]
        click.echo(f"{name:<15} p50 {row['p50_ms']:.4f} ms  p99 {row['p99_ms']:.4f} ms  mean {row['mean_ms']:.4f} ms",
                   err=as_json)
    click.echo(f"overhead: p50 {report['overhead_p50_pct']:+.2f} %, p99 {report['overhead_p99_pct']:+.2f} %", err=as_json)
    _write(report, out, "highwater.json")
    if as_json:
        click.echo(json.dumps(report))


@click.command("token-crc")
@click.option("--docs", default=20_000, show_default=True, type=click.IntRange(min=100))
@click.option("--candidates", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--work-dir", type=click.Path(path_type=Path), default=Path("bench/out/token-crc"), show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Directory for the JSON report.")
def bench_token_crc(docs: int, candidates: int, work_dir: Path, as_json: bool, out: Path | None) -> None:
    """Fetch-and-MaxSim latency of a token store checked on read beside the same store unchecked
    (bench/token_crc.py)."""
    from lamina.bench.token_crc import run

    report = {"benchmark": "token-crc", **run(work_dir, docs=docs, candidates=candidates)}
    for name in ("checked", "unchecked"):
        click.echo(f"{name:<10} p50 {report[name]['p50_ms']:.4f} ms  p99 {report[name]['p99_ms']:.4f} ms", err=as_json)
    click.echo(f"overhead: p50 {report['overhead_p50_pct']:+.2f} %", err=as_json)
    _write(report, out, "token-crc.json")
    if as_json:
        click.echo(json.dumps(report))


def _write(report: dict, out: Path | None, name: str) -> None:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(report, indent=1))


COMMANDS = (store_group, backup, restore, snapshot)
BENCH_COMMANDS = (bench_crash, bench_corrupt, bench_highwater, bench_token_crc)
