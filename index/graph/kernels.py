"""Pure graph kernels: the adjacency of the entity graph and personalised PageRank (numpy/scipy/numba).

The graph is undirected and weighted; nodes are numbered 0..n-1 (the caller maps entities and chunks
onto them). `adjacency` sums duplicate edges into one symmetric CSR matrix. Two PPR solvers:

- `ppr_power`: exact PPR by power iteration, x = (1-d) p + d (A D^-1 x + dangling mass * p), to `tol`
  in L1. Dangling (isolated) nodes give their mass back to the personalisation, as
  `networkx.pagerank(personalization=...)` does, so the two agree on any graph.
- `ppr_push`: the local push of Andersen, Chung and Lang (FOCS 2006), non-lazy form: residual mass at a
  node u above `eps * deg(u)` is settled, (1-d) of it kept at u and d of it spread over u's neighbours
  by edge weight (a dangling node sends it back to the personalisation). It touches only the nodes
  the walk reaches, so its cost follows the seeds' neighbourhood, not the graph.

`damping` is the probability of following an edge (HippoRAG 2 uses 0.5).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


def adjacency(n: int, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> sp.csr_matrix:
    """The (n, n) symmetric CSR matrix of undirected edges src-dst (duplicates summed, self-loops dropped)."""
    keep = (src != dst) & (weight > 0)
    src, dst, weight = src[keep], dst[keep], weight[keep].astype(np.float64)
    rows = np.concatenate([src, dst])
    cols = np.concatenate([dst, src])
    vals = np.concatenate([weight, weight])
    matrix = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    matrix.sum_duplicates()
    return matrix


def _normalised(personalization: np.ndarray) -> np.ndarray:
    p = np.asarray(personalization, dtype=np.float64)
    if p.ndim != 1 or (p < 0).any() or not np.isfinite(p).all():
        raise ValueError("personalisation must be a finite non-negative vector")
    total = p.sum()
    if total <= 0:
        raise ValueError("personalisation has no mass")
    return p / total


def ppr_power(matrix: sp.csr_matrix, personalization: np.ndarray, *, damping: float = 0.5,
              tol: float = 1e-6, max_iter: int = 200) -> np.ndarray:
    """Exact PPR (float64, sums to 1) by power iteration over a symmetric adjacency matrix."""
    p = _normalised(personalization)
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    dangling = degree == 0
    inv = np.divide(1.0, degree, out=np.zeros_like(degree), where=~dangling)
    x = p.copy()
    for _ in range(max_iter):
        spread = matrix @ (x * inv)  # A is symmetric: A^T D^-1 x == A (D^-1 x)
        new = damping * (spread + x[dangling].sum() * p) + (1.0 - damping) * p
        if np.abs(new - x).sum() < tol:
            return new
        x = new
    return x


@numba.njit(cache=True)
def _push(indptr, indices, weights, degree, residual, support, share_of, eps, damping,
          max_pushes):  # pragma: no cover - jitted
    n = len(degree)
    estimate = np.zeros(n)
    queue = np.empty(n, np.int64)
    queued = np.zeros(n, np.bool_)
    head, size = 0, 0
    for u in range(n):
        if residual[u] > eps * max(degree[u], 1e-300):
            queue[size % n] = u
            queued[u] = True
            size += 1
    pushes = 0
    while size > 0 and pushes < max_pushes:
        u = queue[head]
        head = (head + 1) % n
        size -= 1
        queued[u] = False
        mass = residual[u]
        residual[u] = 0.0
        pushes += 1
        estimate[u] += (1.0 - damping) * mass
        if degree[u] == 0.0:  # dangling: the walk restarts, its mass goes back to the personalisation
            for j in range(len(support)):
                v = support[j]
                residual[v] += damping * mass * share_of[j]
                if not queued[v] and residual[v] > eps * max(degree[v], 1e-300):
                    queue[(head + size) % n] = v
                    queued[v] = True
                    size += 1
            continue
        share = damping * mass / degree[u]
        for j in range(indptr[u], indptr[u + 1]):
            v = indices[j]
            residual[v] += share * weights[j]
            if not queued[v] and residual[v] > eps * max(degree[v], 1e-300):
                queue[(head + size) % n] = v
                queued[v] = True
                size += 1
    return estimate, residual, pushes


def ppr_push(matrix: sp.csr_matrix, personalization: np.ndarray, *, damping: float = 0.5,
             eps: float = 1e-6, max_pushes: int = 10_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Approximate PPR by local push: (estimate, residual), estimate + the PPR of the residual = exact.

    Every node u ends with residual[u] <= eps * deg(u) (a dangling node's residual is settled, its
    walk restarting at the personalisation, as in `ppr_power`). Each estimate is below the exact PPR
    by at most eps times the largest weighted degree.
    """
    p = _normalised(personalization)
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    residual = p.copy()
    support = np.flatnonzero(p)
    estimate, residual, _ = _push(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64),
                                  matrix.data.astype(np.float64), degree, residual, support, p[support],
                                  float(eps), float(damping), int(max_pushes))
    return estimate, residual
