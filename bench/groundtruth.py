"""Exact nearest neighbours and recall, as ann-benchmarks computes them.

Distances here are always smaller-is-better, so one tie rule serves both metrics:
squared L2 for "l2" and the negated inner product for "ip".

Recall follows ann-benchmarks (`plotting/metrics.py`): a returned neighbour counts when its
distance is within the k-th true distance plus a tolerance, so an index that returns a
different member of a group of equidistant points is not penalised for the tie.
"""

from __future__ import annotations

import faiss
import numpy as np

from lamina.index.dense import faiss_metric

DEFAULT_EPS = 1e-3


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by faiss brute force.

    base: (n, d) float32; queries: (nq, d) float32. Returns (distances (nq, k) float32,
    ids (nq, k) int64), nearest first; distances are squared L2, or minus the inner product.
    Rows are padded with id -1 and distance +inf when k > n.
    """
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    distances, ids = faiss.knn(queries, base, k, metric=faiss_metric(metric))
    distances = -distances if metric == "ip" else distances
    distances = np.where(ids < 0, np.inf, distances).astype(np.float32)
    return distances, ids.astype(np.int64)


def distances_of(base: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Distances (nq, k) float32 from each query (nq, d) to its returned ids (nq, k) int64.

    Computed from the vectors, not taken from the index, so every system is judged by the
    same arithmetic. Slots with id -1 (nothing returned) get +inf.
    """
    ids = np.asarray(ids, dtype=np.int64)
    queries = np.asarray(queries, dtype=np.float32)
    valid = ids >= 0
    safe_ids = np.where(valid, ids, 0)
    distances = np.empty(ids.shape, dtype=np.float32)
    # blocks of queries bound the gathered (block, k, d) neighbours to ~64 MB
    block = max(1, (1 << 24) // max(1, ids.shape[1] * base.shape[1]))
    for start in range(0, len(ids), block):
        q = queries[start:start + block]
        neighbours = base[safe_ids[start:start + block]]  # (block, k, d)
        if metric == "ip":
            distances[start:start + block] = -np.einsum("qkd,qd->qk", neighbours, q)
        else:
            diff = neighbours - q[:, None, :]
            distances[start:start + block] = np.einsum("qkd,qkd->qk", diff, diff)
    return np.where(valid, distances, np.inf).astype(np.float32)


def _overlap_counts(found: np.ndarray, true: np.ndarray, block: int = 4096) -> np.ndarray:
    """Per row, how many of `found` (nq, k) are in `true` (nq, k'); -1 never matches."""
    counts = np.empty(len(found), dtype=np.int64)
    for start in range(0, len(found), block):  # blocks bound the (block, k, k') temporary
        f, t = found[start:start + block], true[start:start + block]
        hit = (f[:, :, None] == t[:, None, :]).any(axis=2) & (f >= 0)
        counts[start:start + block] = hit.sum(axis=1)
    return counts


def recall_per_query(found_ids: np.ndarray, true_ids: np.ndarray, k: int,
                     true_dists: np.ndarray | None = None, found_dists: np.ndarray | None = None,
                     *, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Recall@k of each query, (nq,) float64 in [0, 1].

    found_ids: (nq, >=k) int64 returned ids (-1 = empty slot); true_ids: (nq, >=k) exact ids.
    With `true_dists` (nq, >=k) and `found_dists` (nq, >=k), smaller-is-better, a found
    neighbour counts when its distance <= true_dists[:, k-1] + eps * max(1, |true_dists[:, k-1]|):
    ann-benchmarks' absolute 1e-3, made relative for large squared-L2 distances where float32
    rounding alone exceeds it. Without distances, recall is the id overlap of the two top-k.
    """
    found_ids = np.asarray(found_ids)[:, :k]
    true_ids = np.asarray(true_ids)[:, :k]
    if found_ids.shape[0] != true_ids.shape[0]:
        raise ValueError(f"{found_ids.shape[0]} result rows for {true_ids.shape[0]} ground-truth rows")
    if true_ids.shape[1] < k:
        raise ValueError(f"ground truth holds {true_ids.shape[1]} neighbours, recall@{k} needs {k}")
    if true_dists is None or found_dists is None:
        return _overlap_counts(found_ids, true_ids) / k
    kth = np.asarray(true_dists, dtype=np.float64)[:, k - 1]
    threshold = kth + eps * np.maximum(1.0, np.abs(kth))
    found_dists = np.asarray(found_dists, dtype=np.float64)[:, :k]
    within = (found_dists <= threshold[:, None]) & (found_ids >= 0)
    return within.sum(axis=1) / k


def recall_at_k(found_ids: np.ndarray, true_ids: np.ndarray, k: int,
                true_dists: np.ndarray | None = None, found_dists: np.ndarray | None = None,
                *, eps: float = DEFAULT_EPS) -> float:
    """Mean recall@k over the queries; see `recall_per_query` for the tie rule."""
    return float(recall_per_query(found_ids, true_ids, k, true_dists, found_dists, eps=eps).mean())
