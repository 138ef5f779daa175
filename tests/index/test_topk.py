"""The shared top-k kernels against numpy argsort (ties to the smaller id or position)."""

import numpy as np
import pytest
from lamina.index import topk


def _reference(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best by a full lexsort: score descending, then id ascending, padded."""
    out_s, out_i = np.full((len(scores), k), -np.inf, np.float32), np.full((len(scores), k), -1, np.int64)
    for r, row in enumerate(scores):
        order = np.lexsort((ids, -row))[:k]
        out_s[r, : len(order)], out_i[r, : len(order)] = row[order], ids[order]
    return out_s, out_i


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("n", [0, 3, 10, 200])
def test_exact_topk_matches_a_full_sort(metric, n):
    rng = np.random.default_rng(n)
    vectors = rng.integers(-2, 3, size=(n, 4)).astype(np.float32)  # small integers: many exact ties
    queries = rng.integers(-2, 3, size=(6, 4)).astype(np.float32)
    ids = rng.permutation(1000)[:n].astype(np.int64)
    scores, found = topk.exact_topk(queries, vectors, ids, 10, metric)
    ref = queries @ vectors.T if metric == "ip" else -((queries[:, None] - vectors[None]) ** 2).sum(-1)
    true_scores, truth = _reference(ref.astype(np.float32), ids, 10)
    np.testing.assert_array_equal(found, truth)
    np.testing.assert_allclose(scores, true_scores, atol=1e-4)
    assert scores.dtype == np.float32 and found.dtype == np.int64 and scores.shape == (6, 10)


def test_l2_scores_never_exceed_zero():
    x = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32) * 100
    scores, found = topk.exact_topk(x, x, np.arange(50), 1, "l2")
    assert (scores <= 0).all() and (found[:, 0] == np.arange(50)).all()


def test_padded_and_top_k_order():
    scores, ids = topk.padded(2, 3)
    assert np.isneginf(scores).all() and (ids == -1).all() and scores.dtype == np.float32
    row = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    ids = np.array([9, 7, 2, 5, 4])
    assert topk.top_k_order(row, ids, 3).tolist() == [2, 4, 1]  # the 3.0s by id 2, 4, 7
    assert topk.top_k_order(row, ids, 10).tolist() == [2, 4, 1, 3, 0]


def test_numba_heap_kernels_match_argsort():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 20, size=300).astype(np.float64)
    for k in (1, 7, 300, 400):
        expected = np.lexsort((np.arange(300), -values))[:k]
        np.testing.assert_array_equal(topk.top_k_positions(values, k), expected)
    mask = np.zeros(300, dtype=bool)
    count = topk.top_k_mask(values, 25, 5.0, mask)
    kept = np.flatnonzero(values >= 5.0)
    expected = np.sort(kept[np.lexsort((kept, -values[kept]))][:25])
    assert count == 25 and np.flatnonzero(mask).tolist() == expected.tolist()


def test_priority_queue_pops_in_order():
    rng = np.random.default_rng(2)
    prio = rng.random(100).astype(np.float32)
    heap_p, heap_i = np.empty(100, np.float32), np.empty(100, np.int32)
    size = 0
    for i, p in enumerate(prio):
        size = topk.pq_push(heap_p, heap_i, size, p, i)
    popped = []
    while size:
        popped.append(int(heap_i[0]))
        size = topk.pq_pop(heap_p, heap_i, size)
    assert popped == np.argsort(prio, kind="stable").tolist()


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("norms", [True, False])
def test_rows_topk_reads_rows_in_place(metric, norms):
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 12)).astype(np.float32)
    rows = rng.choice(500, size=37, replace=False).astype(np.int32)
    ids = rows.astype(np.int64) + 10_000
    queries = rng.normal(size=(3, 12)).astype(np.float32)
    sqnorms = (vectors * vectors).sum(1) if norms else None
    scores, found = topk.rows_topk(queries, vectors, rows, ids, 50, metric, sqnorms)
    true_scores, truth = topk.exact_topk(queries, vectors[rows], ids, 50, metric)
    np.testing.assert_array_equal(found, truth)
    np.testing.assert_allclose(scores, true_scores, rtol=1e-4, atol=1e-3)
