import numpy as np
import pytest
from lamina.index.errors import InvalidArgument
from lamina.rag.postprocess import (
    MMR,
    Candidate,
    ContextBudget,
    DedupeByParent,
    SimilarityCutoff,
    fit_budget,
    mmr_order,
    postprocessor_from_dict,
)
from lamina.rag.types import Chunk

from tests.rag.conftest import WordCounter


def cand(cid, parent, start, end, score, text=None, vector=None):
    text = text if text is not None else "w " * ((end - start) // 2)
    return Candidate(Chunk(cid, text, parent, 0, start, end), score, vector)


def ids(cands):
    return [c.chunk.id for c in cands]


def test_dedupe_drops_windows_that_repeat_a_better_chunk_of_the_same_parent():
    cands = [cand("a0", "a", 0, 100, 0.9), cand("a1", "a", 50, 150, 0.8),   # overlaps a0 by 50 %: kept
             cand("a2", "a", 10, 100, 0.7),                                 # 90 of its 90 chars in a0
             cand("b0", "b", 0, 100, 0.6), cand("b0-copy", "b", 0, 100, 0.5)]
    assert ids(DedupeByParent().process(cands)) == ["a0", "a1", "b0"]
    assert ids(DedupeByParent(max_per_parent=1).process(cands)) == ["a0", "b0"]
    assert ids(DedupeByParent(max_overlap=1.0).process(cands)) == ids(cands)
    with pytest.raises(InvalidArgument, match="max_per_parent"):
        DedupeByParent(max_per_parent=0)


def test_similarity_cutoff_by_score_and_by_ratio():
    cands = [cand(str(i), str(i), 0, 10, s) for i, s in enumerate([0.9, 0.5, 0.44, 0.1])]
    assert ids(SimilarityCutoff(min_score=0.44).process(cands)) == ["0", "1", "2"]
    assert ids(SimilarityCutoff(min_ratio=0.5).process(cands)) == ["0", "1"]
    assert SimilarityCutoff(min_score=1.0).process(cands) == []
    with pytest.raises(InvalidArgument, match="min_score or min_ratio"):
        SimilarityCutoff()


def mmr_reference(relevance, vectors, k, lam):
    """The textbook loop, one candidate at a time."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    picked = []
    while len(picked) < min(k, len(relevance)):
        best, best_gain = None, -np.inf
        for i in range(len(relevance)):
            if i in picked:
                continue
            redundancy = max((float(unit[i] @ unit[j]) for j in picked), default=0.0)
            gain = lam * relevance[i] - (1 - lam) * redundancy
            if gain > best_gain:
                best, best_gain = i, gain
        picked.append(best)
    return picked


@pytest.mark.parametrize("seed", range(5))
def test_mmr_order_equals_the_textbook_loop(seed):
    rng = np.random.default_rng(seed)
    relevance, vectors = rng.random(30), rng.standard_normal((30, 8))
    for lam in (0.0, 0.3, 0.7, 1.0):
        assert mmr_order(relevance, vectors, 10, lam).tolist() == mmr_reference(relevance, vectors, 10, lam)


def test_mmr_puts_a_distinct_chunk_before_a_near_duplicate():
    cands = [cand("a", "a", 0, 10, 0.9, vector=np.array([1.0, 0.0])),
             cand("a'", "b", 0, 10, 0.89, vector=np.array([1.0, 0.01])),
             cand("c", "c", 0, 10, 0.7, vector=np.array([0.0, 1.0]))]
    assert ids(MMR(lambda_=0.5).process(cands)) == ["a", "c", "a'"]
    assert ids(MMR(lambda_=1.0).process(cands)) == ["a", "a'", "c"]
    with pytest.raises(InvalidArgument, match="dense vectors"):
        MMR().process([cand("x", "x", 0, 1, 1.0)])


def test_budget_keeps_rank_order_skips_what_does_not_fit_and_never_exceeds():
    words = [30, 50, 10, 40, 5]
    cands = [cand(str(i), str(i), 0, 1, 1.0 - i / 10, text=" ".join(["w"] * n)) for i, n in enumerate(words)]
    kept = ContextBudget(60, overhead=0, counter=WordCounter()).process(cands)
    assert ids(kept) == ["0", "2", "4"]  # 30 + 10 + 5; 50 and 40 do not fit after 30
    assert sum(c.tokens for c in kept) <= 60
    rng = np.random.default_rng(0)
    for _ in range(50):
        tokens, budget = rng.integers(1, 100, size=20), int(rng.integers(1, 500))
        keep = fit_budget(tokens, budget)
        assert tokens[keep].sum() <= budget
        # greedy: every skipped item was too big for what was left at its turn
        left = budget
        for size, k in zip(tokens, keep):
            assert k == (size <= left)
            left -= size if k else 0


def test_a_budget_without_a_counter_is_an_error():
    with pytest.raises(InvalidArgument, match="token counter"):
        ContextBudget(10).process([cand("a", "a", 0, 1, 1.0)])


def test_postprocessors_round_trip_through_dicts():
    for step in (DedupeByParent(2, 0.3), SimilarityCutoff(min_ratio=0.5), MMR(0.6, 5), ContextBudget(512, 4)):
        assert postprocessor_from_dict(step.to_dict()) == step
    with pytest.raises(InvalidArgument, match="unknown postprocessor 'rerank'"):
        postprocessor_from_dict({"kind": "rerank"})


def test_the_prefix_policy_stops_at_the_first_chunk_that_does_not_fit():
    words = [30, 50, 10, 40, 5]
    cands = [cand(str(i), str(i), 0, 1, 1.0, text=" ".join(["w"] * n)) for i, n in enumerate(words)]
    assert ids(ContextBudget(60, overhead=0, policy="prefix", counter=WordCounter()).process(cands)) == ["0"]
    tokens = np.array(words)
    assert fit_budget(tokens, 90, "prefix").tolist() == [True, True, True, False, False]
    with pytest.raises(InvalidArgument, match="unknown budget policy"):
        ContextBudget(10, policy="greedy")
