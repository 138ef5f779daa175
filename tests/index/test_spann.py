"""SPANN index: recall against brute force, the RNG and cap rules, pruning, updates, files and faults."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index.base import VectorIndex
from lamina.index.errors import CorruptIndex, FailedPrecondition, InvalidArgument
from lamina.index.spann import SpannConfig, SpannIndex, verify
from lamina.index.spann import files as spann_files
from lamina.index.spann.assign import cap_postings, prune_postings, rng_select
from lamina.index.spann.clustering import balanced_kmeans, select_heads
from lamina.index.spann.heads import budget_heads
from lamina.index.spann.heads import FLAT, GRAPH, SCAN, HeadIndex
from lamina.index.spann.postings import COUNT, PostingWriter

DIM = 32


def mixture(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    return (centers[rng.integers(0, len(centers), n)] + rng.standard_normal((n, centers.shape[1]))).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(base: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int, metric: str):
    ip = queries @ base.T
    scores = ip if metric == "ip" else -((queries**2).sum(1)[:, None] - 2 * ip + (base**2).sum(1)[None, :])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((40, DIM)).astype(np.float32) * 3
    base = mixture(rng, 8000, centers)
    queries = mixture(rng, 100, centers)
    ids = rng.permutation(1_000_000)[:8000].astype(np.int64)
    return base, ids, queries, centers


@pytest.fixture(scope="module", params=["l2", "ip"])
def built(request, data, tmp_path_factory):
    base, ids, queries, _ = data
    if request.param == "ip":
        base, queries = unit(base), unit(queries)
    index = SpannIndex.build(ids, base, metric=request.param, path=tmp_path_factory.mktemp("spann"))
    return index, base, ids, queries, request.param


# ---------------------------------------------------------------------- recall and scores
def test_recall_at_10_with_default_params(built):
    index, base, ids, queries, metric = built
    assert isinstance(index, VectorIndex)
    assert len(index) == len(ids)
    # the default head count is the most the 20 % memory budget affords at this dimension
    assert index.config.head_ratio is None and index.config.memory_budget == 0.2
    assert abs(index.n_heads - budget_heads(len(ids), DIM, 0.2, flat_max=index.config.flat_heads_max)) <= 4  # snapping
    assert index.memory_bytes() <= 0.2 * base.nbytes
    scores, found = index.search(queries, 10)
    true_scores, truth = brute_force(base, ids, queries, 10, metric)
    assert recall(found, truth) >= 0.95
    # scores are exact for what is found, larger is better, sorted
    by_id = {int(i): row for row, i in enumerate(ids)}
    rows = np.array([[by_id[int(i)] for i in r] for r in found])
    exact = (queries[:, None, :] * base[rows]).sum(-1) if metric == "ip" \
        else -((queries[:, None, :] - base[rows]) ** 2).sum(-1)
    np.testing.assert_allclose(scores, exact, rtol=1e-4, atol=1e-3)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_more_results_than_vectors_pads(built):
    index, base, ids, queries, _ = built
    allowed = np.sort(ids[:5])
    scores, found = index.search(queries[:3], 10, allowed=allowed, params={"max_postings": 4096})
    assert (found[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert set(found[:, :5].ravel()) <= set(allowed)


def test_allowed_restricts_results(built):
    index, base, ids, queries, metric = built
    rng = np.random.default_rng(1)
    allowed = np.sort(rng.choice(ids, size=len(ids) // 3, replace=False))
    _, found = index.search(queries, 10, allowed=allowed)
    assert np.isin(found[found >= 0], allowed).all()
    mask = np.isin(ids, allowed)
    _, truth = brute_force(base[mask], ids[mask], queries, 10, metric)
    assert recall(found, truth) >= 0.9


def test_pruning_reads_fewer_postings_and_scores_a_subset(built):
    index, _, _, queries, metric = built
    wide = {"max_postings": 64, "max_dist_ratio": 10_000.0, "min_postings": 1}
    narrow = {"max_postings": 64, "max_dist_ratio": 1.2 if metric == "l2" else 1.5, "min_postings": 1}
    fewer = 0
    for query in queries[:30]:
        wide_ids, wide_scores, wide_read = index.candidates(query, params=wide)
        narrow_ids, narrow_scores, narrow_read = index.candidates(query, params=narrow)
        assert set(narrow_read) <= set(wide_read)
        assert set(narrow_ids) <= set(wide_ids)
        assert narrow_scores.max() <= wide_scores.max() + 1e-6
        fewer += len(narrow_read) < len(wide_read)
    assert fewer >= 20
    before = index.io_stats.lists
    index.search(queries, 10, params=narrow)
    narrow_lists = index.io_stats.lists - before
    index.search(queries, 10, params=wide)
    assert narrow_lists < index.io_stats.lists - before - narrow_lists
    # with every posting read the top-10 is still at least as good as the pruned one
    narrow_scores, _ = index.search(queries, 10, params=narrow)
    wide_scores, _ = index.search(queries, 10, params=wide)
    assert (wide_scores[:, 0] >= narrow_scores[:, 0] - 1e-5).all()


def test_bad_arguments_are_rejected(built):
    index, base, ids, queries, _ = built
    with pytest.raises(InvalidArgument, match="dimension"):
        index.search(np.zeros((2, DIM + 1), np.float32), 5)
    with pytest.raises(InvalidArgument, match="shape"):
        index.add(np.array([1]), np.zeros((1, DIM - 1), np.float32))
    with pytest.raises(InvalidArgument, match="NaN"):
        index.search(np.full(DIM, np.nan, np.float32), 5)
    with pytest.raises(InvalidArgument, match="k must"):
        index.search(queries[:1], 0)
    with pytest.raises(InvalidArgument, match="unknown search parameter"):
        index.search(queries[:1], 5, params={"nprobe": 3})
    with pytest.raises(InvalidArgument, match="max_dist_ratio"):
        index.search(queries[:1], 5, params={"max_dist_ratio": -1})
    with pytest.raises(InvalidArgument, match="already in the index"):
        index.add(ids[:1], base[1:2])  # a held id with another vector (the same one is a no-op)
    with pytest.raises(InvalidArgument, match="head_ratio"):
        SpannConfig(head_ratio=0)
    with pytest.raises(InvalidArgument, match="dtype"):
        SpannConfig(dtype="bfloat16")
    with pytest.raises(InvalidArgument, match="io mode 'aio'"):
        SpannConfig(io="aio")


# ---------------------------------------------------------------------- the pure rules
def test_rng_rule_on_crafted_heads():
    # a vector at the origin; heads on a line: 1.0 (nearest), 1.2 (behind head 0), -1.5 (other side), 3.0
    heads = np.array([[1.0, 0.0], [1.2, 0.0], [-1.5, 0.0], [3.0, 0.0]], dtype=np.float32)
    candidates = np.array([[0, 1, 2, 3]], dtype=np.int64)
    dists = (heads[candidates[0]] ** 2).sum(1)[None].astype(np.float32)
    chosen, positions = rng_select(candidates, dists, heads, rng_factor=1.0, replicas=8)
    assert chosen[0].tolist() == [0, 2, -1, -1, -1, -1, -1, -1]
    assert positions[0, :2].tolist() == [0, 2]
    # a smaller factor vetoes more: head 2 is 2.5 from head 0 (6.25 squared) and 1.5 from the vector
    # (2.25 squared), so 0.3 * 6.25 < 2.25 rejects it
    chosen, _ = rng_select(candidates, dists, heads, rng_factor=0.3, replicas=8)
    assert chosen[0].tolist() == [0] + [-1] * 7
    chosen, _ = rng_select(candidates, dists, heads, rng_factor=100.0, replicas=8)
    assert chosen[0, :4].tolist() == [0, 1, 2, 3]  # a large factor accepts everything
    chosen, _ = rng_select(candidates, dists, heads, rng_factor=100.0, replicas=2)
    assert chosen[0].tolist() == [0, 1]
    # padding (-1) ends a row; rows are independent
    padded = np.array([[0, -1, -1, -1], [2, 0, 3, 1]], dtype=np.int64)
    pd = np.where(padded >= 0, 1.0, np.inf).astype(np.float32)
    chosen, _ = rng_select(padded, pd, heads, replicas=3)
    assert chosen[0].tolist() == [0, -1, -1]
    assert chosen[1, 0] == 2


def test_posting_cap_keeps_the_nearest():
    heads = np.array([0, 0, 0, 0, 1, 1, 0], dtype=np.int64)
    dists = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 1.0, 0.5], dtype=np.float32)
    kept = cap_postings(heads, dists, cap=3)
    assert kept.tolist() == [6, 1, 3, 5, 4]


def test_posting_cap_in_a_built_index(tmp_path):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3000, 8)).astype(np.float32)
    natural = SpannIndex.build(np.arange(3000), base, config=SpannConfig(head_ratio=0.12), path=tmp_path / "natural")
    natural_counts = natural._reader.directory[:, COUNT]
    cap = int(np.percentile(natural_counts, 60))
    index = SpannIndex.build(np.arange(3000), base, config=SpannConfig(head_ratio=0.12, posting_cap=cap), path=tmp_path / "capped")
    heads = np.arange(len(index._reader.directory))
    lists = index._reader.read(heads)
    assert sum(len(ids) for ids, _ in lists) < natural_counts.sum()
    stored = np.concatenate([ids for ids, _ in lists])
    copies = dict(zip(*np.unique(stored, return_counts=True)))
    head_ids = set(index._heads.ids.tolist())
    assert set(copies) | head_ids == set(range(3000))  # nothing lost
    for h, (ids, vectors) in zip(heads, lists):
        dist = ((vectors - index._heads.vectors[h]) ** 2).sum(1)
        assert (np.diff(dist) >= -1e-5).all()  # nearest first
        # beyond the cap only a vector's last copy is kept
        assert all(copies[i] == 1 for i in ids[cap:].tolist())
    assert index.stats.over_cap == (index._reader.directory[:, COUNT] > cap).sum()
    _, found = index.search(base[:200], 1)
    assert (found[:, 0] == np.arange(200)).mean() > 0.95


def test_prune_postings():
    d = np.array([1.0, 1.5, 2.0, 9.0, 30.0], dtype=np.float32)
    assert prune_postings(d, max_dist_ratio=2.0).tolist() == [True, True, True, False, False]
    assert prune_postings(d, max_dist_ratio=2.0, min_postings=4).tolist() == [True, True, True, True, False]
    zero = np.array([0.0, 0.1, 0.2], dtype=np.float32)
    assert prune_postings(zero, max_dist_ratio=10.0, min_postings=2).tolist() == [True, True, False]


def test_heads_are_balanced_real_vectors(data):
    base, *_ = data
    rows = select_heads(base, 500, branching=16)
    assert len(np.unique(rows)) == len(rows)
    assert 450 <= len(rows) <= 550
    _, labels = balanced_kmeans(base, 16, balance_iters=10)
    sizes = np.bincount(labels, minlength=16)
    assert sizes.max() <= 6 * len(base) / 16


# ---------------------------------------------------------------------- updates
@pytest.mark.parametrize(("flat_heads_max", "scan_heads_max", "kind"),
                         [(4096, 0, FLAT), (64, 0, SCAN), (64, 128, GRAPH)], ids=[FLAT, SCAN, GRAPH])
def test_runbook_of_inserts_and_deletes(tmp_path, flat_heads_max, scan_heads_max, kind):
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((30, DIM)).astype(np.float32) * 3
    base = mixture(rng, 4000, centers)
    queries = mixture(rng, 40, centers)
    ids = np.arange(10_000, 14_000, dtype=np.int64)
    config = SpannConfig(head_ratio=0.12, posting_cap=64, flat_heads_max=flat_heads_max, scan_heads_max=scan_heads_max)
    index = SpannIndex.build(ids[:2000], base[:2000], config=config, path=tmp_path)
    assert index._heads.kind == kind
    live = np.zeros(len(ids), dtype=bool)
    live[:2000] = True
    steps = [("insert", 2000, 2800), ("delete", 0, 500), ("insert", 2800, 3400), ("delete", 2000, 2400),
             ("compact", 0, 0), ("insert", 3400, 4000), ("delete", 3000, 3200)]
    for action, a, b in steps:
        if action == "insert":
            index.add(ids[a:b], base[a:b])
            live[a:b] = True
        elif action == "delete":
            index.delete(ids[a:b])
            live[a:b] = False
        else:
            index.compact()
        assert len(index) == live.sum()
        _, found = index.search(queries, 10)
        _, truth = brute_force(base[live], ids[live], queries, 10, "l2")
        assert recall(found, truth) >= 0.9, (action, a, b)
        assert not np.isin(found, ids[~live]).any()
    assert index.stats.splits > 0
    assert index.stats.reassigned > 0
    index.delete(np.array([-5, 99]))  # unknown ids are ignored
    assert len(index) == live.sum()
    with pytest.raises(InvalidArgument, match="was deleted"):
        index.add(ids[3000:3001], base[3000:3001])


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize(("scan_max", "kind"), [(0, SCAN), (200, GRAPH)], ids=[SCAN, GRAPH])
def test_approximate_head_index_returns_the_nearest_heads_with_exact_distances(tmp_path, metric, scan_max, kind):
    """Above flat_max the heads are searched through 4-bit scan codes or an HNSW graph over 8-bit
    codes; what they return is rescored exactly, so distances match brute force and come nearest
    first, and retired heads never come back."""
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((20, DIM)).astype(np.float32) * 3
    vectors, queries = mixture(rng, 1500, centers), mixture(rng, 50, centers)
    if metric == "ip":
        vectors, queries = unit(vectors), unit(queries)
    heads = HeadIndex(DIM, metric, flat_max=100, scan_max=scan_max)
    heads.add(vectors[:50], np.arange(50))
    assert heads.kind == FLAT
    heads.add(vectors[50:], np.arange(50, 1500))  # past flat_max (and scan_max): rebuilt
    assert heads.kind == kind
    heads.retire(np.arange(0, 1500, 7))  # under the rebuild fraction: filtered from results
    live = np.flatnonzero(heads.alive)

    def check(index: HeadIndex) -> None:
        dists, found = index.search(queries, 8, ef_search=64)
        assert heads.alive[found].all()
        expected = (vectors[found] * queries[:, None]).sum(-1) if metric == "ip" \
            else ((vectors[found] - queries[:, None]) ** 2).sum(-1)
        np.testing.assert_allclose(dists, expected, rtol=1e-4, atol=1e-4)
        assert ((np.diff(dists, axis=1) <= 1e-6) if metric == "ip" else (np.diff(dists, axis=1) >= -1e-6)).all()
        truth = brute_force(vectors[live], live, queries, 8, metric)[1]
        assert recall(found, truth) >= 0.9

    check(heads)
    compact, renumber = heads.compacted()
    paths = [tmp_path / name for name in ("vectors.npy", "ids.npy", "heads.faiss")]
    compact.write(*paths)
    again = HeadIndex.read(DIM, metric, np.load(paths[0]), np.load(paths[1]), paths[2], flat_max=100,
                           scan_max=scan_max, hnsw_m=32, ef_construction=80)
    assert again.kind == kind
    for got, written in zip(again.search(queries, 8, ef_search=64), compact.search(queries, 8, ef_search=64)):
        np.testing.assert_array_equal(got, written)
    # the compacted copy renumbers the live heads densely and finds the same heads
    found = compact.search(queries, 8, ef_search=64)[1]
    truth = renumber[brute_force(vectors[live], live, queries, 8, metric)[1]]
    assert recall(found, truth) >= 0.9


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_split_on_overflow_keeps_every_vector_findable(tmp_path, metric):
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((10, 16)).astype(np.float32) * 3
    base = mixture(rng, 800, centers)
    # a dense burst around one vector overfills that neighbourhood's postings
    burst = (base[0] + 0.1 * rng.standard_normal((250, 16))).astype(np.float32)
    if metric == "ip":
        base, burst = unit(base), unit(burst)
    index = SpannIndex.build(np.arange(800), base, metric=metric, config=SpannConfig(posting_cap=40), path=tmp_path)
    heads_before = index.n_heads
    index.add(np.arange(5000, 5250), burst)
    assert index.stats.splits >= 5 and index.stats.reassigned > 0
    assert index.n_heads >= heads_before + index.stats.splits  # each split retires one head, adds two
    alive = np.flatnonzero(index._heads.alive)
    sizes = np.array([index._size(int(h)) for h in alive])
    assert sizes.max() <= 40 or index.stats.unsplittable
    # every burst vector, and a sample of the others, finds itself
    sample = np.concatenate([np.arange(0, 800, 5), np.arange(800, 1050)])
    everything = np.concatenate([base, burst])[sample]
    all_ids = np.concatenate([np.arange(800), np.arange(5000, 5250)])[sample]
    _, found = index.search(everything, 1)
    assert (found[:, 0] == all_ids).mean() >= 0.98
    index.compact()
    assert verify(tmp_path) == []
    _, again = index.search(everything, 1)
    assert (again[:, 0] == all_ids).mean() >= 0.98


@pytest.mark.parametrize(("metric", "dtype", "io"),
                         [("l2", "float32", "mmap"), ("ip", "float16", "mmap"), ("l2", "int8", "pread")])
def test_search_kernel_agrees_with_the_candidates_path(tmp_path, data, dtype, metric, io):
    """search() scores the lists where they lie (numba; the mapped file, or a pread buffer);
    candidates() gathers them with numpy and dedups with np.unique. Their top-k must agree,
    through deltas, splits (ids moved out of on-disk lists), tombstones and an allowed set."""
    base, ids, queries, _ = data
    if metric == "ip":
        base, queries = unit(base), unit(queries)
    queries = queries[:25]
    index = SpannIndex.build(ids[:2500], base[:2500], metric=metric,
                             config=SpannConfig(head_ratio=0.12, dtype=dtype, posting_cap=48, io=io), path=tmp_path)
    assert index._reader.io == io
    index.add(ids[2500:3500], base[2500:3500])  # deltas, and splits that move ids out of disk lists
    assert index._delta and index._removed and index.stats.splits > 0
    index.delete(ids[::7])
    allowed = np.sort(ids[1::3])
    params = {"max_postings": 16}
    for allow in (None, allowed):
        scores, found = index.search(queries, 10, allowed=allow, params=params)
        for row, query in enumerate(queries):
            cand_ids, cand_scores, _ = index.candidates(query, allowed=allow, params=params)
            order = np.lexsort((cand_ids, -cand_scores))[:10]
            assert len(cand_ids) >= 10
            # a float16 / int8 replica scores its vector the same way in both paths; tiny float
            # differences between the kernel's and BLAS's sums may swap near-ties only
            assert np.allclose(scores[row], cand_scores[order], rtol=1e-4, atol=1e-4), (allow is None, row)
            assert len(set(found[row]) ^ set(cand_ids[order])) <= 2, (allow is None, row)
            assert len(set(found[row].tolist())) == 10  # no replica twice
        assert not np.isin(found, ids[::7]).any()
        if allow is not None:
            assert np.isin(found, allow).all()


def test_index_filled_through_add_builds_itself(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((900, DIM)).astype(np.float32)
    index = SpannIndex(DIM, "ip", SpannConfig(build_size=500), path=tmp_path)
    index.add(np.arange(300), base[:300])
    assert not index.built
    scores, found = index.search(base[:5], 3)
    _, truth = brute_force(base[:300], np.arange(300), base[:5], 3, "ip")
    assert (found == truth).all()  # exact until built
    index.delete(np.array([0]))
    index.save(tmp_path / "copy")
    assert len(SpannIndex.load(tmp_path / "copy")) == 299
    index.add(np.arange(300, 900), base[300:])
    assert index.built and len(index) == 899
    _, found = index.search(base[1:50], 1)
    assert (found[:, 0] == np.arange(1, 50)).mean() >= 0.95
    index.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        index.search(base[:1], 1)


# ---------------------------------------------------------------------- files
def test_save_load_round_trip_with_codecs(tmp_path, data):
    base, ids, queries, _ = data
    queries = queries[:50]
    for dtype in ("float32", "float16", "int8"):
        index = SpannIndex.build(ids[:2500], base[:2500], config=SpannConfig(dtype=dtype), path=tmp_path / dtype,
                                 seq=7)
        index.add(ids[2500:3000], base[2500:3000])
        index.delete(ids[:100])
        before_scores, before = index.search(queries, 10)
        _, truth = brute_force(base[100:3000], ids[100:3000], queries, 10, "l2")
        assert recall(before, truth) >= (0.95 if dtype == "float32" else 0.85), dtype
        index.save(tmp_path / f"{dtype}-copy", seq=9)
        loaded = SpannIndex.load(tmp_path / f"{dtype}-copy")
        assert loaded.seq == 9 and len(loaded) == len(index) == 2900
        after_scores, after = loaded.search(queries, 10)
        assert recall(after, before) >= 0.97
        assert verify(tmp_path / f"{dtype}-copy") == []
        tuned = SpannIndex.load(tmp_path / f"{dtype}-copy", overrides={"max_postings": 8, "io_threads": 4})
        assert tuned.config.max_postings == 8 and (tuned.search(queries[:5], 10)[1] >= 0).all()
        with pytest.raises(InvalidArgument, match="head_ratio"):
            SpannIndex.load(tmp_path / f"{dtype}-copy", overrides={"head_ratio": 0.5})
        # the live index still serves its own directory, deltas and all
        assert (index.search(queries[:20], 10)[1] == before[:20]).all()
        assert spann_files.read_manifest(tmp_path / dtype)["seq"] == 7
        assert index.memory_bytes() < (tmp_path / dtype / index._reader.path.name).stat().st_size


def test_corrupt_files_are_detected(tmp_path, data):
    base, ids, *_ = data
    index = SpannIndex.build(ids[:3000], base[:3000], path=tmp_path)
    manifest = spann_files.read_manifest(tmp_path)
    postings = tmp_path / manifest["files"]["postings"]["name"]
    index.close()
    assert verify(tmp_path) == []
    # a flipped byte inside a list: load still works (no full scan), verify names the list
    lists = np.load(tmp_path / manifest["files"]["lists"]["name"])
    head = int(np.flatnonzero(lists[:, COUNT] > 0)[3])
    raw = bytearray(postings.read_bytes())
    raw[int(lists[head, 0]) + 10] ^= 0xFF
    postings.write_bytes(bytes(raw))
    problems = verify(tmp_path)
    assert len(problems) == 1 and "checksum" in problems[0] and f"[{head}" in problems[0]
    # a truncated posting file is refused at load
    postings.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CorruptIndex, match="bytes"):
        SpannIndex.load(tmp_path)
    assert any("bytes" in p for p in verify(tmp_path))
    postings.write_bytes(bytes(raw))
    # a damaged small file fails its checksum
    heads_file = tmp_path / manifest["files"]["heads"]["name"]
    good = heads_file.read_bytes()
    heads_file.write_bytes(good[:-4] + b"\0\0\0\0")
    with pytest.raises(CorruptIndex, match="checksum"):
        SpannIndex.load(tmp_path)
    heads_file.write_bytes(good)
    # no manifest, or a garbled one
    manifest_path = tmp_path / spann_files.MANIFEST
    text = manifest_path.read_bytes()
    manifest_path.write_bytes(text[:20])
    with pytest.raises(CorruptIndex, match="unreadable"):
        SpannIndex.load(tmp_path)
    manifest_path.unlink()
    with pytest.raises(CorruptIndex, match="manifest"):
        SpannIndex.load(tmp_path)
    assert "missing" in verify(tmp_path)[0]


def test_crash_while_writing_leaves_the_previous_index(tmp_path, data, monkeypatch):
    base, ids, queries, _ = data
    index = SpannIndex.build(ids[:3000], base[:3000], path=tmp_path, seq=1)
    _, published = index.search(queries, 10)
    index.add(ids[3000:4000], base[3000:4000])
    index.delete(ids[:50])
    _, live = index.search(queries, 10)

    real_write = PostingWriter.write_list
    written = {"lists": 0}

    def failing_write(self, list_ids, vectors):
        written["lists"] += 1
        if written["lists"] > 40:
            raise OSError("disk full (simulated)")
        real_write(self, list_ids, vectors)

    monkeypatch.setattr(PostingWriter, "write_list", failing_write)
    with pytest.raises(OSError, match="simulated"):
        index.compact(seq=2)
    monkeypatch.undo()
    assert written["lists"] > 40
    # the directory still holds the previous generation, complete and loadable
    assert verify(tmp_path) == []
    previous = SpannIndex.load(tmp_path)
    assert previous.seq == 1 and len(previous) == 3000
    assert (previous.search(queries, 10)[1] == published).all()
    # the live index is untouched and can try again
    assert (index.search(queries, 10)[1] == live).all()
    index.compact(seq=2)
    assert not list(tmp_path.glob("*.tmp"))
    reloaded = SpannIndex.load(tmp_path)
    assert reloaded.seq == 2 and len(reloaded) == 3950
    assert recall(reloaded.search(queries, 10)[1], live) >= 0.97


# ---------------------------------------------------------------------- lamina index verify | compact
def _cli(*args: str):
    from click.testing import CliRunner

    from lamina.cli import main

    return CliRunner().invoke(main, list(args))


def test_cli_verify_reports_a_sound_index_and_a_corrupted_one(tmp_path, data):
    base, ids, *_ = data
    SpannIndex.build(ids[:2000], base[:2000], path=tmp_path).close()
    result = _cli("index", "verify", str(tmp_path))
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[0]
    assert line.startswith("OK ") and "2000 vectors" in line
    manifest = spann_files.read_manifest(tmp_path)
    postings = tmp_path / manifest["files"]["postings"]["name"]
    lists = np.load(tmp_path / manifest["files"]["lists"]["name"])
    head = int(np.flatnonzero(lists[:, COUNT] > 0)[1])
    raw = bytearray(postings.read_bytes())
    raw[int(lists[head, 0]) + 20] ^= 0x55  # one flipped byte in one list
    postings.write_bytes(bytes(raw))
    result = _cli("index", "verify", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.startswith("CORRUPT ") and "1 problem" in result.output
    assert "checksum" in result.output and f"[{head}" in result.output
    # without a manifest, verify says so and compact refuses with a clear error (no traceback)
    (tmp_path / spann_files.MANIFEST).unlink()
    result = _cli("index", "verify", str(tmp_path))
    assert result.exit_code == 1 and "missing" in result.output
    result = _cli("index", "compact", str(tmp_path))
    assert result.exit_code != 0 and "CorruptIndex" in result.output


def test_cli_compact_rewrites_the_posting_file(tmp_path, data):
    base, ids, queries, _ = data
    index = SpannIndex.build(ids[:3000], base[:3000], path=tmp_path)
    index.add(ids[3000:3600], base[3000:3600])  # into the in-memory delta: lost unless compacted
    index.delete(ids[:500])
    index.compact()
    index.add(ids[3600:4000], base[3600:4000])
    index.save(tmp_path / "copy")
    index.close()
    copy = tmp_path / "copy"
    before = spann_files.read_manifest(copy)
    result = _cli("index", "compact", str(copy))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("compacted ") and "3500 vectors" in result.output
    after = spann_files.read_manifest(copy)
    assert after["generation"] == before["generation"] + 1
    assert after["files"]["postings"]["name"] != before["files"]["postings"]["name"]
    assert not (copy / before["files"]["postings"]["name"]).exists()
    assert _cli("index", "verify", str(copy)).exit_code == 0
    live = ids[500:4000]
    with SpannIndex.load(copy) as reopened:
        assert len(reopened) == len(live)
        _, found = reopened.search(queries[:20], 10, params={"max_postings": 64})
        _, truth = brute_force(base[500:4000], live, queries[:20], 10, "l2")
        assert recall(found, truth) >= 0.9
