"""Scan codes against brute force: the candidates they pick hold the true nearest ids, ids without a
code are never dropped, adding replaces, persistence round-trips, bad input is refused."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from lamina.index.dense import DenseIndex
from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.scan import ClusteredCodes, ScanCodes, adc_scores, pack_blocks, sub_quantizers
from lamina.index.tenants import brute_force_topk
from lamina.index.types import IndexConfig

DIM = 32
N = 8_000


def mixture(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, DIM), queries (40, DIM)) from one Gaussian mixture."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((60, DIM)).astype(np.float32) * 2
    vectors = (centers[rng.integers(0, 60, n)] + rng.standard_normal((n, DIM))).astype(np.float32)
    queries = (centers[rng.integers(0, 60, 40)] + rng.standard_normal((40, DIM))).astype(np.float32)
    return vectors, queries


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return mixture(N, 11)


def codes_for(vectors: np.ndarray, metric: str) -> ScanCodes:
    codes = ScanCodes(DIM, metric)
    codes.train(vectors)
    codes.add(np.arange(len(vectors), dtype=np.int64), vectors)
    return codes


def test_sub_quantizers_take_about_a_byte_per_4_dimensions():
    assert [sub_quantizers(d) for d in (192, 384, 128, 32, 100, 7, 6)] == [48, 96, 32, 8, 25, 1, 2]
    assert ScanCodes(384).n_sub == 96


def test_default_codes_rank_a_scattered_filter_finer_than_a_byte_per_8_dimensions():
    """Why the default is one sub-quantiser per 4 dimensions: a filter's ids scattered over many
    small clusters are about equally far from the query, and the coarser codes miss a fifth of the
    true top 10 in the best 64 candidates."""
    rng = np.random.default_rng(0)
    n, dim = 20_000, 64
    centers = rng.standard_normal((n // 20, dim)).astype(np.float32) * 1.5
    vectors = (centers[rng.integers(0, len(centers), n)] + rng.standard_normal((n, dim))).astype(np.float32)
    ids = np.sort(rng.choice(n, 2_000, replace=False))
    queries = (centers[rng.integers(0, len(centers), 50)] + rng.standard_normal((50, dim))).astype(np.float32)
    truth = [ids[brute_force_topk(q[None], vectors[ids], np.arange(len(ids)), 10, "l2")[1][0]] for q in queries]
    found = {}
    for n_sub in (sub_quantizers(dim), dim // 8):
        codes = ScanCodes(dim, "l2", n_sub)
        codes.train(vectors)
        codes.add(np.arange(n, dtype=np.int64), vectors)
        found[n_sub] = np.mean([len(np.intersect1d(t, codes.candidates(q, ids, 64))) / 10
                                for q, t in zip(queries, truth, strict=True)])
    assert found[sub_quantizers(dim)] >= 0.95
    assert found[dim // 8] < found[sub_quantizers(dim)] - 0.1


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_candidates_hold_the_true_nearest(data, metric):
    vectors, queries = data
    codes = codes_for(vectors, metric)
    ids = np.sort(np.random.default_rng(1).choice(N, 3_000, replace=False)).astype(np.int64)
    truth = brute_force_topk(queries, vectors[ids], ids, 10, metric)[1]
    found = 0
    for query, best in zip(queries, truth):
        picked = codes.candidates(query, ids, 150)
        assert len(picked) == 150 and np.all(np.diff(picked) > 0) and np.isin(picked, ids).all()
        found += len(np.intersect1d(picked, best))
    assert found / truth.size >= 0.97  # 5% of the ids (a random 5% would hold 5% of the top 10)
    np.testing.assert_array_equal(codes.candidates(queries[0], ids[:100], 150), ids[:100])


def test_ids_without_a_code_are_always_candidates(data):
    vectors, queries = data
    codes = ScanCodes(DIM, "l2")
    codes.train(vectors)
    codes.add(np.arange(1_000, dtype=np.int64), vectors[:1_000])
    unseen = np.array([1_500, 4_000, 50_000], dtype=np.int64)  # inside the table unencoded, and past its end
    ids = np.concatenate([np.arange(1_000, dtype=np.int64), unseen])
    for query in queries[:5]:
        assert np.isin(unseen, codes.candidates(query, ids, 10)).all()
    assert len(codes) == 1_000


def test_adding_an_id_again_replaces_its_code(data):
    vectors, queries = data
    codes = codes_for(vectors, "l2")
    query = queries[0]
    far = int(np.argmax(((vectors - query) ** 2).sum(1)))
    ids = np.arange(N, dtype=np.int64)
    assert far not in codes.candidates(query, ids, 20)
    codes.add(np.array([far]), query[None, :])
    assert far in codes.candidates(query, ids, 20)
    assert len(codes) == N


@pytest.mark.parametrize("n_sub", [4, 8, 16, 32])  # rows padded to a word (4), one, two and four words
def test_code_costs_are_the_table_sums_of_the_codes(tmp_path, data, n_sub):
    vectors, queries = data
    codes = ScanCodes(DIM, "l2", n_sub)
    codes.train(vectors)
    held = np.sort(np.random.default_rng(2).choice(N, N // 2, replace=False)).astype(np.int64)
    codes.add(held, vectors[held])  # the other half are holes: rows without a code
    raw = codes._pq.compute_codes(vectors)
    ids = np.arange(-3, N + 50, dtype=np.int64)  # negative, holes, held, past the end
    for store in (codes, _reloaded(codes, tmp_path)):
        assert len(store) == len(held)
        for query in queries[:3]:
            table = store.table(query)
            costs = adc_scores(ids, store._codes.view(np.uint64), store._seen, table)
            expected = np.full(len(ids), -np.inf, dtype=np.float32)
            expected[held + 3] = table[np.arange(n_sub), raw[held]].sum(1)
            np.testing.assert_allclose(costs, expected, rtol=1e-5)


def _reloaded(codes: ScanCodes, directory) -> ScanCodes:
    codes.save(directory)
    return ScanCodes.load(directory, codes.dim, codes.metric)


def test_save_load_round_trip_and_corruption(tmp_path, data):
    vectors, queries = data
    codes = codes_for(vectors, "ip")
    codes.save(tmp_path)
    again = ScanCodes.load(tmp_path, DIM, "ip")
    ids = np.arange(0, N, 2, dtype=np.int64)
    for query in queries[:5]:
        np.testing.assert_array_equal(again.candidates(query, ids, 100), codes.candidates(query, ids, 100))
    with pytest.raises(CorruptIndex, match="built for"):
        ScanCodes.load(tmp_path, DIM, "l2")
    np.save(tmp_path / "scan_codes.npy", np.zeros((3, 4), dtype=np.uint8))
    with pytest.raises(CorruptIndex, match="manifest"):
        ScanCodes.load(tmp_path, DIM, "ip")
    (tmp_path / "scan_pq.faiss").write_bytes(b"truncated")
    with pytest.raises(CorruptIndex, match="unreadable"):
        ScanCodes.load(tmp_path, DIM, "ip")


def test_bad_input_is_refused(data):
    vectors, _ = data
    with pytest.raises(InvalidArgument, match="divisor"):
        ScanCodes(DIM, n_sub=5)
    with pytest.raises(InvalidArgument, match="metric"):
        ScanCodes(DIM, "cosine")
    codes = ScanCodes(DIM)
    with pytest.raises(InvalidArgument, match="trained"):
        codes.add(np.arange(3), vectors[:3])
    with pytest.raises(InvalidArgument, match="not trained"):
        codes.candidates(vectors[0], np.arange(3), 2)
    with pytest.raises(InvalidArgument, match="at least 256"):
        codes.train(vectors[:100])
    codes.train(vectors)
    with pytest.raises(InvalidArgument, match=r"\(n, 32\)"):
        codes.add(np.arange(3), vectors[:3, :16])
    with pytest.raises(InvalidArgument, match=r"query has shape"):
        codes.candidates(vectors[0, :16], np.arange(N), 10)
    with pytest.raises(InvalidArgument, match=">= 0"):
        codes.add(np.array([-1, 2, 3]), vectors[:3])
    with pytest.raises(InvalidArgument, match="ids for"):
        codes.add(np.arange(2), vectors[:3])


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_dense_index_keeps_scan_codes_from_its_train_size_on(tmp_path, data, kind):
    vectors, queries = data
    ids = np.arange(N, dtype=np.int64) * 2 + 5
    index = DenseIndex(DIM, "l2", IndexConfig(kind=kind, nlist=32, gpu=False), train_size=3_000)
    index.add(ids[:2_000], vectors[:2_000])
    assert index.codes is None
    index.add(ids[2_000:], vectors[2_000:])  # passes train_size: trained on all 8,000, all encoded
    assert index.codes is not None and len(index.codes) == N
    before = index.codes.candidates(queries[0], ids, 50)
    index.save(tmp_path)
    loaded = DenseIndex.load(tmp_path, DIM, "l2", IndexConfig(kind=kind, nlist=32, gpu=False), train_size=3_000)
    np.testing.assert_array_equal(loaded.codes.candidates(queries[0], ids, 50), before)
    loaded.add(np.array([10**6]), queries[0][None, :])  # later additions are encoded too
    assert 10**6 in loaded.codes.candidates(queries[0], np.append(ids, 10**6), 5)

    off = DenseIndex(DIM, "l2", IndexConfig(kind=kind, nlist=32, gpu=False, scan_codes=False), train_size=3_000)
    off.add(ids, vectors)
    assert off.codes is None
    with pytest.raises(InvalidArgument, match="scan_codes"):
        IndexConfig(kind=kind, scan_codes="yes")


# ---------------------------------------------------------------------- clustered codes
def clustered_for(vectors: np.ndarray, values: np.ndarray, metric: str) -> ClusteredCodes:
    order = np.argsort(values, kind="stable")
    codes = ClusteredCodes("v", DIM, metric)
    codes.build(values[order].astype(np.float64), np.arange(len(vectors), dtype=np.int64)[order], lambda i: vectors[i])
    return codes


def test_blocks_are_laid_out_as_faiss_fast_scan_packs_them(data):
    vectors, _ = data
    index = faiss.IndexPQFastScan(DIM, DIM // 2, 4, faiss.METRIC_L2, 32)
    index.train(vectors[:2_000])
    for n in (32, 45, 1_000):  # whole blocks and a partial last one
        index.reset()
        index.add(vectors[:n])
        expected = faiss.rev_swig_ptr(index.codes.get(), index.codes.size()).copy()
        blocks = np.full(len(expected), 255, dtype=np.uint8)
        pack_blocks(index.pq.compute_codes(vectors[:n]), DIM // 2, blocks)
        np.testing.assert_array_equal(blocks, expected)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_clustered_candidates_are_the_run_and_hold_its_nearest(data, metric):
    vectors, queries = data
    values = np.random.default_rng(3).integers(0, 1_000, len(vectors)).astype(np.float64)
    codes = clustered_for(vectors, values, metric)
    assert len(codes) == N and codes.memory_bytes() >= N * DIM // 4
    found = total = 0
    # runs of 1 .. 8,000 codes, starting and stopping inside fast-scan blocks of 32
    for lo, hi in ((0, 1_000), (7.0, 19.0), (500, 501), (120, 480), (999, 1_000)):
        start, stop = codes.span(lo, True, hi, False)
        allowed = np.flatnonzero((values >= lo) & (values < hi))
        np.testing.assert_array_equal(np.sort(codes.ids[start:stop]), allowed)
        for query in queries[:10]:
            picked = codes.candidates(query, start, stop, 200)
            assert len(picked) == min(200, len(allowed)) and len(np.unique(picked)) == len(picked)
            assert np.isin(picked, allowed).all()  # never a code from beside the run
            truth = brute_force_topk(query[None], vectors[allowed], allowed, 10, metric)[1][0]
            truth = truth[truth >= 0]  # a run of 4 has 4
            found += int(np.isin(truth, picked).sum())
            total += len(truth)
    assert found / total >= 0.97  # 200 rescored of up to 8,000 (1.0 on runs of at most 200)


def test_clustered_span_bounds_and_currency(data):
    vectors, _ = data
    values = np.repeat(np.arange(N // 4, dtype=np.float64), 4)  # each value on 4 ids
    codes = ClusteredCodes("v", DIM, "l2")
    ids = np.arange(N, dtype=np.int64)
    codes.build(values, ids, lambda i: vectors[i])
    assert codes.span(10, True, 12, True) == (40, 52)
    assert codes.span(10, False, 12, False) == (44, 48)
    assert codes.span(-np.inf, True, np.inf, True) == (0, N)
    assert codes.span(12, True, 10, True) == (48, 48)  # an empty interval
    assert codes.current((values, ids)) and not codes.current((values, ids.copy())) and not codes.current(None)


def test_clustered_codes_refuse_bad_input(data):
    vectors, _ = data
    ids = np.arange(1_000, dtype=np.int64)
    with pytest.raises(InvalidArgument, match="even"):
        ClusteredCodes("v", 7)
    with pytest.raises(InvalidArgument, match="one value an id"):
        ClusteredCodes("v", DIM).build(np.arange(1_000.0), ids % 500, lambda i: vectors[i])
    with pytest.raises(InvalidArgument, match="sorted"):
        ClusteredCodes("v", DIM).build(np.arange(1_000.0)[::-1], ids, lambda i: vectors[i])
    with pytest.raises(InvalidArgument, match="at least"):
        ClusteredCodes("v", DIM).build(np.arange(10.0), ids[:10], lambda i: vectors[i])
    with pytest.raises(InvalidArgument, match="shape"):
        ClusteredCodes("v", DIM).build(np.arange(1_000.0), ids, lambda i: vectors[i, :8])


def test_clustered_codes_round_trip_and_follow_only_their_pairs(data, tmp_path):
    vectors, queries = data
    values = np.random.default_rng(4).integers(0, 500, len(vectors)).astype(np.float64)
    codes = clustered_for(vectors, values, "ip")
    codes.save(tmp_path)
    pairs = (codes.values.copy(), codes.ids.copy())  # equal arrays, as a reloaded payload index holds
    loaded = ClusteredCodes.load(tmp_path, "v", DIM, "ip", pairs)
    assert loaded is not None and loaded.current(pairs) and loaded.memory_bytes() == codes.memory_bytes()
    start, stop = codes.span(10, True, 400, True)
    for query in queries[:5]:
        np.testing.assert_array_equal(loaded.candidates(query, start, stop, 100), codes.candidates(query, start, stop, 100))
    moved = (pairs[0], pairs[1][::-1].copy())
    assert ClusteredCodes.load(tmp_path, "v", DIM, "ip", moved) is None  # other pairs: lay them out again
    assert ClusteredCodes.load(tmp_path, "v", DIM, "ip", None) is None
    with pytest.raises(CorruptIndex, match="built for"):
        ClusteredCodes.load(tmp_path, "w", DIM, "ip", pairs)
    np.save(tmp_path / "clustered_blocks.npy", np.zeros(10, dtype=np.uint8))
    with pytest.raises(CorruptIndex, match="codes' worth"):
        ClusteredCodes.load(tmp_path, "v", DIM, "ip", pairs)
    (tmp_path / "clustered_pq.faiss").write_bytes(b"junk")
    with pytest.raises(CorruptIndex, match="unreadable"):
        ClusteredCodes.load(tmp_path, "v", DIM, "ip", pairs)
