"""The corruption sweep: every kind of file in a data directory, flipped, truncated or deleted, then
opened and checked against what was acknowledged (issue #20, "Targets").

The base directory is written by a subprocess: flat, HNSW and SPANN collections with tenants and
payload, closed gracefully (table files and index snapshots exist), reopened, written again with
`wait=True`, and SIGKILLed (the WAL holds the last writes). Then for every file and mutation, a
copy is damaged and opened in-process, and the outcome is one of:

    served whole      every acknowledged point present, Count and search right (the damage was
                      harmless, e.g. an informational log)
    repaired          the same, after Lamina rebuilt what was damaged (an index snapshot from the store)
    refused           opening or a request failed with a named error (StoreCorrupted, DataLoss, ...)
    unnamed error     it failed with an error that is not one of lamina.index.errors (a defect)
    WRONG ANSWER      it served fewer points, a resurrected or wrong point, a wrong Count or search
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lamina.bench.crash import DIM, TENANTS, Model, _point, verify

N_FIRST, N_SECOND, BATCH = 300, 200, 20
KINDS = {"flat": {"kind": "flat"}, "hnsw": {"kind": "hnsw", "ef_search": 512},
         "spann": {"kind": "spann", "spann": {"build_size": 100}}}
MUTATIONS = ("flip", "truncate", "delete")
WRITER = """
import os, signal, sys
import numpy as np
from lamina.bench.corrupt import KINDS, N_FIRST, N_SECOND, BATCH, points
from lamina.retrieval.collection import Database
phase = sys.argv[2]
db = Database(sys.argv[1])
for kind, index in KINDS.items():
    coll = db.create_collection("c_" + kind, 8, metric="l2", index=index, encoder=None, sparse=False,
                                payload={"tag": "keyword"}) if phase == "1" else db.collection("c_" + kind)
    start, n = (0, N_FIRST) if phase == "1" else (N_FIRST, N_SECOND)
    rows = points(kind, start, n)
    for i in range(0, n, BATCH):
        coll.upsert(rows[i:i + BATCH], wait=True)
    if phase == "2":
        coll.delete([f"p{j}" for j in range(0, 40, 2)], wait=True)
if phase == "1":
    db.close()
else:
    os.kill(os.getpid(), signal.SIGKILL)
"""


def points(kind: str, start: int, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng([start, len(kind)])
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return [{"id": f"p{j}", "vector": vectors[j - start], "metadata": {"tag": f"g{j % 4}"},
             "tenant": TENANTS[j % len(TENANTS)]} for j in range(start, start + n)]


def expected_model() -> Model:
    model = Model()
    for kind in KINDS:
        state: dict[str, Any] = {}
        for row in points(kind, 0, N_FIRST) + points(kind, N_FIRST, N_SECOND):
            state[row["id"]] = _point(row["vector"], row["metadata"], row["tenant"])
        for j in range(0, 40, 2):
            state[f"p{j}"] = None
        model.state["c_" + kind] = state
    return model


def make_base(directory: Path) -> None:
    for phase in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", WRITER, str(directory), phase], capture_output=True,
                              text=True, timeout=600)
        if proc.returncode not in (0, -9):
            raise RuntimeError(f"the writer failed in phase {phase}: {proc.stderr[-2000:]}")


def file_kind(rel: Path) -> str:
    name, parts = rel.name, rel.parts
    if parts[0] == "store":
        for prefix, kind in (("MANIFEST-", "RocksDB MANIFEST"), ("OPTIONS-", "RocksDB OPTIONS"),
                             ("LOG", "RocksDB info LOG")):
            if name.startswith(prefix):
                return kind
        return {".sst": "RocksDB SST", ".log": "RocksDB WAL"}.get(rel.suffix, f"RocksDB {name}")
    if parts[0] == "indexes":
        if "spann" in parts[2:]:
            return "SPANN manifest" if name == "spann.json" else "SPANN file"
        return "index snapshot manifest" if name == "CURRENT" else "index snapshot file"
    return name


class _Local:
    """The client's interface over an in-process Database (what `verify` calls)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def get(self, name: str, ids: list[str], *, with_vectors: bool = False) -> list[Any]:
        return self.db.collection(name).get(ids, with_vectors=with_vectors)

    def count(self, name: str) -> int:
        return self.db.collection(name).count()

    def search(self, name: str, q: np.ndarray, k: int, *, params: Any = None, tenant: str | None = None) -> list[Any]:
        return self.db.collection(name).search(q, k=k, params=params, tenant=tenant)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def _mutate(path: Path, mutation: str, rng: np.random.Generator) -> None:
    if mutation == "delete":
        path.unlink()
    elif mutation == "truncate":
        os.truncate(path, path.stat().st_size // 2)
    else:
        data = bytearray(path.read_bytes())
        if data:
            for pos in rng.integers(len(data), size=min(16, len(data))):
                data[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))


def run_case(base: Path, rel: Path, mutation: str, work: Path, seed: int = 0) -> dict[str, Any]:
    from lamina.index.errors import LaminaError
    from lamina.retrieval.collection import Database

    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)
    rng = np.random.default_rng(seed)
    _mutate(work / rel, mutation, rng)
    model = expected_model()
    handler = _Warnings()
    logging.getLogger("lamina").addHandler(handler)
    outcome, detail = "served whole", ""
    try:
        with Database(work) as db:
            violations = verify(_Local(db), model, rng)
        named = [v for v in violations if "unavailable after the restart" in v]
        if violations and len(named) == len(violations) and all(_named(v) for v in named):
            outcome, detail = "refused", named[0]
        elif violations:
            outcome, detail = "WRONG ANSWER", "; ".join(violations[:3])
        elif handler.records:
            outcome, detail = "repaired", handler.records[0]
    except LaminaError as exc:
        outcome, detail = "refused", f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        outcome, detail = "unnamed error", f"{type(exc).__name__}: {exc}"
    finally:
        logging.getLogger("lamina").removeHandler(handler)
    return {"file": rel.as_posix(), "kind": file_kind(rel), "mutation": mutation, "outcome": outcome,
            "detail": detail[:300]}


def _named(violation: str) -> bool:
    from lamina.index import errors

    head = violation.split("unavailable after the restart: ", 1)[1].split(":", 1)[0]
    return isinstance(getattr(errors, head, None), type)


def run_sweep(out_dir: Path, progress: Any = None, *, per_kind: int | None = 2) -> dict[str, Any]:
    """Every mutation of every file (`per_kind` None), or of the first and last `per_kind` files of
    each kind (the many files of one kind, e.g. an index snapshot's, take one code path)."""
    base = out_dir / "base"
    shutil.rmtree(base, ignore_errors=True)
    make_base(base)
    files = sorted(p.relative_to(base) for p in base.rglob("*") if p.is_file() and p.name != "LOCK")
    if per_kind is not None:
        by_kind: dict[str, list[Path]] = {}
        for rel in files:
            by_kind.setdefault(file_kind(rel), []).append(rel)
        files = sorted({rel for group in by_kind.values()
                        for rel in group[:(per_kind + 1) // 2] + group[len(group) - per_kind // 2:]})
    cases = []
    for rel in files:
        for mutation in MUTATIONS:
            case = run_case(base, rel, mutation, out_dir / "case")
            cases.append(case)
            if progress:
                progress(f"{case['kind']:<26} {case['file']:<48} {mutation:<9} {case['outcome']}")
    shutil.rmtree(out_dir / "case", ignore_errors=True)
    table = Counter((c["kind"], c["mutation"], c["outcome"]) for c in cases)
    return {"benchmark": "corrupt", "cases": cases, "files": len(files),
            "outcomes": dict(Counter(c["outcome"] for c in cases)),
            "table": [{"kind": k, "mutation": m, "outcome": o, "cases": n} for (k, m, o), n in sorted(table.items())],
            "wrong_answers": sum(c["outcome"] == "WRONG ANSWER" for c in cases)}


RAW_WRITER = """
import os, signal, sys
import rocksdict
from lamina.index.store import store_options
db = rocksdict.Rdict(sys.argv[1], store_options())
opts = rocksdict.WriteOptions()
opts.sync = True
for i in range(3000):
    db.put(b"k%06d" % i, os.urandom(100), opts)  # acknowledged: sync=True returned
os.kill(os.getpid(), signal.SIGKILL)
"""
RECOVERY_MODES = ("point_in_time", "tolerate_corrupted_tail_records", "absolute_consistency")


def recovery_modes(work: Path) -> list[dict[str, Any]]:
    """Which RocksDB WAL recovery mode keeps every acknowledged write and refuses damage: 3,000 synced
    puts, SIGKILL, then each damage opened under each mode (RocksDB alone, no catalog)."""
    import rocksdict

    from lamina.index.store import store_options

    base = work / "raw"
    shutil.rmtree(base, ignore_errors=True)
    subprocess.run([sys.executable, "-c", RAW_WRITER, str(base)], capture_output=True, timeout=300)
    damages = {
        "none": lambda d: None,
        "WAL: 1 byte flipped at 1/8": lambda d: _flip_at(next(d.glob("*.log")), 8),
        "WAL: truncated to half": lambda d: os.truncate(next(d.glob("*.log")), next(d.glob("*.log")).stat().st_size // 2),
        "WAL: last 5 bytes cut (torn tail)": lambda d: os.truncate(next(d.glob("*.log")),
                                                                    next(d.glob("*.log")).stat().st_size - 5),
    }
    rows = []
    for damage, mutate in damages.items():
        for mode in RECOVERY_MODES:
            d = work / "raw-case"
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(base, d)
            mutate(d)
            opts = store_options()
            opts.set_wal_recovery_mode(getattr(rocksdict.DBRecoveryMode, mode)())
            try:
                db = rocksdict.Rdict(str(d), opts)
                outcome = f"opened with {sum(1 for _ in db.keys())} of 3000"
                db.close()
            except Exception as exc:
                outcome = f"refused: {str(exc).split(':')[0]}: {str(exc).split(':')[1].strip()[:40]}"
            rows.append({"damage": damage, "mode": mode, "outcome": outcome})
    shutil.rmtree(work / "raw-case", ignore_errors=True)
    return rows


def _flip_at(path: Path, fraction: int) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // fraction] ^= 0x10
    path.write_bytes(bytes(data))
