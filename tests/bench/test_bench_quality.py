"""Retrieval quality (lamina.bench.quality) against hand-computed metrics."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from lamina.bench.quality import (
    evaluate_quality,
    exact_reference_quality,
    exact_top_k,
    quality_report,
    score_run,
)
from lamina.bench.report import RESULT_KEYS
from lamina.index.types import Hit

QRELS = {"q1": {"d1": 2, "d4": 1}, "q2": {"d2": 3, "d4": 1, "d6": 1}}
RANKINGS = {"alpha fruit": ["d3", "d1", "d5", "d4"], "beta fruit": ["d2", "d6"]}


def ndcg_at(ranking: list[str], qrels: dict[str, int], k: int = 10) -> float:
    """trec_eval nDCG: linear gains, log2(rank + 1) discount."""
    gains = np.array([qrels.get(d, 0) for d in ranking[:k]], dtype=float)
    dcg = (gains / np.log2(np.arange(2, len(gains) + 2))).sum()
    ideal = np.sort(np.array(list(qrels.values()), dtype=float))[::-1][:k]
    return dcg / (ideal / np.log2(np.arange(2, len(ideal) + 2))).sum()


def mrr_at(ranking: list[str], qrels: dict[str, int], k: int = 10) -> float:
    ranks = [i + 1 for i, d in enumerate(ranking[:k]) if qrels.get(d, 0) > 0]
    return 1.0 / ranks[0] if ranks else 0.0


def recall_at(ranking: list[str], qrels: dict[str, int], k: int) -> float:
    relevant = {d for d, r in qrels.items() if r > 0}
    return len(relevant & set(ranking[:k])) / len(relevant)


class FakeSearcher:
    """Returns a fixed ranking per query text, every hit with the same score."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.rankings = rankings
        self.calls: list[tuple[str, int, dict]] = []

    def search(self, query: str, k: int, *, with_payload: bool = False, **kwargs) -> list[Hit]:
        assert with_payload is False  # the benchmark never pays for payloads
        self.calls.append((query, k, kwargs))
        return [Hit(doc_id, 1.0) for doc_id in self.rankings.get(query, [])[:k]]


def _expected(rankings, qrels) -> dict[str, float]:
    q = {"q1": rankings["alpha fruit"], "q2": rankings["beta fruit"]}
    return {
        "ndcg@10": float(np.mean([ndcg_at(q[i], qrels[i]) for i in q])),
        "mrr@10": float(np.mean([mrr_at(q[i], qrels[i]) for i in q])),
        "recall@10": float(np.mean([recall_at(q[i], qrels[i], 10) for i in q])),
        "recall@100": float(np.mean([recall_at(q[i], qrels[i], 100) for i in q])),
    }


def test_hand_computed_ndcg_is_right():
    # q1: d1 (2) at rank 2, d4 (1) at rank 4
    assert ndcg_at(RANKINGS["alpha fruit"], QRELS["q1"]) == pytest.approx(
        (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3)))


def test_evaluate_quality_matches_hand_computation(tiny_beir: Path):
    searcher = FakeSearcher(RANKINGS)
    metrics = evaluate_quality(tiny_beir, searcher, k=100)
    expected = _expected(RANKINGS, QRELS)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9), name
    assert metrics["mrr@10"] == pytest.approx(0.75) and metrics["recall@100"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["queries"] == 2  # q3 (no qrels) and q4 (only a 0) are not judged
    assert metrics["qps"] > 0 and 0 <= metrics["p50_ms"] <= metrics["p99_ms"]
    assert {q for q, _, _ in searcher.calls} == {"alpha fruit", "beta fruit"}
    assert all(k == 100 and kwargs == {} for _, k, kwargs in searcher.calls)


def test_order_not_score_decides(tiny_beir: Path):
    swapped = {"alpha fruit": ["d1", "d3", "d5", "d4"], "beta fruit": ["d6", "d2"]}
    metrics = evaluate_quality(tiny_beir, FakeSearcher(swapped))
    assert metrics["ndcg@10"] == pytest.approx(_expected(swapped, QRELS)["ndcg@10"])


def test_missing_results_and_duplicates(tiny_beir: Path):
    metrics = evaluate_quality(tiny_beir, FakeSearcher({"alpha fruit": ["d1", "d1", "d4"]}))
    assert metrics["recall@100"] == pytest.approx(0.5)  # q2 returns nothing: 0, not an error
    assert metrics["ndcg@10"] == pytest.approx(0.5)  # q1 ideal once the duplicate is dropped


def test_mode_is_passed_through(tiny_beir: Path):
    searcher = FakeSearcher(RANKINGS)
    assert evaluate_quality(tiny_beir, searcher, k=5, mode="hybrid")["mode"] == "hybrid"
    assert all(kwargs == {"mode": "hybrid"} and k == 5 for _, k, kwargs in searcher.calls)


def test_quality_report_contract(tiny_beir: Path):
    report = quality_report(tiny_beir, FakeSearcher(RANKINGS), memory_bytes=42)
    assert report["benchmark"] == "quality" and report["dataset"] == "tiny"
    (row,) = report["results"]
    assert set(RESULT_KEYS) <= set(row)
    assert row["system"] == "lamina-dense" and row["params"] == {"k": 100} and row["memory_bytes"] == 42
    assert row["build_s"] is None and row["qps"] > 0
    assert row["ndcg@10"] == pytest.approx(_expected(RANKINGS, QRELS)["ndcg@10"])
    assert row["recall@10"] == pytest.approx(_expected(RANKINGS, QRELS)["recall@10"])


def test_score_run_single_metric():
    assert score_run({"q": {"a": 1.0}}, {"q": {"a": 1}}, ["ndcg@10"]) == {"ndcg@10": 1.0}
    with pytest.raises(ValueError):
        score_run({}, {})


@pytest.mark.parametrize("k", [3, 50])
def test_exact_top_k_matches_argsort(k):
    rng = np.random.default_rng(0)
    docs, queries = rng.standard_normal((40, 6)), rng.standard_normal((5, 6))
    top = exact_top_k(queries, docs, k, block=2)
    expected = np.argsort(-(queries @ docs.T), axis=1)[:, :min(k, 40)]
    np.testing.assert_array_equal(top, expected)


class BagOfWords:
    """Normalised word counts over a fixed vocabulary: an encoder with no model."""

    name = "bow"

    def __init__(self, vocabulary: list[str]) -> None:
        self.index = {w: i for i, w in enumerate(vocabulary)}

    def _encode(self, texts):
        out = np.full((len(texts), len(self.index) + 1), 1e-3, dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                if word in self.index:
                    out[row, self.index[word]] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    encode_documents = encode_queries = _encode


class BruteForceSearcher:
    def __init__(self, directory: Path, encoder: BagOfWords) -> None:
        from lamina.bench.datasets import load_beir

        beir = load_beir(directory)
        self.ids, self.vectors, self.encoder = beir.doc_ids, encoder.encode_documents(beir.doc_texts), encoder

    def search(self, query: str, k: int, *, with_payload: bool = False) -> list[Hit]:
        scores = self.vectors @ self.encoder.encode_queries([query])[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(self.ids[i], float(scores[i])) for i in order]


def test_exact_reference_quality_agrees_with_a_brute_force_searcher(tiny_beir: Path):
    encoder = BagOfWords(["alpha", "beta", "fruit", "apples", "bananas", "mixed"])
    reference = exact_reference_quality(tiny_beir, encoder)
    searched = evaluate_quality(tiny_beir, BruteForceSearcher(tiny_beir, encoder))
    for name in ("ndcg@10", "mrr@10", "recall@10", "recall@100"):
        assert reference[name] == pytest.approx(searched[name]), name
    assert reference["mrr@10"] == 1.0  # "alpha fruit" -> d4 "alpha beta mixed fruit" is relevant
    assert reference["queries"] == 2 and reference["p50_ms"] is None and reference["mode"] == "exact"
