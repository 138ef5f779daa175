"""Fusion arithmetic on crafted ranked lists."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.retrieval.fusion import min_max_normalise, reciprocal_rank_fusion, weighted_score_fusion


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
