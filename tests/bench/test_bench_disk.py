"""Disk systems of `lamina bench ann` (SPANN, diskannpy), cold-cache eviction and the minilm dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lamina.bench import disk_systems, passages
from lamina.bench.datasets import VectorDataset, load_dataset, parse_minilm
from lamina.bench.disk_systems import (
    DiskannSystem,
    SpannSystem,
    cached_fraction,
    evict_from_page_cache,
)
from lamina.bench.groundtruth import exact_knn
from lamina.bench.harness import make_systems, run_sweep
from lamina.index.spann import SpannConfig


def mixture(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, dim)).astype(np.float32) * 3
    return (centers[rng.integers(0, 20, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def small():
    X = mixture(3000, 16)
    Q = mixture(50, 16, seed=1)
    return X, Q, exact_knn(X, Q, 10, "l2")[1]


# ---------------------------------------------------------------------- page-cache eviction
def test_evict_drops_a_file_from_the_page_cache(tmp_path):
    path = tmp_path / "blob.bin"
    np.random.default_rng(0).random(1 << 19).tofile(path)  # 4 MiB
    path.read_bytes()
    if cached_fraction(path) < 0.5:
        pytest.skip("this filesystem does not keep the file in the page cache")
    assert evict_from_page_cache([path, tmp_path / "missing.bin"]) == path.stat().st_size
    after = cached_fraction(path)
    if after > 0.5:
        pytest.skip("this filesystem (tmpfs?) ignores POSIX_FADV_DONTNEED")
    assert after < 0.1
    path.read_bytes()
    assert cached_fraction(path) > 0.5


# ---------------------------------------------------------------------- SPANN system
def test_spann_system_evicts_its_mapped_posting_file(tmp_path, small):
    """SPANN maps its posting file, and the kernel keeps mapped pages through posix_fadvise:
    the system's evict() unmaps them first, so a cold row really starts from the device."""
    X, Q, _ = small
    probe = tmp_path / "probe.bin"
    np.random.default_rng(0).random(1 << 16).tofile(probe)
    probe.read_bytes()
    evict_from_page_cache([probe])
    if cached_fraction(probe) > 0.1:
        pytest.skip("this filesystem keeps no file in, or drops none from, the page cache")
    system = SpannSystem("l2", SpannConfig(head_ratio=0.1, max_postings=64), workdir=tmp_path)
    system.fit(X)
    try:
        [postings] = system.cache_files()
        postings.read_bytes()
        for q in Q:
            system.query(q, 10)
        assert cached_fraction(postings) > 0.5
        system.evict()
        assert cached_fraction(postings) < 0.1
        assert len(system.query(Q[0], 10)) == 10  # and it still answers, reading the pages back
    finally:
        system.done()


def test_spann_system_searches_like_brute_force_and_cleans_up(tmp_path, small):
    X, Q, truth = small
    system = SpannSystem("l2", SpannConfig(head_ratio=0.1), workdir=tmp_path)
    system.fit(X)
    directory = system._require().path
    assert directory.parent == tmp_path
    system.set_query_arguments(max_postings=32)
    single = np.stack([system.query(q, 10) for q in Q])
    batched = system.batch_query(Q, 10)
    np.testing.assert_array_equal(single, batched)  # the thread split changes nothing
    assert recall(single, truth) >= 0.9
    assert 0 < system.memory_bytes() < X.nbytes
    assert system.disk_bytes() > X.nbytes  # every non-head vector stored, with replicas
    assert all(p.exists() and p.name.startswith("postings") for p in system.cache_files())
    system.done()
    assert not directory.exists()


def test_unchecked_spann_reads_the_same_files_without_checks(tmp_path, small):
    """--spann-unchecked: the same posting file, CRC32C checks off, the same answers; the files go
    with the last of the two systems, whichever order they are done in."""
    X, Q, _ = small
    checked, unchecked = disk_systems.disk_systems(["spann"], "l2", spann_config=SpannConfig(head_ratio=0.1), workdir=tmp_path,
                                      spann_unchecked=True)
    assert unchecked.name == "lamina-spann-unchecked"
    checked.fit(X)
    unchecked.fit(X)
    directory = checked._require().path
    assert unchecked._require().path == directory and unchecked.cache_files() == checked.cache_files()
    for system in (checked, unchecked):
        system.set_query_arguments(max_postings=16)
    np.testing.assert_array_equal(unchecked.batch_query(Q, 10), checked.batch_query(Q, 10))
    assert checked._require().io_stats.checked > 0 and unchecked._require().io_stats.checked == 0
    checked.done()
    assert directory.exists()
    unchecked.done()
    assert not directory.exists()


def test_cold_sweep_reports_separate_rows_with_the_same_answers(tmp_path, small, monkeypatch):
    X, Q, _ = small
    dataset = VectorDataset("tiny", X, Q, "l2")
    system = SpannSystem("l2", SpannConfig(head_ratio=0.1), workdir=tmp_path)
    evicted: list[int] = []
    real_evict = disk_systems.evict_from_page_cache

    def counting(paths):
        evicted.append(1)
        return real_evict(paths)

    from lamina.bench import harness

    monkeypatch.setattr(harness, "evict_from_page_cache", counting)
    monkeypatch.setattr(disk_systems, "evict_from_page_cache", counting)  # SpannSystem.evict's
    rows = run_sweep(dataset, [system], query_args={"spann": [{"max_postings": 4}, {"max_postings": 32}]},
                     cold=True)
    names = [row["system"] for row in rows]
    assert names == ["lamina-spann", "lamina-spann", "lamina-spann-cold", "lamina-spann-cold"]
    assert len(evicted) == 2 * (len(Q) + 1)  # before every timed query and before each batch
    warm, cold = rows[:2], rows[2:]
    for a, b in zip(warm, cold):
        assert a["params"] == b["params"] and a["recall@10"] == b["recall@10"]
        assert a["disk_bytes"] == b["disk_bytes"] > 0
    assert warm[1]["recall@10"] >= warm[0]["recall@10"]
    assert warm[1]["recall@10"] >= 0.9


class LoggingSpann(SpannSystem):
    """A SPANN system that logs (its label, query arguments) for every query it answers."""

    def __init__(self, label: str, log: list[tuple[str, int]], workdir: Path) -> None:
        super().__init__("l2", SpannConfig(head_ratio=0.1), workdir=workdir)
        self.label, self.log, self.postings = label, log, 0

    def set_query_arguments(self, **params):
        self.postings = params.get("max_postings", 0)
        super().set_query_arguments(**params)

    def query(self, q, k):
        self.log.append((self.label, self.postings))
        return super().query(q, k)


def test_cold_rows_of_disk_systems_are_measured_side_by_side(tmp_path, small, monkeypatch):
    """Cold points of every disk system take turns over chunks of queries, so that drift of the
    device over a run lands on all of them; the rows come out as before, warm then cold, by system."""
    from lamina.bench import harness

    X, Q, _ = small
    monkeypatch.setattr(harness, "COLD_CHUNK", 10)
    log: list[tuple[str, int]] = []
    systems = [LoggingSpann("a", log, tmp_path / "a"), LoggingSpann("b", log, tmp_path / "b")]
    grid = {"spann": [{"max_postings": 4}, {"max_postings": 8}]}
    rows = run_sweep(VectorDataset("tiny", X, Q[:30], "l2"), systems, query_args=grid, cold=True)
    assert [(row["system"], row["params"]["max_postings"]) for row in rows] == \
        [("lamina-spann", 4), ("lamina-spann", 8), ("lamina-spann-cold", 4), ("lamina-spann-cold", 8)] * 2
    cold = log[-2 * 2 * 30:]  # single queries of the cold phase (the batches go through batch_query)
    runs = [cold[i] for i in range(0, len(cold), 10)]  # one entry per (chunk, system, point)
    assert runs == [("a", 4), ("a", 8), ("b", 4), ("b", 8),  # chunk 0: a first
                    ("b", 4), ("b", 8), ("a", 4), ("a", 8),  # chunk 1: b first
                    ("a", 4), ("a", 8), ("b", 4), ("b", 8)]
    for warm, cold_row in zip(rows[:2] + rows[4:6], rows[2:4] + rows[6:]):
        assert warm["params"] == cold_row["params"] and warm["recall@10"] == cold_row["recall@10"]
    assert all(not (tmp_path / name).exists() or not any((tmp_path / name).iterdir()) for name in ("a", "b"))


def test_make_systems_skips_diskann_when_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(disk_systems, "diskann_available", lambda: "diskannpy is not importable (test)")
    skipped: list[dict[str, str]] = []
    systems = make_systems(["spann", "diskann", "ivf"], "l2", lamina_dense=False, workdir=tmp_path, skipped=skipped)
    assert [s.name for s in systems] == ["lamina-spann", "faiss-ivf"]
    assert skipped == [{"system": "diskannpy", "reason": "diskannpy is not importable (test)"}]
    with pytest.raises(ValueError, match="unknown index kind"):
        make_systems(["spann", "annoy"], "l2")


@pytest.mark.slow
def test_diskann_system_against_brute_force(tmp_path, small):
    pytest.importorskip("diskannpy")
    X, Q, truth = small
    system = DiskannSystem("l2", workdir=tmp_path, graph_degree=16, complexity=32)
    system.fit(X)
    system.set_query_arguments(complexity=64)
    single = np.stack([system.query(q, 10) for q in Q])
    assert recall(single, truth) >= 0.9
    assert recall(system.batch_query(Q, 10), truth) >= 0.9
    assert 0 < system.memory_bytes() < X.nbytes
    assert system.disk_bytes() > X.nbytes
    assert [p.name for p in system.cache_files()] == ["ann_disk.index"]
    system.done()
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------- minilm passages
def test_clean_keeps_prose_and_drops_code_and_fragments():
    assert passages.clean("A   perfectly ordinary\n sentence about the wing in a slipstream.") == \
        "A perfectly ordinary sentence about the wing in a slipstream."
    assert passages.clean("too short") is None
    assert passages.clean("x = [1, 2, 3] + {4: 5} ** 6 // 7 - 8 * 9 & 10 | 11 ^ 12 % 13") is None
    long = ("This sentence is long enough to count. " * 20).strip()
    cut = passages.clean(long)
    assert cut is not None and len(cut) <= passages.MAX_CHARS and cut.endswith(".")


def test_gather_passages_is_distinct_deterministic_and_bounded():
    text = "\n\n".join(f"Paragraph number {i} talks about topic {i % 7} in plain words." for i in range(50))
    sources = lambda: [passages.paragraphs(text), passages.paragraphs(text)]
    first = passages.gather_passages(30, sources())
    assert len(first) == len(set(first)) == 30
    assert first == passages.gather_passages(30, sources())
    with pytest.raises(ValueError, match="only 50 distinct"):
        passages.gather_passages(51, sources())


def test_docstring_passages_read_python_files(tmp_path):
    (tmp_path / "mod.py").write_text('def f():\n    """Return the answer to the question that was asked.\n\n'
                                     '    x\n    """\n    return 42\n')
    assert list(passages.docstring_passages(tmp_path)) == ["Return the answer to the question that was asked."]


class FakeEncoder:
    """Deterministic unit vectors from a text's hash; counts its calls."""

    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def encode_documents(self, texts):
        self.calls += 1
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(8) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    encode_queries = encode_documents


def test_minilm_spec_embeds_once_and_holds_out_queries(tmp_path, monkeypatch):
    text = "\n\n".join(f"Passage {i} is a small piece of prose about subject {i}." for i in range(400))
    monkeypatch.setattr(passages, "default_sources", lambda: [passages.paragraphs(text)])
    encoder = FakeEncoder()
    first = load_dataset("minilm:300:20", encoder=encoder, cache_dir=tmp_path)
    assert first.base.shape == (300, 8) and first.queries.shape == (20, 8) and first.metric == "ip"
    # held-out queries are not in the base
    assert not (np.abs(first.queries @ first.base.T) > 0.99999).any()
    again = load_dataset("minilm:300:20", encoder=encoder, cache_dir=tmp_path, max_queries=5)
    assert encoder.calls == 1  # the second load reads the cache
    np.testing.assert_array_equal(first.base, again.base)
    assert len(again.queries) == 5
    chunks = list(tmp_path.glob("minilm-*/chunk-*.npy"))
    assert len(chunks) == 1 and len(chunks[0].with_suffix(".txt").read_text().splitlines()) == 400
    # a larger N reuses the cached chunk; a smaller one is a prefix of it
    smaller = passages.embedded_passages(100, encoder, tmp_path)
    assert encoder.calls == 1
    np.testing.assert_array_equal(smaller, np.load(chunks[0])[:100])
    for bad in ("minilm:", "minilm:x", "minilm:10:0", "minilm:1:2:3"):
        with pytest.raises(ValueError, match="minilm"):
            parse_minilm(bad)
    with pytest.raises(ValueError, match="encoder"):
        load_dataset("minilm:10", cache_dir=tmp_path)


# ---------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_bench_ann_spann_json(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lamina.cli import main

    monkeypatch.setenv("LAMINA_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "ann", "--dataset", "synthetic:3000:8:20", "--index", "spann",
                                       "--json", "--out", str(out), "--spann-param", "head_ratio=0.1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    systems = {row["system"] for row in report["results"]}
    assert systems == {"lamina-spann", "lamina-spann-cold"}
    assert all(row["disk_bytes"] > 0 and row["memory_bytes"] > 0 for row in report["results"])
    assert report["meta"]["raw_bytes"] == 3000 * 8 * 4
    assert not any((tmp_path / "cache" / "bench" / "indexes").iterdir())  # index files removed after the run
    bad = CliRunner().invoke(main, ["bench", "ann", "--dataset", "synthetic:100:4", "--index", "spann,annoy"])
    assert bad.exit_code != 0 and "annoy" in bad.output


def test_spann_param_bad_name_is_reported(tmp_path):
    from click.testing import CliRunner

    from lamina.cli import main

    result = CliRunner().invoke(main, ["bench", "ann", "--dataset", "synthetic:100:4", "--index", "spann",
                                       "--out", str(tmp_path), "--spann-param", "no_such=1"])
    assert result.exit_code != 0 and "no_such" in result.output


def test_paths_are_under_workdir(tmp_path):
    assert disk_systems.default_workdir().name == "indexes"
    assert isinstance(disk_systems.default_workdir(), Path)
