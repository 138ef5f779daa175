"""The one k-means wrapper: its centroids separate well-separated blobs, and the GPU check."""

import numpy as np
import pytest
from lamina.index import kmeans


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_train_finds_separated_blobs(metric):
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:4] * 10
    x = (centres[rng.integers(0, 4, size=800)] + rng.normal(scale=0.1, size=(800, 8))).astype(np.float32)
    found = kmeans.train(x, 4, metric=metric, niter=10).centroids
    assert found.shape == (4, 8) and found.dtype == np.float32
    if metric == "ip":  # spherical: unit centroids along the blob directions
        np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-4)
        centres = centres / 10
    nearest = ((centres[:, None] - found[None]) ** 2).sum(-1).min(1)
    assert nearest.max() < 0.05


def test_train_kmeans_is_reproducible_with_a_seed():
    x = np.random.default_rng(1).normal(size=(500, 6)).astype(np.float32)
    a = kmeans.train_kmeans(x, 5, "l2", use_gpu=False, seed=7)
    b = kmeans.train_kmeans(x, 5, "l2", use_gpu=False, seed=7)
    np.testing.assert_array_equal(a, b)


def test_gpu_only_when_asked_present_and_large(monkeypatch):
    monkeypatch.setattr(kmeans, "gpu_count", lambda: 0)
    assert not kmeans.want_gpu(True, 10**6, 10)
    monkeypatch.setattr(kmeans, "gpu_count", lambda: 1)
    assert kmeans.want_gpu(True, 10**6, 10)
    assert not kmeans.want_gpu(True, 5, 10)
    assert not kmeans.want_gpu(False, 10**6, 10)
