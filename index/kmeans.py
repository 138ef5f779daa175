"""The one k-means wrapper (faiss), with the one GPU check.

Every index that clusters (IVF lists, SPANN heads, the tenant tree, the multivector codec's
stages) trains through `train`. The GPU is used only where one was asked for, faiss sees one
(`gpu_count`), and the sample is large enough to pay for the transfer (`gpu_min_points`).
"""

from __future__ import annotations

import faiss
import numpy as np

FAISS_MIN_POINTS_PER_CENTROID = 39  # faiss's own default: below it faiss warns


def gpu_count() -> int:
    """GPUs faiss can use; 0 on a CPU-only build (never touch GPU calls when this is 0)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def want_gpu(requested: bool, points: int = 0, min_points: int = 0) -> bool:
    """Whether a k-means over `points` training points runs on the GPU: asked for, a GPU there,
    and at least `min_points` points (smaller runs are faster on the CPU than a GPU round trip)."""
    return bool(requested and points >= min_points and gpu_count() > 0)


def train(x: np.ndarray, k: int, *, metric: str = "l2", niter: int = 20, seed: int = 1234,
          max_points_per_centroid: int = 256, min_points_per_centroid: int = FAISS_MIN_POINTS_PER_CENTROID,
          gpu: bool = False, gpu_min_points: int = 0) -> faiss.Kmeans:
    """A faiss k-means of k centroids trained on x (n, d) float32 (sampled down to
    k * max_points_per_centroid by faiss); spherical for the inner product. Its `centroids`
    are (k, d) float32 and its `index` finds a point's nearest centroid."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    kmeans = faiss.Kmeans(
        x.shape[1], k, niter=niter, seed=seed, spherical=metric == "ip",
        gpu=want_gpu(gpu, min(len(x), k * max_points_per_centroid), gpu_min_points),
        max_points_per_centroid=max_points_per_centroid, min_points_per_centroid=min_points_per_centroid,
        verbose=False,
    )
    kmeans.train(x)
    return kmeans


def train_kmeans(vectors: np.ndarray, nlist: int, metric: str, *, use_gpu: bool, seed: int = 1234) -> np.ndarray:
    """Centroids (nlist, d) of `vectors` (n, d) float32, on the GPU when one is there (IVF lists)."""
    return train(vectors, nlist, metric=metric, seed=seed, gpu=use_gpu).centroids
