"""`lamina bench rerank`: the configurations, their cross-checks, the summary of targets, the CLI.

The end-to-end runs use the tiny random BERT of tests/conftest.py (no semantics, but the real
encoding, first-stage, token-store and rerank code); exhaustive MaxSim is checked against the
rerank of every document, which must give the same ranking.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lamina.bench.rerank import (
    FirstStages,
    describe_summary,
    exhaustive_runs,
    load_inputs,
    rerank_runs,
    rule_settings,
    run_rerank,
    summarise,
    token_store,
)
from lamina.cli import main

WORDS = "wing lift drag heat transfer boundary layer flow shock pressure".split()


@pytest.fixture
def small_beir(tmp_path, beir_writer):
    """Twenty documents of the tiny model's words, six judged queries."""
    rng = np.random.default_rng(7)
    corpus = {f"d{i}": ("", " ".join(rng.choice(WORDS, size=int(rng.integers(3, 9))))) for i in range(20)}
    queries = {f"q{j}": " ".join(rng.choice(WORDS, size=3)) for j in range(6)}
    qrels = [(f"q{j}", f"d{int(d)}", int(rng.integers(1, 3))) for j in range(6)
             for d in rng.choice(20, size=3, replace=False)]
    return beir_writer(tmp_path / "small", corpus, queries, qrels)


def test_inputs_are_cached_and_reused(small_beir, tmp_path, tiny_model_dir):
    first = load_inputs(small_beir, "small", cache_dir=tmp_path / "cache", encoder=str(tiny_model_dir))
    assert not first.cached and len(first.query_tokens) == 6
    assert first.doc_offsets[-1] == len(first.doc_tokens) and len(first.doc_offsets) == 21
    again = load_inputs(small_beir, "small", cache_dir=tmp_path / "cache", encoder=str(tiny_model_dir))
    assert again.cached
    np.testing.assert_array_equal(again.doc_tokens, first.doc_tokens)
    np.testing.assert_array_equal(again.query_dense, first.query_dense)
    # another collection name is another cache entry
    assert not load_inputs(small_beir, "other", cache_dir=tmp_path / "cache", encoder=str(tiny_model_dir)).cached


def test_reranking_every_document_equals_exhaustive_maxsim(small_beir, tmp_path, tiny_model_dir):
    inputs = load_inputs(small_beir, "small", cache_dir=tmp_path / "cache", encoder=str(tiny_model_dir))
    store, _ = token_store(inputs, "float16", tmp_path / "store")
    exhaustive, _ = exhaustive_runs(inputs, store, block_tokens=16)  # several blocks
    stages = FirstStages.build(inputs)
    candidates = [stages.search("dense", j, 20) for j in range(len(inputs.qids))]
    assert all(len(ids) == 20 for ids, _ in candidates)
    reranked, times, scored = rerank_runs(inputs, store, candidates, kappa=20, alpha=None, beta=None)
    assert (scored == 20).all() and (times >= 0).all()
    for got, want in zip(reranked, exhaustive):
        np.testing.assert_array_equal(got, want)
    # a stored, reloaded store gives the same answers
    again, build_s = token_store(inputs, "float16", tmp_path / "store")
    assert build_s == 0.0
    np.testing.assert_array_equal(np.concatenate(exhaustive_runs(inputs, again)[0]), np.concatenate(exhaustive))


def test_hybrid_is_the_rrf_of_sparse_and_dense(small_beir, tmp_path, tiny_model_dir):
    inputs = load_inputs(small_beir, "small", cache_dir=tmp_path / "cache", encoder=str(tiny_model_dir))
    stages = FirstStages.build(inputs)
    for j in range(len(inputs.qids)):
        ids, scores = stages.search("hybrid", j, 10)
        sparse, dense = stages.search("sparse", j, 10)[0], stages.search("dense", j, 10)[0]
        expect = {}
        for ranked in (sparse, dense):
            for rank, doc in enumerate(ranked[ranked >= 0].tolist()):
                expect[doc] = expect.get(doc, 0.0) + 1 / (60 + rank + 1)
        for doc, score in zip(ids.tolist(), scores.tolist()):
            assert score == pytest.approx(expect[doc], rel=1e-6)
        assert len(ids) == min(10, len(expect))


@pytest.mark.slow
def test_report_has_every_configuration(small_beir, tmp_path, tiny_model_dir):
    report = run_rerank(small_beir, "small", codecs=("float16", "pq4x4"), kappas=(15, 20),
                        rules=rule_settings(0.1, 2, separate=True), cache_dir=tmp_path / "cache",
                        encoder=str(tiny_model_dir),
                        exhaustive_all=True, all_rules=True)
    rows = report["results"]
    systems = [r["system"] for r in rows]
    assert systems.count("sparse") == systems.count("dense") == systems.count("hybrid") == 1
    assert systems.count("exhaustive-maxsim") == 2
    reranks = [r for r in rows if r["system"].endswith("+rerank")]
    assert len(reranks) == 3 * 2 * 4 * 2  # stages x kappas x rules x codecs
    for row in rows:
        assert 0.0 <= row["ndcg@10"] <= 1.0
        for key in ("first_p50_ms", "first_mean_ms", "rerank_p50_ms", "rerank_mean_ms", "total_p50_ms",
                    "total_mean_ms"):
            assert row[key] >= 0.0
        assert row["total_mean_ms"] == pytest.approx(row["first_mean_ms"] + row["rerank_mean_ms"])
    assert {r["bytes_per_token"] for r in reranks} == {2 * 16, 2}  # float16 of 16-d, 4 x 4 bits
    # twenty documents: kappa=20 over the dense stage reranks everything, as exhaustive MaxSim does
    for codec in ("float16", "pq4x4"):
        full = [r for r in reranks if r["params"] == {"stage": "dense", "kappa": 20, "rules": "none", "codec": codec}]
        exhaustive = [r for r in rows if r["system"] == "exhaustive-maxsim" and r["params"]["codec"] == codec]
        assert full[0]["ndcg@10"] == pytest.approx(exhaustive[0]["ndcg@10"])
    assert set(report["summary"]) == {"quality_latency", "rules", "compression"}
    assert report["summary"]["compression"]["codecs"]["pq4x4"]["bytes_per_token"] == 2


# ---------------------------------------------------------------------- the summary of targets
def row(system, ndcg, rerank_ms, first_ms=1.0, **params):
    return {"system": system, "params": params, "ndcg@10": ndcg, "first_mean_ms": first_ms,
            "rerank_mean_ms": rerank_ms, "total_mean_ms": first_ms + rerank_ms,
            "bytes_per_token": 768 if params.get("codec") == "float16" else 32}


def crafted(pq_loss=0.004, ee_ms=5.0, ee_change=0.001):
    rows = [row("exhaustive-maxsim", 0.50, 200.0, 0.0, codec="float16"),
            row("exhaustive-maxsim", 0.50 - pq_loss, 200.0, 0.0, codec="pq32")]
    for codec, loss in (("float16", 0.0), ("pq32", pq_loss)):
        for kappa, ndcg in ((15, 0.48), (100, 0.497)):
            rows.append(row("dense+rerank", ndcg - loss, kappa / 10, kappa=kappa, stage="dense", rules="none",
                            codec=codec))
            rows.append(row("dense+rerank", ndcg - loss + ee_change, ee_ms * kappa / 100, kappa=kappa, stage="dense",
                            rules="ee", codec=codec))
    return rows


def test_summary_targets_met():
    summary = summarise(crafted())
    quality = summary["quality_latency"]
    assert quality["best"]["params"]["kappa"] == 100  # 0.48 < 0.99 * 0.50: kappa=15 does not count
    assert quality["best"]["speedup"] == pytest.approx(200.0 / 11.0)
    assert quality["met"]
    ee = summary["rules"]["ee"]["stages"]["dense"]
    assert ee["speedup"] == pytest.approx(2.0) and ee["ndcg_change"] == pytest.approx(0.001)
    assert summary["rules"]["ee"]["met"]
    assert summary["compression"]["codecs"]["pq32"]["max_loss"] == pytest.approx(0.004)
    assert summary["compression"]["met"]
    assert all(line.endswith(": MET") for line in describe_summary(summary))


@pytest.mark.parametrize("kwargs, target", [({"pq_loss": 0.02}, "compression"), ({"ee_ms": 8.0}, "rules"),
                                            ({"ee_change": -0.01}, "rules")])
def test_summary_targets_unmet(kwargs, target):
    summary = summarise(crafted(**kwargs))
    met = summary[target]["met"] if target == "compression" else summary[target]["ee"]["met"]
    assert not met
    assert any(line.endswith("NOT MET") for line in describe_summary(summary))


def test_summary_without_a_fast_enough_rerank():
    rows = [r for r in crafted() if r["params"].get("kappa") != 100]
    summary = summarise(rows)
    assert summary["quality_latency"]["best"] is None and not summary["quality_latency"]["met"]


# ---------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_prints_one_json_report_last(small_beir, tmp_path, tiny_model_dir):
    args = ["bench", "rerank", str(small_beir), "--collection", "small", "--codec", "float16", "--kappa", "15",
            "--encoder", str(tiny_model_dir), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
            "--json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "rerank" and report["meta"]["queries"] == 6
    assert len(report["results"]) == 3 + 1 + 3 * 3  # first stages, exhaustive, stages x rules
    assert (tmp_path / "out" / "rerank-small.json").is_file()
    bad = CliRunner().invoke(main, ["bench", "rerank", str(small_beir), "--collection", "s", "--kappa", "x"])
    assert bad.exit_code != 0 and "--kappa" in bad.output
