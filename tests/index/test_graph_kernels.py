"""PPR kernels against networkx.pagerank(personalization=...) on random weighted graphs."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from lamina.index.graph import adjacency, ppr_power, ppr_push


def random_graph(seed: int, n: int = 60, m: int = 200, isolated: bool = False):
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    if not isolated:  # a ring keeps every node connected (no dangling node)
        src, dst = np.concatenate([src, np.arange(n)]), np.concatenate([dst, (np.arange(n) + 1) % n])
    else:
        keep = (src < n - 5) & (dst < n - 5)  # the last five nodes have no edge
        src, dst = src[keep], dst[keep]
    weight = rng.uniform(0.1, 2.0, len(src))
    personal = np.zeros(n)
    personal[rng.choice(n, 4, replace=False)] = rng.uniform(0.5, 2.0, 4)
    personal[n - 1] += 0.3 if isolated else 0.0  # a seed on a dangling node
    return n, src, dst, weight, personal


def networkx_ppr(n, src, dst, weight, personal, damping):
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for a, b, w in zip(src.tolist(), dst.tolist(), weight.tolist()):
        if a == b:
            continue
        if graph.has_edge(a, b):
            graph[a][b]["weight"] += w
        else:
            graph.add_edge(a, b, weight=w)
    result = nx.pagerank(graph, alpha=damping, personalization={i: float(p) for i, p in enumerate(personal)},
                         weight="weight", tol=1e-13, max_iter=1000)
    return np.array([result[i] for i in range(n)])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("damping", [0.5, 0.85])
@pytest.mark.parametrize("isolated", [False, True])
def test_power_iteration_matches_networkx(seed, damping, isolated):
    n, src, dst, weight, personal = random_graph(seed, isolated=isolated)
    expected = networkx_ppr(n, src, dst, weight, personal, damping)
    got = ppr_power(adjacency(n, src, dst, weight), personal, damping=damping, tol=1e-12)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert got.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("eps", [1e-4, 1e-7])
@pytest.mark.parametrize("isolated", [False, True])
def test_push_within_its_bound(seed, eps, isolated):
    n, src, dst, weight, personal = random_graph(seed, isolated=isolated)
    matrix = adjacency(n, src, dst, weight)
    exact = networkx_ppr(n, src, dst, weight, personal, 0.5)
    estimate, residual = ppr_push(matrix, personal, damping=0.5, eps=eps)
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    assert (residual <= eps * degree + 1e-15).all()  # a dangling node (degree 0) keeps no residual
    assert (estimate <= exact + 1e-12).all()  # push never overshoots
    # each node's shortfall is the PPR of the residual it has not settled: at most eps * the largest degree
    assert np.abs(exact - estimate).max() <= eps * degree.max() + 1e-12
    assert np.abs(exact - estimate).sum() <= eps * degree.sum() + 1e-12
    # estimate + PPR(residual) is exact (the push invariant)
    if residual.sum() > 0:
        rest = ppr_power(matrix, residual, damping=0.5, tol=1e-13) * residual.sum()
        np.testing.assert_allclose(estimate + rest, exact, atol=1e-9)


def test_adjacency_is_symmetric_and_sums_duplicates():
    matrix = adjacency(4, np.array([0, 1, 2, 3]), np.array([1, 0, 2, 0]), np.array([1.0, 2.0, 5.0, 0.5]))
    dense = matrix.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    assert dense[0, 1] == 3.0 and dense[2, 2] == 0.0 and dense[0, 3] == 0.5


def test_bad_personalisation():
    matrix = adjacency(3, np.array([0]), np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match="no mass"):
        ppr_power(matrix, np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        ppr_push(matrix, np.array([1.0, -1.0, 0.0]))
