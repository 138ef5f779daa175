"""Head selection for SPANN: hierarchical, size-balanced k-means down to about `n_heads` heads.

SPANN (Chen et al., NeurIPS'21) takes its heads from SPTAG's balanced k-means tree (BKT): each
node is split by k-means whose assignment cost is d(x, c) + lambda * |C|, so that no cluster
swallows its neighbours, and the heads are real vectors (the member nearest each centroid).
Balanced clusters matter twice: posting lists come out of similar length (one or two disk pages
each), and a query reads about the same number of bytes wherever it lands.

Here faiss k-means places the centroids (on the GPU for large nodes when there is one), then a
few assignment rounds with SPTAG's size penalty even them out. lambda follows SPTAG's
`RefineLambda`: the spread of the largest cluster (its farthest member's distance minus its
mean distance) over the node size, recomputed every round, so the penalty grows exactly when
one cluster is both large and loose. Small nodes (most of them: the leaves) run on one thread
(`parallel.py`).

Pure functions: numpy in, numpy out. Loops run over tree nodes and rounds, never over vectors.
"""

from __future__ import annotations

import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

from lamina.index.kmeans import train as train_kmeans
from lamina.index.spann.parallel import omp_threads, threads_for

# the GPU pays for its transfers only on large nodes
_GPU_MIN_POINTS = 65_536


def squared_distances(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared L2 distances (n, k) float32 between vectors (n, d) and centroids (k, d), float32."""
    return np.maximum(faiss.pairwise_distances(vectors, centroids), 0.0)


def size_penalty(distances: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> float:
    """SPTAG's lambda: (farthest - mean distance) of the largest cluster, over the node size.

    distances (n, k) float32 to every centroid, labels (n,) int64 current assignment,
    counts (k,) int64 cluster sizes. Returns lambda >= 0, the cost of one member.
    """
    largest = int(np.argmax(counts))
    if counts[largest] == 0:
        return 0.0
    own = distances[labels == largest, largest]
    return max(0.0, float(own.max() - own.mean())) / len(labels)


def cluster_means(vectors: np.ndarray, labels: np.ndarray, k: int, fallback: np.ndarray) -> np.ndarray:
    """Mean (k, d) float32 of each cluster; an empty cluster keeps its `fallback` row."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    present, starts = np.unique(sorted_labels, return_index=True)
    sums = np.add.reduceat(vectors[order], starts, axis=0)
    counts = np.diff(np.append(starts, len(labels)))
    means = fallback.copy()
    means[present] = sums / counts[:, None]
    return means


def balanced_kmeans(
    vectors: np.ndarray,
    k: int,
    *,
    iters: int = 10,
    balance_iters: int = 6,
    seed: int = 1234,
    use_gpu: bool = False,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Size-balanced k-means of vectors (n, d) float32 into min(k, n) clusters.

    Returns centroids (k', d) float32 and labels (n,) int64 in [0, k'). A cluster may end up
    empty when points coincide; callers skip empty clusters. `threads` caps faiss's OpenMP
    threads for this call (default: one for small work, all for large).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    k = max(1, min(int(k), n))
    if k == 1:
        return vectors.mean(axis=0, keepdims=True), np.zeros(n, dtype=np.int64)
    with omp_threads(threads or threads_for(n * k * d)):
        kmeans = train_kmeans(
            vectors, k, niter=iters, seed=seed, gpu=use_gpu, gpu_min_points=_GPU_MIN_POINTS,
            min_points_per_centroid=1,  # leaf nodes hold ~1/head_ratio points per centroid by design
        )
        centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
        distances = squared_distances(vectors, centroids)
        labels = np.argmin(distances, axis=1)
        counts = np.bincount(labels, minlength=k)
        for _ in range(balance_iters):
            lam = size_penalty(distances, labels, counts)
            if lam == 0.0:
                break
            # the penalty uses the previous round's sizes, as SPTAG does: a round is one pass
            trial = np.argmin(distances + np.float32(lam) * counts[None, :].astype(np.float32), axis=1)
            trial_counts = np.bincount(trial, minlength=k)
            # a penalty larger than the gaps between clusters makes whole clusters swap sides;
            # keep only rounds that even the sizes out without emptying a cluster
            if trial_counts.max() > counts.max() or (trial_counts == 0).sum() > (counts == 0).sum():
                break
            labels, counts = trial, trial_counts
            centroids = cluster_means(vectors, labels, k, centroids)
            distances = squared_distances(vectors, centroids)
    return centroids, labels.astype(np.int64)


def snap_to_members(vectors: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Row (k',) int64 of the member nearest its centroid, for each non-empty cluster in label order.

    vectors (n, d) float32, labels (n,) int64, centroids (k, d) float32.
    """
    diff = vectors - centroids[labels]
    dist = np.einsum("ij,ij->i", diff, diff)
    order = np.lexsort((dist, labels))
    sorted_labels = labels[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_labels[1:] != sorted_labels[:-1]
    return order[first].astype(np.int64)


def apportion(total: int, sizes: np.ndarray) -> np.ndarray:
    """Split `total` into integers proportional to `sizes` (largest remainder), >= 1 where size > 0."""
    sizes = np.asarray(sizes, dtype=np.float64)
    share = total * sizes / max(sizes.sum(), 1.0)
    parts = np.floor(share).astype(np.int64)
    short = total - int(parts.sum())
    if short > 0:
        parts[np.argsort(-(share - parts), kind="stable")[:short]] += 1
    return np.where(sizes > 0, np.maximum(parts, 1), 0)


def select_heads(
    vectors: np.ndarray,
    n_heads: int,
    *,
    branching: int = 32,
    iters: int = 10,
    balance_iters: int = 6,
    seed: int = 1234,
    use_gpu: bool = False,
    workers: int | None = None,
) -> np.ndarray:
    """Rows (H,) int64 of the vectors chosen as heads, H close to `n_heads`, all distinct.

    vectors (n, d) float32. Each node of the tree is split into at most `branching` balanced
    clusters, its head budget shared among the children by size, until a node's budget fits
    in one split; that split's clusters give the heads, each snapped to its nearest member.
    Heads come out in depth-first order, so heads that are close in space get close numbers
    (and their posting lists close offsets in the file).

    The tree is built a level at a time; the nodes of a level are independent and run on
    `workers` threads (default: the CPUs), each node's faiss call on one thread.
    """
    n = len(vectors)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    workers = max(1, workers or _cpus())

    def split(node: tuple[tuple[int, ...], np.ndarray, int], alone: bool) -> tuple[list, np.ndarray | None]:
        path, rows, budget = node
        x = vectors[rows]
        node_seed = (seed + zlib.crc32(repr(path).encode())) % (1 << 31)  # faiss takes a C int
        threads = None if alone else 1  # a level's nodes already run side by side
        if budget <= branching:
            centroids, labels = balanced_kmeans(x, budget, iters=iters, balance_iters=balance_iters, seed=node_seed,
                                                use_gpu=use_gpu and alone, threads=threads)
            return [], rows[snap_to_members(x, labels, centroids)]
        # children get about branching / 2 heads each, so that their share of a size imbalance
        # rarely pushes one over `branching` (which would cost another level)
        k = min(branching, math.ceil(2 * budget / branching))
        _, labels = balanced_kmeans(x, k, iters=iters, balance_iters=balance_iters, seed=node_seed,
                                    use_gpu=use_gpu and alone, threads=threads)
        sizes = np.bincount(labels, minlength=k)
        if sizes.max() == len(rows):  # coincident points: k-means cannot split, any partition will do
            labels = np.arange(len(rows)) % k
            sizes = np.bincount(labels, minlength=k)
        budgets = apportion(budget, sizes)
        parts = np.split(rows[np.argsort(labels, kind="stable")], np.cumsum(sizes)[:-1])
        children = [((*path, i), part, int(min(b, len(part)))) for i, (part, b) in enumerate(zip(parts, budgets))
                    if len(part)]
        return children, None

    leaves: list[tuple[tuple[int, ...], np.ndarray]] = []
    level = [((), np.arange(n, dtype=np.int64), max(1, min(int(n_heads), n)))]
    with ThreadPoolExecutor(workers) as pool:
        while level:
            alone = len(level) == 1
            if alone or workers == 1:
                results = [split(node, alone) for node in level]
            else:
                results = list(pool.map(lambda node: split(node, False), level))
            next_level = []
            for node, (children, heads) in zip(level, results):
                if heads is not None:
                    leaves.append((node[0], heads))
                next_level.extend(children)
            level = next_level
    leaves.sort(key=lambda leaf: leaf[0])  # paths in lexicographic order: the tree's depth-first order
    return np.concatenate([heads for _, heads in leaves])


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
