"""`lamina bench sparse`: datasets, systems against exact search, recall arithmetic, report and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamina.bench.report import RESULT_KEYS
from lamina.bench.sparse import (
    SEISMIC_GRID,
    ExactSparse,
    LaminaSparse,
    SparseSystem,
    make_sparse_systems,
    run_sparse,
    run_sparse_sweep,
    scores_of,
    sparse_recall,
    time_queries,
    top_k,
    write_seismic_inner,
)
from lamina.bench.sparse_data import (
    SparseDataset,
    ZipfTerms,
    beir_sparse,
    cached_synthetic,
    check_sparse_spec,
    parse_synthetic,
    synthetic_sparse,
)
from lamina.index.sparse import SeismicConfig, SparseBatch, exact_search
from lamina.index.sparse.batch import CANONICAL, canonical_status

# no pruning, no block ever skipped: a Seismic index must then be exact
EXHAUSTIVE = [{"query_cut": 1000, "heap_factor": float("inf")}]


@pytest.fixture(scope="module")
def small() -> SparseDataset:
    return synthetic_sparse(3000, 40, vocab_size=2000, doc_draws=60, n_topics=20, seed=3)


# ---------------------------------------------------------------------------- datasets
def test_synthetic_vectors_are_splade_like_and_deterministic():
    data = synthetic_sparse(5000, 50, seed=7)
    again = synthetic_sparse(5000, 50, seed=7)
    other = synthetic_sparse(5000, 50, seed=8)
    for a, b in ((data.docs, again.docs), (data.queries, again.queries)):
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(data.docs.indices[:1000], other.docs.indices[:1000])
    assert data.vocab_size == 30522 and len(data.docs) == 5000 and len(data.queries) == 50
    for batch in (data.docs, data.queries):  # positive, sorted, distinct, inside the vocabulary
        assert canonical_status(batch.indptr, batch.indices, batch.values, 30522) == CANONICAL
    assert 110 <= data.docs.nnz / 5000 <= 135  # ~120 non-zeros a document
    lengths = data.queries.row_lengths()
    assert lengths.min() >= 25 and lengths.max() <= 40 and 30 <= lengths.mean() <= 38
    # Zipfian skew: the 1% most frequent terms hold far more than 1% of the postings
    df = np.bincount(data.docs.indices, minlength=30522)
    assert np.sort(df)[::-1][:305].sum() > 0.15 * df.sum()


def test_zipf_sampler_matches_its_probabilities():
    zipf = ZipfTerms(1000, np.random.default_rng(0))
    assert zipf.popularity.sum() == pytest.approx(1.0)
    draws = zipf.draw(np.random.default_rng(1), 400_000)
    observed = np.bincount(draws, minlength=1000) / len(draws)
    top = np.argsort(-zipf.popularity)[:20]
    np.testing.assert_allclose(observed[top], zipf.popularity[top], rtol=0.05)
    assert np.all(np.diff(zipf.popularity[zipf.term_of_rank]) < 0)  # probability falls with rank


def test_synthetic_cache_returns_the_same_vectors(tmp_path):
    first = cached_synthetic(500, 10, cache_dir=tmp_path)
    assert any(tmp_path.iterdir())
    second = cached_synthetic(500, 10, cache_dir=tmp_path)
    direct = synthetic_sparse(500, 10)
    for got in (first, second):
        np.testing.assert_array_equal(got.docs.values, direct.docs.values)
        np.testing.assert_array_equal(got.queries.indices, direct.queries.indices)


def test_specs_are_checked(tmp_path, tiny_beir):
    assert parse_synthetic("synthetic-sparse:1000") == (1000, 1000)
    assert parse_synthetic("synthetic-sparse:1000:50") == (1000, 50)
    for bad in ("synthetic-sparse:", "synthetic-sparse:0", "synthetic-sparse:10:x", "synthetic-sparse:1:2:3"):
        with pytest.raises(ValueError, match="synthetic-sparse:N"):
            check_sparse_spec(bad)
    with pytest.raises(ValueError, match="neither"):
        check_sparse_spec(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="corpus.jsonl is missing"):
        check_sparse_spec(str(tmp_path))
    check_sparse_spec(str(tiny_beir))
    check_sparse_spec(f"beir:{tiny_beir}")


def test_beir_dataset_is_bm25_over_wordpiece(tiny_beir):
    from lamina.retrieval.encoders.sparse import BM25Encoder

    data = beir_sparse(tiny_beir)
    assert data.query_ids == ["q1", "q2"]  # the judged queries; q3 and q4 have no relevant document
    assert data.doc_ids == ["d1", "d2", "d3", "d4", "d5", "d6"] and data.dropped_queries == 0
    encoder = BM25Encoder()
    texts = [json.loads(line) for line in (tiny_beir / "corpus.jsonl").read_text().splitlines()]
    encoder.fit([f"{d['title']} {d['text']}".strip() for d in texts])
    want = encoder.encode_documents([f"{d['title']} {d['text']}".strip() for d in texts])
    np.testing.assert_array_equal(data.docs.indices, want.indices)
    np.testing.assert_allclose(data.docs.values, want.values)
    # the tokens bm25s gets are the terms of the BM25 vectors, with their counts
    for row, tokens in enumerate(data.query_tokens):
        terms, counts = np.unique(tokens, return_counts=True)
        np.testing.assert_array_equal(terms, data.queries.row(row)[0])
        np.testing.assert_array_equal(counts, data.queries.row(row)[1])


# ---------------------------------------------------------------------------- pieces
def test_top_k_breaks_ties_by_id():
    scores = np.array([1.0, 3.0, 2.0, 3.0, 0.5, 2.0])
    ids = np.array([10, 7, 4, 2, 1, 3])
    np.testing.assert_array_equal(top_k(scores, ids, 3), [2, 7, 3])
    np.testing.assert_array_equal(top_k(scores, ids, 10), [2, 7, 3, 4, 10, 1])


def test_exact_system_matches_the_reference(small):
    system = ExactSparse()
    system.fit(small)
    ids, latencies = time_queries(system, small.queries, 10)
    _, want = exact_search(small.docs, small.queries, 10, vocab_size=small.vocab_size)
    np.testing.assert_array_equal(ids, want)
    assert np.all(latencies > 0) and system.memory_bytes() > small.docs.nnz * 8


def test_scores_and_recall_arithmetic(small):
    true_scores, true_ids = exact_search(small.docs, small.queries, 10, vocab_size=small.vocab_size)
    recomputed = scores_of(small.docs, small.queries, true_ids, small.vocab_size)
    np.testing.assert_allclose(recomputed, true_scores, rtol=1e-5)
    assert sparse_recall(true_ids, recomputed, true_ids, recomputed).min() == 1.0
    # half the answers replaced by the worst documents: recall 0.5
    every_row = np.tile(np.arange(len(small.docs)), (len(small.queries), 1))
    worst = np.argsort(scores_of(small.docs, small.queries, every_row, small.vocab_size), axis=1)[:, :5]
    found = np.concatenate([true_ids[:, :5], worst], axis=1)
    found_scores = scores_of(small.docs, small.queries, found, small.vocab_size)
    np.testing.assert_allclose(sparse_recall(found, found_scores, true_ids, recomputed), 0.5)
    # a different document of the same score as the 10th is not a miss
    tied = true_ids.copy()
    tied[0, 9] = 12345
    tied_scores = recomputed.copy()
    np.testing.assert_allclose(sparse_recall(tied, tied_scores, true_ids, recomputed), 1.0)
    # a query with only 3 matching documents is judged on those 3
    few = np.full((1, 10), -1)
    few[0, :3] = [4, 5, 6]
    few_scores = np.where(few >= 0, 1.0, -np.inf)
    assert sparse_recall(few, few_scores, few, few_scores)[0] == 1.0
    nothing = np.full((1, 10), -1)
    assert sparse_recall(nothing, np.full((1, 10), -np.inf), few, few_scores)[0] == 0.0


def test_seismic_inner_format_round_trip(tmp_path):
    docs = SparseBatch.from_rows([{1: 0.5, 7: 2.0}, {}, {3: 1.25}])
    path = tmp_path / "docs.bin"
    write_seismic_inner(docs, path)
    words = np.fromfile(path, dtype=np.uint32)
    assert words[0] == 3
    assert list(words[1:6]) == [2, 1, 7, *np.array([0.5, 2.0], np.float32).view(np.uint32)]
    assert list(words[6:7]) == [0]
    assert list(words[7:10]) == [1, 3, np.array([1.25], np.float32).view(np.uint32)[0]]
    assert len(words) == 10


# ---------------------------------------------------------------------------- sweeps
def test_exhaustive_seismic_systems_are_exact(small):
    config = SeismicConfig(n_postings=100_000)  # keeps every posting
    names = ["exact", "lamina-sparse", "pyseismic"]
    systems = make_sparse_systems(names, small, config=config, grid=EXHAUSTIVE)
    assert all(isinstance(s, SparseSystem) for s in systems)
    results = run_sparse_sweep(small, systems, k=10)
    by_system = {row["system"]: row for row in results}
    assert by_system["exact"]["recall@10"] == 1.0
    assert by_system["lamina-sparse"]["recall@10"] >= 0.999
    if "pyseismic" in by_system:  # pyseismic-lsr installed
        assert by_system["pyseismic"]["recall@10"] >= 0.99
        assert by_system["pyseismic"]["params"] == {"query_cut": 1000, "heap_factor": 0.0}
    for row in results:
        assert set(RESULT_KEYS) <= set(row) and row["queries"] == 40 and row["p50_ms"] > 0


def test_pruned_sweep_trades_recall_for_work(small):
    grid = [{"query_cut": 1, "heap_factor": 0.5, "exact_postings": 0},  # the Seismic walk, not exact search
            {"query_cut": 20, "heap_factor": 1.43, "exact_postings": 0}]
    results = run_sparse_sweep(small, [LaminaSparse(SeismicConfig(n_postings=100), grid)], k=10)
    assert [row["params"] for row in results] == grid
    low, high = (row["recall@10"] for row in results)
    assert low < high and high >= 0.9  # the ground truth came from an untimed exact search
    assert results[0]["build_params"]["n_postings"] == 100


def test_skipped_systems_are_reported(small, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_seismic(name, *args, **kwargs):
        if name == "seismic":
            raise ImportError("no seismic here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_seismic)
    messages: list[str] = []
    systems = make_sparse_systems(["exact", "pyseismic", "bm25s"], small, skip=messages.append)
    assert [s.name for s in systems] == ["exact"]
    assert any("pyseismic skipped" in m for m in messages) and any("bm25s skipped" in m for m in messages)
    with pytest.raises(ValueError, match="unknown sparse system"):
        make_sparse_systems(["splade"], small)


def test_run_sparse_on_beir_reports_ndcg(tiny_beir, tmp_path):
    pytest.importorskip("bm25s")
    report = run_sparse(str(tiny_beir), ["exact", "lamina-sparse", "bm25s"], out_dir=tmp_path, progress=False,
                        grid=[{"query_cut": 10, "heap_factor": 1.0}])
    assert report["benchmark"] == "sparse" and report["dataset"] == "beir-tiny"
    rows = {row["system"]: row for row in report["results"]}
    assert set(rows) == {"exact", "lamina-sparse", "bm25s"}
    # the same BM25 over the same tokens: the same ranking, the same quality
    assert rows["bm25s"]["recall@10"] == 1.0 and rows["lamina-sparse"]["recall@10"] == 1.0
    assert rows["bm25s"]["ndcg@10"] == pytest.approx(rows["exact"]["ndcg@10"])
    assert rows["lamina-sparse"]["ndcg@10"] == pytest.approx(rows["exact"]["ndcg@10"])
    assert 0 < rows["exact"]["ndcg@10"] <= 1
    assert (tmp_path / "sparse-beir-tiny.json").is_file() and (tmp_path / "sparse-beir-tiny.png").is_file()
    assert report["meta"]["queries"] == 2 and report["meta"]["skipped"] == []


@pytest.mark.slow
def test_cranfield_bm25_quality_matches_bm25s(cranfield: Path):
    pytest.importorskip("bm25s")
    report = run_sparse(str(cranfield), ["exact", "lamina-sparse", "bm25s"], progress=False,
                        grid=[{"query_cut": 100, "heap_factor": float("inf")}, {"query_cut": 20, "heap_factor": 2.0}])
    rows = {row["system"]: row for row in report["results"]}
    exhaustive, pruned = (row for row in report["results"] if row["system"] == "lamina-sparse")
    # Cranfield's published BM25 nDCG@10 is ~0.3; ours must be a real BM25 and agree with bm25s
    assert rows["exact"]["ndcg@10"] > 0.25
    assert abs(rows["bm25s"]["ndcg@10"] - rows["exact"]["ndcg@10"]) < 0.01
    assert rows["bm25s"]["recall@10"] > 0.97
    # 1,400 documents: nothing is pruned statically, so visiting every block is exact
    assert exhaustive["recall@10"] >= 0.999
    assert exhaustive["ndcg@10"] == pytest.approx(rows["exact"]["ndcg@10"], abs=1e-3)
    assert pruned["recall@10"] > 0.85


def test_cli_runs_the_benchmark(tmp_path):
    from lamina.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["bench", "sparse", "--dataset", "synthetic-sparse:1500:20", "--systems",
                                  "exact,lamina-sparse", "--seismic-param", "summary_energy=0.7", "--json",
                                  "--out", str(tmp_path)],
                           env={"LAMINA_CACHE_DIR": str(tmp_path / "cache")})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "sparse"
    systems = [row["system"] for row in report["results"]]
    assert systems[0] == "exact" and systems.count("lamina-sparse") == len(SEISMIC_GRID)
    assert all(row["build_params"]["summary_energy"] == 0.7 for row in report["results"] if row["system"] != "exact")
    typo = runner.invoke(main, ["bench", "sparse", "--dataset", "synthetic-sparse:10", "--seismic-param", "energy=1"])
    assert typo.exit_code != 0 and "energy" in typo.output
    assert (tmp_path / "sparse-synthetic-sparse-1500.json").is_file()
    bad = runner.invoke(main, ["bench", "sparse", "--dataset", "synthetic-sparse:x"])
    assert bad.exit_code == 2 and "synthetic-sparse:N" in bad.output
    bad = runner.invoke(main, ["bench", "sparse", "--dataset", "synthetic-sparse:10", "--systems", "faiss"])
    assert bad.exit_code == 2 and "unknown system" in bad.output
