import numpy as np
import pytest

from lamina.index.dense import DenseIndex, auto_nlist
from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.snapshot import read_manifest, verify_snapshot, write_snapshot
from lamina.index.types import IndexConfig


def brute_force(base: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, metric: str):
    if metric == "ip":
        scores = queries @ base.T
    else:
        scores = -((queries[:, None, :] - base[None, :, :]) ** 2).sum(-1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((20, 24)).astype(np.float32) * 3
    base = (centers[rng.integers(0, 20, 4000)] + rng.standard_normal((4000, 24))).astype(np.float32)
    queries = (centers[rng.integers(0, 20, 50)] + rng.standard_normal((50, 24))).astype(np.float32)
    ids = rng.permutation(100_000)[:4000].astype(np.int64)
    return base, ids, queries


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_is_exact(data, metric):
    base, ids, queries = data
    index = DenseIndex(24, metric, IndexConfig("flat"))
    index.add(ids, base)
    scores, found = index.search(queries, 10)
    true_scores, truth = brute_force(base, ids, queries, 10, metric)
    np.testing.assert_allclose(scores, true_scores, rtol=1e-4, atol=1e-3)
    assert recall(found, truth) == 1.0


@pytest.mark.parametrize("kind,params,bound", [("ivf", {"nprobe": 8}, 0.9), ("hnsw", {"ef_search": 64}, 0.95)])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_approximate_kinds_reach_recall(data, kind, params, bound, metric):
    base, ids, queries = data
    index = DenseIndex(24, metric, IndexConfig(kind), train_size=1000)
    index.add(ids, base)
    if kind == "ivf":
        assert index.trained_ivf
    _, found = index.search(queries, 10, params=params)
    _, truth = brute_force(base, ids, queries, 10, metric)
    assert recall(found, truth) >= bound


def test_ivf_with_all_lists_probed_is_exact(data):
    base, ids, queries = data
    index = DenseIndex(24, "l2", IndexConfig("ivf", nlist=16), train_size=1000)
    index.add(ids, base)
    _, found = index.search(queries, 10, params={"nprobe": 16})
    assert recall(found, brute_force(base, ids, queries, 10, "l2")[1]) == 1.0


def test_untrained_ivf_answers_exactly_from_its_buffer(data):
    base, ids, queries = data
    index = DenseIndex(24, "l2", IndexConfig("ivf"), train_size=10_000)
    index.add(ids[:500], base[:500])
    assert not index.trained_ivf
    _, found = index.search(queries, 5)
    assert recall(found, brute_force(base[:500], ids[:500], queries, 5, "l2")[1]) == 1.0


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_delete_and_allowed_selector(data, kind):
    base, ids, queries = data
    index = DenseIndex(24, "l2", IndexConfig(kind, nlist=16), train_size=1000)
    index.add(ids, base)
    gone = ids[::3]
    index.delete(gone)
    index.delete(np.array([-5, 10**9]))  # unknown ids are ignored
    keep = ~np.isin(ids, gone)
    assert len(index) == keep.sum()
    params = {"nprobe": 16} if kind == "ivf" else {"ef_search": 200} if kind == "hnsw" else {}
    _, found = index.search(queries, 10, params=params)
    assert not np.isin(found, gone).any()
    _, truth = brute_force(base[keep], ids[keep], queries, 10, "l2")
    assert recall(found, truth) >= (1.0 if kind != "hnsw" else 0.95)

    allowed = np.sort(ids[keep][:40])
    _, found = index.search(queries, 10, allowed=allowed, params=params)
    assert np.isin(found[found >= 0], allowed).all()
    sub = np.isin(ids, allowed)
    _, truth = brute_force(base[sub], ids[sub], queries, 10, "l2")
    assert recall(found, truth) >= (1.0 if kind != "hnsw" else 0.9)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
@pytest.mark.parametrize("train_size", [1000, 10_000])  # IVF trained on its lists, or still a flat buffer
def test_vectors_of_reads_exactly_the_live_vectors(data, kind, train_size):
    base, ids, _ = data
    index = DenseIndex(24, "l2", IndexConfig(kind, nlist=16), train_size=train_size)
    index.add(ids, base)
    assert index.trained_ivf == (kind == "ivf" and train_size == 1000)
    rows = np.random.default_rng(3).permutation(len(ids))[:500]
    np.testing.assert_array_equal(index.vectors_of(ids[rows]), base[rows])
    assert index.vectors_of(np.empty(0, np.int64)).shape == (0, 24)
    assert index.vectors_of(np.array([ids[0], 10**9])) is None  # not in the index: the caller falls back
    index.delete(ids[:100])
    assert index.vectors_of(ids[50:51]) is None  # deleted (or a tombstone for HNSW)
    np.testing.assert_array_equal(index.vectors_of(ids[100:300]), base[100:300])


def test_ivf_adding_an_id_again_replaces_it(data):
    base, ids, queries = data
    index = DenseIndex(24, "l2", IndexConfig("ivf", nlist=16), train_size=1000)
    index.add(ids, base)
    index.add(ids[:5], base[5:10])  # the same ids, other vectors
    assert len(index) == len(ids)
    np.testing.assert_array_equal(index.vectors_of(ids[:5]), base[5:10])
    index.delete(ids[:5])
    _, found = index.search(base[:10], 10, params={"nprobe": 16})
    assert not np.isin(found, ids[:5]).any()  # no entry left behind


def test_ivf_written_without_an_id_map_gets_one_on_load(tmp_path, data):
    import faiss

    base, ids, _ = data
    index = DenseIndex(24, "l2", IndexConfig("ivf", nlist=16), train_size=1000)
    index.add(ids, base)
    index._index.set_direct_map_type(faiss.DirectMap.NoMap)  # as indexes were written before the map
    index.save(tmp_path)
    loaded = DenseIndex.load(tmp_path, 24, "l2", IndexConfig("ivf", nlist=16), train_size=1000)
    np.testing.assert_array_equal(loaded.vectors_of(ids[:20]), base[:20])
    loaded.delete(ids[:10])
    assert len(loaded) == len(ids) - 10 and loaded.vectors_of(ids[:1]) is None


def test_hnsw_compacts_when_tombstones_pile_up(data):
    base, ids, _ = data
    index = DenseIndex(24, "l2", IndexConfig("hnsw"))
    index.add(ids, base)
    index.delete(ids[: len(ids) // 2])
    assert len(index) == len(ids) - len(ids) // 2
    assert index._index.ntotal == len(index)  # rebuilt without the dead half


def test_fewer_matches_than_k_pad_with_minus_one():
    index = DenseIndex(4, "ip", IndexConfig("flat"))
    index.add(np.array([1, 2]), np.eye(4, dtype=np.float32)[:2])
    scores, found = index.search(np.ones((1, 4), np.float32), 5)
    assert found[0, :2].tolist() in ([1, 2], [2, 1]) and found[0, 2:].tolist() == [-1, -1, -1]
    assert np.isneginf(scores[0, 2:]).all()


def test_bad_input_is_rejected():
    index = DenseIndex(4, "ip", IndexConfig("hnsw"))
    with pytest.raises(InvalidArgument, match="dimension 3"):
        index.search(np.ones(3, np.float32), 1)
    with pytest.raises(InvalidArgument, match="expects"):
        index.add(np.array([1]), np.ones((1, 5), np.float32))
    with pytest.raises(InvalidArgument, match="unknown search parameter"):
        index.search(np.ones(4, np.float32), 1, params={"nprob": 3})
    with pytest.raises(InvalidArgument, match="positive integer"):
        index.search(np.ones(4, np.float32), 1, params={"ef_search": 0})
    with pytest.raises(InvalidArgument, match="unknown index kind"):
        IndexConfig("annoy")


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_snapshot_round_trip_and_corruption(tmp_path, data, kind):
    base, ids, queries = data
    cfg = IndexConfig(kind, nlist=16)
    index = DenseIndex(24, "l2", cfg, train_size=1000)
    index.add(ids, base)
    index.delete(ids[:10])
    write_snapshot(tmp_path, 42, index.save)
    manifest = read_manifest(tmp_path)
    assert manifest["seq"] == 42
    loaded = DenseIndex.load(verify_snapshot(tmp_path, manifest), 24, "l2", cfg)
    assert len(loaded) == len(index)
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])

    with pytest.raises(CorruptIndex):
        DenseIndex.load(verify_snapshot(tmp_path, manifest), 32, "l2", cfg)
    target = tmp_path / manifest["dir"] / "index.faiss"
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(CorruptIndex, match="checksum"):
        verify_snapshot(tmp_path, manifest)


def test_interrupted_snapshot_leaves_previous_one_current(tmp_path):
    index = DenseIndex(4, "ip", IndexConfig("flat"))
    index.add(np.array([1]), np.ones((1, 4), np.float32))
    write_snapshot(tmp_path, 1, index.save)

    def crash(directory):
        index.save(directory)
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_snapshot(tmp_path, 2, crash)
    manifest = read_manifest(tmp_path)
    assert manifest["seq"] == 1
    assert len(DenseIndex.load(verify_snapshot(tmp_path, manifest), 4, "ip", IndexConfig("flat"))) == 1


def test_auto_nlist():
    assert auto_nlist(1_000_000) == 4000
    assert auto_nlist(1000) == 25
    assert auto_nlist(10) == 1


def test_allow_list_selector_admits_exactly_the_allowed_ids():
    import faiss

    from lamina.index.dense import BITMAP_MIN_IDS, allow_list_selector

    rng = np.random.default_rng(4)
    for size in (10, BITMAP_MIN_IDS, 5 * BITMAP_MIN_IDS):
        allowed = np.unique(rng.integers(0, 200_000, size))
        selector = allow_list_selector(allowed)
        assert isinstance(selector, faiss.IDSelectorBitmap) == (len(allowed) >= BITMAP_MIN_IDS)
        probe = np.concatenate([allowed, rng.integers(0, 250_000, 2000)])
        member = np.array([selector.is_member(int(i)) for i in probe])
        np.testing.assert_array_equal(member, np.isin(probe, allowed))
