"""Exact ground truth and tie-aware recall of lamina.bench.groundtruth."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.bench.groundtruth import distances_of, exact_knn, recall_at_k, recall_per_query


def _numpy_knn(base, queries, k, metric):
    if metric == "ip":
        d = -(queries.astype(np.float64) @ base.T.astype(np.float64))
    else:
        d = ((queries[:, None, :].astype(np.float64) - base[None, :, :]) ** 2).sum(-1)
    ids = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, ids, axis=1), ids


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_exact_knn_matches_numpy(metric):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((700, 12)).astype(np.float32)
    queries = rng.standard_normal((40, 12)).astype(np.float32)
    dists, ids = exact_knn(base, queries, 10, metric)
    ref_d, ref_ids = _numpy_knn(base, queries, 10, metric)
    assert ids.dtype == np.int64 and dists.dtype == np.float32 and ids.shape == (40, 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dists, ref_d, rtol=1e-4, atol=1e-4)
    assert (np.diff(dists, axis=1) >= 0).all()  # smaller-is-better, nearest first, both metrics


def test_exact_knn_pads_when_k_exceeds_n():
    dists, ids = exact_knn(np.eye(3, dtype=np.float32), np.ones((2, 3), dtype=np.float32), 5, "l2")
    assert (ids[:, 3:] == -1).all() and np.isinf(dists[:, 3:]).all()


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_distances_of_recomputes_from_vectors(metric):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((50, 6)).astype(np.float32)
    queries = rng.standard_normal((4, 6)).astype(np.float32)
    ids = rng.integers(0, 50, (4, 7))
    ids[0, -2:] = -1
    got = distances_of(base, queries, ids, metric)
    ref_all, _ = _numpy_knn(base, queries, 50, metric)
    full = (-(queries @ base.T) if metric == "ip" else ((queries[:, None] - base[None]) ** 2).sum(-1))
    expected = np.take_along_axis(full, np.where(ids >= 0, ids, 0), axis=1)
    np.testing.assert_allclose(got[ids >= 0], expected[ids >= 0], rtol=1e-5, atol=1e-5)
    assert np.isinf(got[0, -2:]).all()


def test_recall_by_ids():
    true = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    found = np.array([[3, 2, 9, 8], [4, 5, 6, 7]])
    assert recall_at_k(found, true, 4) == pytest.approx((0.5 + 1.0) / 2)
    np.testing.assert_allclose(recall_per_query(found, true, 2), [0.0, 1.0])
    assert recall_at_k(np.full((2, 4), -1), np.full((2, 4), -1), 4) == 0.0  # empty slots never match


def test_recall_counts_ties_by_distance():
    # ids 0 and 1 are the same point: returning either is a correct nearest neighbour
    base = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    queries = np.array([[0.1, 0.0]], dtype=np.float32)
    true_d, true_ids = exact_knn(base, queries, 1, "l2")
    found = np.array([[1 - true_ids[0, 0]]])  # the other twin
    found_d = distances_of(base, queries, found, "l2")
    assert recall_at_k(found, true_ids, 1) == 0.0
    assert recall_at_k(found, true_ids, 1, true_d, found_d) == 1.0
    farther = np.array([[2]])
    assert recall_at_k(farther, true_ids, 1, true_d, distances_of(base, queries, farther, "l2")) == 0.0
    missing = np.array([[-1]])
    assert recall_at_k(missing, true_ids, 1, true_d, distances_of(base, queries, missing, "l2")) == 0.0


def test_recall_tolerance_is_relative_for_large_distances():
    true_ids, found = np.array([[0]]), np.array([[1]])
    true_d = np.array([[1.0e5]])
    assert recall_at_k(found, true_ids, 1, true_d, np.array([[1.0e5 + 50.0]])) == 1.0   # within 1e-3 relative
    assert recall_at_k(found, true_ids, 1, true_d, np.array([[1.0e5 + 500.0]])) == 0.0
    assert recall_at_k(found, true_ids, 1, np.array([[0.0]]), np.array([[0.0009]])) == 1.0  # absolute near 0


def test_recall_needs_enough_ground_truth():
    with pytest.raises(ValueError, match="recall@10"):
        recall_at_k(np.zeros((2, 10)), np.zeros((2, 5)), 10)
