"""Fusion arithmetic on crafted ranked lists."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.retrieval.fusion import (
    FUSION_METHODS,
    adaptive_fusion,
    adaptive_weights,
    decisiveness,
    fuse,
    min_max_normalise,
    reciprocal_rank_fusion,
    rocchio,
    weighted_score_fusion,
    zscore_fusion,
    zscore_normalise,
)
from lamina.retrieval.query import DEFAULT_FEEDBACK, Fusion


def ranked(ids, scores):
    return np.array(ids, dtype=np.int64), np.array(scores, dtype=np.float32)


SPARSE = ranked([10, 20, 30], [9.0, 5.0, 1.0])
DENSE = ranked([30, 10, 40], [0.9, 0.8, 0.1])


def test_rrf_scores_are_sums_of_reciprocal_ranks():
    ids, scores = reciprocal_rank_fusion([SPARSE, DENSE])
    want = {10: 1 / 61 + 1 / 62, 20: 1 / 62, 30: 1 / 63 + 1 / 61, 40: 1 / 63}
    assert ids.tolist() == [10, 30, 20, 40]
    np.testing.assert_allclose(scores, [want[i] for i in ids.tolist()], rtol=1e-6)
    assert ids.dtype == np.int64 and scores.dtype == np.float32


def test_rrf_weights_k_and_limit():
    ids, scores = reciprocal_rank_fusion([SPARSE, DENSE], k=1, weights=[1.0, 3.0], limit=2)
    # 30: 1/4 + 3/2, 10: 1/2 + 3/3, 40: 3/4, 20: 1/3
    assert ids.tolist() == [30, 10]
    np.testing.assert_allclose(scores, [1 / 4 + 3 / 2, 1 / 2 + 1], rtol=1e-6)


def test_rrf_ranks_follow_scores_not_input_order():
    shuffled = ranked([30, 10, 20], [1.0, 9.0, 5.0])
    a = reciprocal_rank_fusion([shuffled, DENSE])
    b = reciprocal_rank_fusion([SPARSE, DENSE])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_ties_are_broken_by_ascending_id():
    # 7 and 3 swap ranks between the lists: equal fused scores
    ids, scores = reciprocal_rank_fusion([ranked([7, 3], [2.0, 1.0]), ranked([3, 7], [2.0, 1.0])])
    assert ids.tolist() == [3, 7] and scores[0] == scores[1]
    # equal scores inside one list rank by id too
    ids, _ = reciprocal_rank_fusion([ranked([9, 4, 6], [1.0, 1.0, 1.0])])
    assert ids.tolist() == [4, 6, 9]
    ids, _ = weighted_score_fusion([ranked([7, 3], [2.0, 1.0]), ranked([3, 7], [2.0, 1.0])])
    assert ids.tolist() == [3, 7]


def test_padding_and_duplicates_are_ignored():
    padded = ranked([10, 20, -1, -1], [9.0, 5.0, -np.inf, -np.inf])
    ids, scores = reciprocal_rank_fusion([padded])
    assert ids.tolist() == [10, 20]
    np.testing.assert_allclose(scores, [1 / 61, 1 / 62], rtol=1e-6)
    ids, scores = reciprocal_rank_fusion([ranked([5, 6, 5], [3.0, 2.0, 1.0])])  # 5 counts once, at rank 1
    assert ids.tolist() == [5, 6]
    np.testing.assert_allclose(scores, [1 / 61, 1 / 62], rtol=1e-6)
    ids, scores = reciprocal_rank_fusion([ranked([], []), ranked([-1], [-np.inf])])
    assert len(ids) == 0 and len(scores) == 0
    assert len(reciprocal_rank_fusion([])[0]) == 0


def test_weighted_score_fusion_normalises_each_list():
    ids, scores = weighted_score_fusion([SPARSE, DENSE], weights=[0.3, 0.7])
    sparse_norm = {10: 1.0, 20: 0.5, 30: 0.0}  # (s - 1) / (9 - 1)
    dense_norm = {30: 1.0, 10: 0.875, 40: 0.0}  # (s - 0.1) / (0.9 - 0.1)
    want = {i: 0.3 * sparse_norm.get(i, 0.0) + 0.7 * dense_norm.get(i, 0.0) for i in (10, 20, 30, 40)}
    assert ids.tolist() == sorted(want, key=lambda i: (-want[i], i))
    np.testing.assert_allclose(scores, [want[i] for i in ids.tolist()], rtol=1e-6, atol=1e-7)
    ids, _ = weighted_score_fusion([SPARSE, DENSE], weights=[0.3, 0.7], limit=1)
    assert ids.tolist() == [10]


def test_min_max_normalise_edge_cases():
    np.testing.assert_allclose(min_max_normalise(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(min_max_normalise(np.array([5.0, 5.0])), [1.0, 1.0])
    assert len(min_max_normalise(np.array([]))) == 0
    ids, scores = weighted_score_fusion([ranked([1, 2], [3.0, 3.0]), ranked([2], [0.5])])
    assert ids.tolist() == [2, 1] and scores.tolist() == [2.0, 1.0]


def test_fusion_rejects_bad_arguments():
    with pytest.raises(InvalidArgument, match="2 weights for 1"):
        reciprocal_rank_fusion([SPARSE], weights=[1.0, 2.0])
    with pytest.raises(InvalidArgument, match=">= 0"):
        weighted_score_fusion([SPARSE], weights=[-1.0])
    with pytest.raises(InvalidArgument, match="k must be"):
        reciprocal_rank_fusion([SPARSE], k=0)
    with pytest.raises(InvalidArgument, match="3 ids but 2 scores"):
        reciprocal_rank_fusion([(np.array([1, 2, 3]), np.array([1.0, 2.0]))])
    with pytest.raises(InvalidArgument, match="limit"):
        weighted_score_fusion([SPARSE], limit=0)


def test_zscore_fusion_standardises_each_list_and_floors_missing_documents():
    ids, scores = zscore_fusion([SPARSE, DENSE], weights=[1.0, 2.0])
    zs = (np.array([9.0, 5.0, 1.0]) - 5.0) / np.std([9.0, 5.0, 1.0])
    dm = np.mean([0.9, 0.8, 0.1])
    zd = (np.array([0.9, 0.8, 0.1]) - dm) / np.std([0.9, 0.8, 0.1])
    sparse_z, dense_z = dict(zip([10, 20, 30], zs)), dict(zip([30, 10, 40], zd))
    want = {i: sparse_z.get(i, zs.min()) + 2.0 * dense_z.get(i, zd.min()) for i in (10, 20, 30, 40)}
    assert ids.tolist() == sorted(want, key=lambda i: (-want[i], i))
    np.testing.assert_allclose(scores, [want[i] for i in ids.tolist()], rtol=1e-5)
    np.testing.assert_array_equal(zscore_normalise(np.array([3.0, 3.0])), [0.0, 0.0])


def test_decisiveness_by_hand():
    # normalised (10, 5, 5, 0) -> (1, .5, .5, 0); ranks 2..3 average 0.5
    assert decisiveness(np.array([5.0, 10.0, 0.0, 5.0]), depth=3) == pytest.approx(0.5)
    assert decisiveness(np.array([10.0, 0.0, 0.0, 0.0]), depth=10) == pytest.approx(1.0)
    assert decisiveness(np.array([1.0, 1.0, 1.0])) == 0.0 and decisiveness(np.array([4.0])) == 0.0
    assert decisiveness(np.array([3.0, np.inf * -1, 1.0]), depth=2) == pytest.approx(1.0)  # -inf is padding
    with pytest.raises(InvalidArgument, match="depth"):
        decisiveness(np.array([1.0, 2.0]), depth=1)


def test_adaptive_fusion_is_weighted_fusion_with_decisiveness_weights():
    flat = ranked([1, 2, 3, 4], [1.0, 0.99, 0.98, 0.0])   # ranks 2..4 as good as the top: not decisive
    sharp = ranked([4, 3, 2, 1], [9.0, 1.0, 0.5, 0.0])    # one clear winner
    weights, signals = adaptive_weights([flat, sharp], [1.0, 2.0], depth=4)
    want_signals = [decisiveness(flat[1], 4), decisiveness(sharp[1], 4)]
    np.testing.assert_allclose(signals, want_signals)
    np.testing.assert_allclose(weights, np.array([1.0, 2.0]) * want_signals / np.mean(want_signals))
    assert weights[1] > 2.0 > weights[0]
    ids, scores, w, s = adaptive_fusion([flat, sharp], [1.0, 2.0], depth=4, limit=3)
    want_ids, want_scores = weighted_score_fusion([flat, sharp], weights, limit=3)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores)
    # no list decisive: the base weights are kept
    tie = ranked([1, 2], [1.0, 1.0])
    np.testing.assert_array_equal(adaptive_weights([tie, tie], [1.0, 3.0])[0], [1.0, 3.0])


def test_rocchio_by_hand():
    q = np.array([1.0, 0.0], np.float32)
    docs = np.array([[0.0, 1.0], [0.0, 3.0]], np.float32)
    moved = rocchio(q, docs, 0.5)  # q + 0.5 * (0, 2) = (1, 1), rescaled to |q| = 1
    np.testing.assert_allclose(moved, [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_array_equal(rocchio(q, np.empty((0, 2)), 0.5), q)
    np.testing.assert_array_equal(rocchio(q, docs, 0.0), q)
    with pytest.raises(InvalidArgument, match="feedback weight"):
        rocchio(q, docs, -1.0)


def test_fuse_by_name_and_its_explain():
    for method in FUSION_METHODS:
        ids, scores, detail = fuse(method, [SPARSE, DENSE], weights=[1.0, 1.0], limit=3)
        assert len(ids) == 3 and len(detail["weights"]) == 2
    np.testing.assert_array_equal(fuse("rrf", [SPARSE, DENSE])[0], reciprocal_rank_fusion([SPARSE, DENSE])[0])
    assert "decisiveness" in fuse("adaptive", [SPARSE, DENSE])[2]
    with pytest.raises(InvalidArgument, match="unknown fusion"):
        fuse("borda", [SPARSE])


def test_fusion_request_options():
    assert Fusion().method == "adaptive" and Fusion().feedback_docs == DEFAULT_FEEDBACK
    assert Fusion("weighted").feedback_docs == 0 and Fusion("rrf", feedback=2).feedback_docs == 2
    for bad in ({"feedback": -1}, {"feedback": 101}, {"feedback": True}, {"feedback_weight": float("nan")},
                {"method": "borda"}):
        with pytest.raises(InvalidArgument):
            Fusion(**bad)
