"""The Seismic-style sparse index: kernels, recall against exact search, updates, persistence, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lamina.index.base import VectorIndex
from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.sparse import SeismicConfig, SparseBatch, SparseIndex, canonical_batch, exact_search
from lamina.index.sparse.build import (
    build_seismic,
    invert,
    n_clusters,
    prune_postings,
    pruning_threshold,
    top_weights,
)
from lamina.index.sparse.index import DELTA_INDEX_AFTER
from lamina.index.sparse.kernels import f16_value, prefetch, radix_argsort, sample_positions, top_k_positions

VOCAB = 30522
# no pruning, every query term's list, no block ever skipped: the index must be exact
EXHAUSTIVE = {"query_cut": 10_000, "heap_factor": float("inf"), "exact_postings": 0}  # the Seismic walk, unpruned
BY_TERMS = {"exact_postings": 10**9}  # every query term at a time, over the exact inverted index


def synthetic_splade(n_docs: int, n_queries: int, *, vocab: int = VOCAB, doc_nnz: int = 100, query_nnz: int = 30,
                     n_topics: int = 200, seed: int = 0) -> tuple[SparseBatch, SparseBatch]:
    """SPLADE-like vectors: Zipfian term popularity, topical co-occurrence, heavy-tailed
    weights that grow with rarity; each query is built from one document's strongest terms
    plus popular ones, so it has a few clearly relevant documents as real queries do."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (np.arange(vocab) + 10.0)
    popularity = popularity[np.argsort(rng.permutation(vocab))]  # scatter ranks over term ids
    popularity /= popularity.sum()
    cdf = np.cumsum(popularity)
    rarity = np.log(1.0 / popularity)
    rarity = (rarity - rarity.min()) / (rarity.max() - rarity.min())
    topics = rng.choice(vocab, size=(n_topics, 300), p=popularity)

    m = int(doc_nnz * 1.3)
    general = np.minimum(np.searchsorted(cdf, rng.random((n_docs, m // 2))), vocab - 1)
    topical = topics[rng.integers(0, n_topics, n_docs)[:, None], rng.integers(0, 300, (n_docs, m - m // 2))]
    terms = np.sort(np.concatenate([general, topical], axis=1), axis=1)
    first = np.ones_like(terms, dtype=bool)
    first[:, 1:] = terms[:, 1:] != terms[:, :-1]
    indices = terms[first].astype(np.int32)
    values = (rng.lognormal(-1.0, 1.0, len(indices)) * (0.3 + 1.5 * rarity[indices])).astype(np.float32)
    indptr = np.zeros(n_docs + 1, np.int64)
    np.cumsum(first.sum(1), out=indptr[1:])
    docs = SparseBatch(indptr, indices, values)

    rows = []
    for source in rng.integers(0, n_docs, n_queries):
        t, v = docs.row(int(source))
        strongest = np.argsort(-v)[: query_nnz // 2]
        extra = rng.choice(vocab, size=query_nnz - len(strongest), p=popularity)
        rows.append((np.concatenate([t[strongest], extra]),
                     np.concatenate([v[strongest] * rng.uniform(0.5, 1.5, len(strongest)),
                                     rng.gamma(2.0, 0.2, len(extra)) * (0.2 + rarity[extra])])))
    return docs, canonical_batch(SparseBatch.from_rows(rows), vocab, "query")


def small_random(n: int, vocab: int = 500, nnz: int = 12, seed: int = 1) -> SparseBatch:
    rng = np.random.default_rng(seed)
    return SparseBatch.from_rows(
        [(np.sort(rng.choice(vocab, nnz, replace=False)), rng.lognormal(-1, 1, nnz)) for _ in range(n)])


def f16(batch: SparseBatch) -> SparseBatch:
    """The batch as the forward index stores it (float16 weights)."""
    return SparseBatch(batch.indptr, batch.indices, batch.values.astype(np.float16).astype(np.float32))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    per_query = [len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, int((t >= 0).sum())) for f, t in zip(found, truth)]
    return float(np.mean(per_query))


def assert_same_results(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_array_equal(got[1], want[1])


@pytest.fixture(scope="module")
def corpus() -> tuple[SparseBatch, SparseBatch]:
    return synthetic_splade(20_000, 100)


@pytest.fixture(scope="module")
def built(corpus) -> SparseIndex:
    docs, _ = corpus
    index = SparseIndex(VOCAB, SeismicConfig(n_postings=150, exact_postings=0))  # the Seismic walk
    index.add(np.arange(len(docs), dtype=np.int64) * 3, docs)  # ids are not row numbers
    index.compact()
    return index


# ---------------------------------------------------------------------------- SparseBatch
def test_canonical_batch_sorts_sums_and_drops_zeros():
    batch = SparseBatch.from_rows([{5: 1.0, 2: 0.5}, ([3, 3, 1, 7], [1.0, 2.0, 0.0, 0.25]), {}])
    canon = canonical_batch(batch, 10)
    assert canon.to_dicts() == [{2: 0.5, 5: 1.0}, {3: 3.0, 7: 0.25}, {}]
    assert canon.indptr.dtype == np.int64 and canon.indices.dtype == np.int32 and canon.values.dtype == np.float32
    assert canonical_batch(canon, 10) is canon  # already canonical: returned as is


def test_batch_take_concat_and_scipy_round_trip():
    batch = small_random(20, vocab=50, nnz=5)
    picked = batch.take(np.array([3, 0, 3]))
    assert picked.to_dicts() == [batch.to_dicts()[3], batch.to_dicts()[0], batch.to_dicts()[3]]
    both = SparseBatch.concat([batch, picked])
    assert len(both) == 23 and both.to_dicts()[20:] == picked.to_dicts()
    again = SparseBatch.from_scipy(batch.to_scipy(50))
    assert again.to_dicts() == batch.to_dicts()


# ---------------------------------------------------------------------------- build kernels
def test_prune_postings_keeps_largest_weights_per_term():
    docs = small_random(300, vocab=40, nnz=10)
    term_ptr, rows, weights = invert(docs.indptr, docs.indices, docs.values, 40)
    assert np.all(np.diff(term_ptr) == np.bincount(docs.indices, minlength=40))
    new_ptr, new_rows, new_weights = prune_postings(term_ptr, rows, weights, 25, np.float32(0.3))
    for t in range(40):
        seg_rows, seg_w = rows[term_ptr[t]:term_ptr[t + 1]], weights[term_ptr[t]:term_ptr[t + 1]]
        eligible = np.flatnonzero(seg_w >= np.float32(0.3))
        best = eligible[np.lexsort((seg_rows[eligible], -seg_w[eligible]))][:25]
        kept = new_rows[new_ptr[t]:new_ptr[t + 1]]
        np.testing.assert_array_equal(kept, np.sort(seg_rows[best]))  # kept in row order
        np.testing.assert_array_equal(new_weights[new_ptr[t]:new_ptr[t + 1]], seg_w[np.sort(best)])


def test_global_threshold_keeps_the_budget():
    weights = np.random.default_rng(3).random(1000).astype(np.float32)
    threshold = pruning_threshold(weights, 100)
    assert np.count_nonzero(weights >= threshold) == 100
    assert pruning_threshold(weights, 5000) == 0.0


def test_top_weights_and_top_k_positions():
    docs = small_random(50, vocab=100, nnz=20)
    cut_ptr, cut_idx, cut_val = top_weights(docs.indptr, docs.indices, docs.values, 6)
    for r in range(len(docs)):
        t, v = docs.row(r)
        best = np.sort(np.argsort(-v, kind="stable")[:6])
        np.testing.assert_array_equal(cut_idx[cut_ptr[r]:cut_ptr[r + 1]], t[best])
    values = np.array([0.5, 2.0, 2.0, 0.1, 3.0])
    np.testing.assert_array_equal(top_k_positions(values, 3), [4, 1, 2])  # ties: lower position first
    keys = np.random.default_rng(5).integers(0, 40_000, 5000)
    np.testing.assert_array_equal(radix_argsort(keys, 16), np.argsort(keys, kind="stable"))
    sample = sample_positions(100, 30, 7)
    assert len(np.unique(sample)) == 30 and sample.min() >= 0 and sample.max() < 100
    np.testing.assert_array_equal(sample, sample_positions(100, 30, 7))


def test_parallel_build_is_identical(corpus):
    docs, _ = corpus
    subset = docs.take(np.arange(3000))
    params = SeismicConfig(n_postings=60).build_params()
    one = build_seismic(np.arange(3000), subset.indptr, subset.indices, subset.values, VOCAB, params, threads=1)
    many = build_seismic(np.arange(3000), subset.indptr, subset.indices, subset.values, VOCAB, params, threads=3)
    for name, array in one.arrays().items():
        np.testing.assert_array_equal(array, getattr(many, name), err_msg=name)
        assert array.dtype == getattr(many, name).dtype


def test_float16_decoding_is_exact():
    import numba

    @numba.njit
    def decode_all(bits):
        out = np.empty(bits.shape[0])
        for i in range(bits.shape[0]):
            prefetch(bits, i + 8)  # a hint only: past the end is harmless
            out[i] = f16_value(bits[i])
        return out

    bits = np.arange(0x7C00, dtype=np.uint16)  # every finite non-negative float16
    np.testing.assert_array_equal(decode_all(bits), bits.view(np.float16).astype(np.float64))


def test_blocks_partition_the_pruned_lists(built):
    main = built._main
    docs_ptr, docs_idx = main.fwd_indptr, main.fwd_indices
    term_ptr, rows, weights = invert(docs_ptr, docs_idx, main.fwd_values.astype(np.float32), VOCAB)
    lengths = np.diff(term_ptr)
    assert lengths.max() > 225 and np.diff(main.term_blocks).max() > 1  # pruning and blocking both happened
    for t in np.random.default_rng(0).choice(np.flatnonzero(lengths), 300, replace=False):
        blocks = range(main.term_blocks[t], main.term_blocks[t + 1])
        members = [main.postings[main.block_ptr[b]:main.block_ptr[b + 1]] for b in blocks]
        assert all(len(m) for m in members)  # no empty block
        assert len(members) <= n_clusters(sum(map(len, members)), built.config.centroid_fraction)
        listed = np.concatenate(members)
        assert len(np.unique(listed)) == len(listed) <= 225  # cap: max_fraction * n_postings
        assert np.all(np.isin(listed, rows[term_ptr[t]:term_ptr[t + 1]]))  # members hold the term


def block_summaries(main, term: int) -> dict[int, dict[int, int]]:
    """{block: {term: code}} of one list, read back from the coordinate-major layout."""
    out: dict[int, dict[int, int]] = {b: {} for b in range(main.term_blocks[term], main.term_blocks[term + 1])}
    offsets = np.concatenate([[0], np.cumsum(main.summary_counts, dtype=np.int64)])
    np.testing.assert_array_equal(main.summary_checkpoints, offsets[::32])
    for c in range(main.term_summaries[term], main.term_summaries[term + 1]):
        for e in range(offsets[c], offsets[c + 1]):
            block = int(main.term_blocks[term] + main.summary_blocks[e])
            out[block][int(main.summary_terms[c])] = int(main.summary_codes[e])
    return out


def test_summaries_bound_their_members(built):
    main = built._main
    values = main.fwd_values.astype(np.float32)
    energy = built.config.summary_energy
    lists = np.flatnonzero(np.diff(main.term_blocks))
    for t in np.random.default_rng(1).choice(lists, 25, replace=False):
        terms_of_list = main.summary_terms[main.term_summaries[t]:main.term_summaries[t + 1]].astype(np.int64)
        assert np.all(np.diff(terms_of_list) > 0)  # coordinates increase within a list
        for b, summary in block_summaries(main, t).items():
            members = main.postings[main.block_ptr[b]:main.block_ptr[b + 1]]
            maximum: dict[int, float] = {}
            for r in members:
                for u, v in zip(main.fwd_indices[main.fwd_indptr[r]:main.fwd_indptr[r + 1]],
                                values[main.fwd_indptr[r]:main.fwd_indptr[r + 1]]):
                    maximum[int(u)] = max(maximum.get(int(u), 0.0), float(v))
            scale = float(main.summary_scales[b])
            assert max(maximum, key=maximum.get) in summary
            for u, code in summary.items():
                # an upper bound of every member, within one quantisation step (and float rounding)
                assert maximum[u] <= code * scale * (1 + 1e-6) + 1e-7
                assert code * scale <= maximum[u] + scale * (1 + 1e-6)
            all_codes = np.ceil(np.array(list(maximum.values())) / scale - 1e-6)
            assert sum(summary.values()) >= energy * all_codes.sum() - 1e-3  # alpha-mass kept


# ---------------------------------------------------------------------------- search quality
def test_recall_against_exact_search(corpus, built):
    docs, queries = corpus
    truth_scores, truth = exact_search(f16(docs), queries, 10, ids=np.arange(len(docs)) * 3, vocab_size=VOCAB)
    scores, found = built.search(queries, 10)
    assert recall(found, truth) >= 0.95
    # every returned score is the exact score of that document
    exact_of = {(q, i): s for q in range(len(queries)) for s, i in zip(truth_scores[q], truth[q])}
    for q in range(len(queries)):
        for s, i in zip(scores[q], found[q]):
            if (q, i) in exact_of:
                assert s == pytest.approx(exact_of[(q, i)], rel=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 0)
    # a wider search cannot do worse
    _, wider = built.search(queries, 10, params={"query_cut": 30, "heap_factor": 2.0})
    assert recall(wider, truth) >= recall(found, truth)


def test_exhaustive_parameters_make_the_index_exact():
    docs = small_random(1500, vocab=400, nnz=15, seed=5)
    queries = canonical_batch(small_random(40, vocab=400, nnz=8, seed=6), 400, "query")
    index = SparseIndex(400, SeismicConfig(n_postings=100_000))
    ids = np.random.default_rng(2).permutation(10**6)[:1500].astype(np.int64)
    index.add(ids, docs)
    index.compact()
    assert index.n_delta == 0
    assert_same_results(index.search(queries, 15, params=EXHAUSTIVE),
                        exact_search(f16(docs), queries, 15, ids=ids, vocab_size=400))


def test_short_queries_are_answered_exactly_term_at_a_time():
    docs = small_random(3000, vocab=400, nnz=15, seed=5)
    queries = canonical_batch(small_random(40, vocab=400, nnz=8, seed=6), 400, "query")
    ids = np.random.default_rng(2).permutation(10**6)[:3000].astype(np.int64)
    index = SparseIndex(400, SeismicConfig(n_postings=40))  # lists pruned hard: the walk misses documents
    index.add(ids, docs)
    index.compact()
    want = exact_search(f16(docs), queries, 15, ids=ids, vocab_size=400)
    walked = index.search(queries, 15, params={"exact_postings": 0, "query_cut": 2})
    assert recall(walked[1], want[1]) < 0.9
    assert_same_results(index.search(queries, 15, params=BY_TERMS), want)
    # a budget between the queries' costs (their lists' entries plus one per row) splits the
    # batch: the cheap ones are exact
    lengths = np.bincount(docs.indices, minlength=400)
    cost = len(docs) + np.array([lengths[queries.indices[a:b]].sum()
                                 for a, b in zip(queries.indptr[:-1], queries.indptr[1:])])
    budget = int(np.median(cost))
    mixed = index.search(queries, 15, params={"exact_postings": budget, "query_cut": 2})
    short = cost <= budget
    assert 0 < short.sum() < len(queries)
    assert_same_results((mixed[0][short], mixed[1][short]), (want[0][short], want[1][short]))
    assert_same_results((mixed[0][~short], mixed[1][~short]), (walked[0][~short], walked[1][~short]))
    # a filter, and a query term of weight zero (shares nothing)
    allowed = np.sort(ids[::3])
    kept = np.isin(ids, allowed)
    want = exact_search(f16(docs.take(np.flatnonzero(kept))), queries, 15, ids=ids[kept], vocab_size=400)
    assert_same_results(index.search(queries, 15, allowed=allowed, params=BY_TERMS), want)
    zero = SparseBatch.from_rows([{int(docs.indices[0]): 0.0, 399: 1.0}])
    only = exact_search(f16(docs), SparseBatch.from_rows([{399: 1.0}]), 15, ids=ids, vocab_size=400)
    assert_same_results(index.search(zero, 15, params=BY_TERMS), only)


def test_rows_a_query_does_not_reach_are_never_results():
    docs = SparseBatch.from_rows([{1: 1.0}] * 8 + [{2: 1.0}, {2: 0.5}])
    index = SparseIndex(20)
    index.add(np.arange(10), docs)
    for _ in range(DELTA_INDEX_AFTER + 1):  # the delta by rows, then term at a time
        np.testing.assert_array_equal(index.search(SparseBatch.from_rows([{2: 1.0}]), 5)[1], [[8, 9, -1, -1, -1]])
    index.compact()  # the indexed rows, term at a time: scores start at -0.0, so unreached rows stay out
    scores, ids = index.search(SparseBatch.from_rows([{2: 1.0}]), 5)
    np.testing.assert_array_equal(ids, [[8, 9, -1, -1, -1]])
    np.testing.assert_array_equal(scores, [[1.0, 0.5, -np.inf, -np.inf, -np.inf]])


def test_the_exact_inverted_index_is_counted_and_can_be_turned_off():
    docs = small_random(500, vocab=200, nnz=8)
    on, off = SparseIndex(200), SparseIndex(200, SeismicConfig(exact_postings=0))
    too_many_rows = SparseIndex(200, SeismicConfig(exact_postings=500))  # every query costs >= 500
    for index in (on, off, too_many_rows):
        index.add(np.arange(500), docs)
        index.compact()
    assert on.memory_bytes() - off.memory_bytes() == 6 * len(docs.indices) + 8 * 201
    assert too_many_rows.memory_bytes() == off.memory_bytes()
    query = SparseBatch.from_rows([{int(docs.indices[0]): 1.0}])
    assert_same_results(on.search(query, 5), off.search(query, 5, params=EXHAUSTIVE))
    with pytest.raises(InvalidArgument, match="exact_postings"):
        on.search(query, 5, params={"exact_postings": -1})
    with pytest.raises(InvalidArgument, match="exact_postings"):
        SeismicConfig(exact_postings=1.5)


def test_the_delta_gets_an_inverted_index_once_searches_pay_for_it():
    docs = small_random(1200, vocab=300, nnz=12, seed=3)
    queries = canonical_batch(small_random(20, vocab=300, nnz=6, seed=4), 300, "query")
    ids = np.arange(1200, dtype=np.int64) * 7
    index = SparseIndex(300)  # 1,200 rows stay in the delta (delta_limit 10,000)
    index.add(ids, docs)
    allowed = ids[::4]
    want = exact_search(f16(docs), queries, 10, ids=ids, vocab_size=300)
    kept = exact_search(f16(docs.take(np.arange(0, 1200, 4))), queries, 10, ids=allowed, vocab_size=300)
    scanned = index.memory_bytes()
    for search in range(DELTA_INDEX_AFTER + 4):  # by forward rows, then term at a time: the same answers
        assert (index._delta_terms is not None) == (search >= DELTA_INDEX_AFTER)
        if search % 2:
            assert_same_results(index.search(queries, 10, allowed=allowed), kept)
        else:
            assert_same_results(index.search(queries, 10), want)
    assert index.memory_bytes() > scanned
    index.add(np.array([5]), docs.take(np.array([0])))  # a write drops it until searches pay again
    assert index._delta_terms is None and index.n_delta == 1201


def test_ties_are_ordered_by_id():
    row = {3: 1.0, 9: 2.0}
    docs = SparseBatch.from_rows([row] * 6 + [{3: 0.1}])
    index = SparseIndex(20)
    index.add(np.array([50, 10, 40, 20, 30, 60, 5]), docs)
    query = SparseBatch.from_rows([{9: 1.0, 3: 1.0}])
    for _ in range(2):  # from the delta, then from the compacted index
        scores, ids = index.search(query, 8)
        np.testing.assert_array_equal(ids[0], [10, 20, 30, 40, 50, 60, 5, -1])
        assert scores[0, 0] == scores[0, 5] == 3.0 and scores[0, 7] == -np.inf
        index.compact()


def test_empty_index_returns_padding():
    assert isinstance(SparseIndex(10), VectorIndex)  # the first-stage role, over sparse inputs
    scores, ids = SparseIndex(10).search(SparseBatch.from_rows([{1: 1.0}, {2: 0.5}]), 3)
    assert ids.shape == (2, 3) and np.all(ids == -1) and np.all(scores == -np.inf)
    assert scores.dtype == np.float32 and ids.dtype == np.int64


# ---------------------------------------------------------------------------- updates
@pytest.mark.parametrize("params", [EXHAUSTIVE, BY_TERMS], ids=["walk", "by-terms"])
def test_updates_and_deletes_match_exact_search(params):
    vocab = 300
    docs = small_random(2600, vocab=vocab, nnz=12, seed=8)
    queries = canonical_batch(small_random(30, vocab=vocab, nnz=6, seed=9), vocab, "query")
    index = SparseIndex(vocab, SeismicConfig(n_postings=100_000, delta_limit=10_000))
    live: dict[int, int] = {}  # id -> row of `docs` holding its current vector

    def check() -> None:
        ids = np.array(sorted(live), dtype=np.int64)
        want = exact_search(f16(docs.take(np.array([live[i] for i in ids], dtype=np.int64))), queries, 10,
                            ids=ids, vocab_size=vocab)
        assert_same_results(index.search(queries, 10, params=params), want)
        assert len(index) == len(live)

    index.add(np.arange(2000), docs.take(np.arange(2000)))
    live.update({i: i for i in range(2000)})
    index.compact()
    index.add(np.arange(2000, 2300), docs.take(np.arange(2000, 2300)))  # into the delta
    live.update({i: i for i in range(2000, 2300)})
    assert index.n_delta == 300
    check()
    gone = np.r_[np.arange(0, 400, 3), np.arange(2100, 2200), [10**9]]  # indexed, delta, unknown
    index.delete(gone)
    for i in gone:
        live.pop(int(i), None)
    check()
    index.add(np.array([1, 2050, 5000]), docs.take(np.array([2500, 2501, 2502])))  # replace two, add one
    live.update({1: 2500, 2050: 2501, 5000: 2502})
    check()
    index.compact()
    assert index.n_delta == 0 and index.n_indexed == len(live)
    check()


def test_delta_is_compacted_automatically():
    docs = small_random(500, vocab=200, nnz=8)
    index = SparseIndex(200, SeismicConfig(delta_limit=100, delta_fraction=0.5))
    index.add(np.arange(50), docs.take(np.arange(50)))
    assert index.n_delta == 50 and index.n_indexed == 0
    index.add(np.arange(50, 200), docs.take(np.arange(50, 200)))
    assert index.n_delta == 0 and index.n_indexed == 200
    index.add(np.arange(200, 290), docs.take(np.arange(200, 290)))
    assert index.n_delta == 90  # below max(100, 0.5 * 200)
    index.delete(np.arange(0, 100))  # more than a quarter tombstoned: rebuilt
    assert index.n_delta == 0 and index.n_indexed == 190 and len(index) == 190


def test_allowed_restricts_results(built, corpus):
    docs, queries = corpus
    all_ids = np.arange(len(docs)) * 3
    small = np.sort(np.random.default_rng(4).choice(all_ids, 500, replace=False))
    # a selective filter is answered exactly over the allowed rows
    want = exact_search(f16(docs.take(small // 3)), queries, 10, ids=small, vocab_size=VOCAB)
    assert_same_results(built.search(queries, 10, allowed=small), want)
    # a broad filter goes through the blocked index and only returns allowed ids
    broad = all_ids[all_ids % 2 == 0]
    _, found = built.search(queries, 10, allowed=broad)
    assert np.all(np.isin(found[found >= 0], broad))
    _, found = built.search(queries, 10, allowed=np.array([], dtype=np.int64))
    assert np.all(found == -1)


# ---------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("mmap", [False, True])
def test_save_and_load_round_trip(tmp_path, mmap):
    docs = small_random(800, vocab=300, nnz=10, seed=11)
    queries = canonical_batch(small_random(20, vocab=300, nnz=5, seed=12), 300, "query")
    index = SparseIndex(300, SeismicConfig(n_postings=50, query_cut=3))
    index.add(np.arange(700), docs.take(np.arange(700)))
    index.compact()
    index.add(np.arange(700, 800), docs.take(np.arange(700, 800)))
    index.delete(np.arange(0, 700, 10))
    index.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SparseIndex.FILES)
    loaded = SparseIndex.load(tmp_path, 300, mmap=mmap)
    assert len(loaded) == len(index) and loaded.config == index.config
    assert loaded.memory_bytes() == index.memory_bytes()
    for params in ({}, EXHAUSTIVE):
        assert_same_results(loaded.search(queries, 10, params=params), index.search(queries, 10, params=params))
    loaded.add(np.array([5000]), docs.take(np.array([0])))  # a loaded (even mapped) index stays writable
    loaded.delete(np.array([1, 2]))
    loaded.compact()
    assert len(loaded) == len(index) + 1 - 2


def test_load_rejects_bad_snapshots(tmp_path):
    index = SparseIndex(100)
    index.add(np.arange(50), small_random(50, vocab=100, nnz=5))
    index.compact()
    index.save(tmp_path)
    with pytest.raises(CorruptIndex, match="vocabulary size 100"):
        SparseIndex.load(tmp_path, 200)
    np.save(tmp_path / "postings.npy", np.load(tmp_path / "postings.npy")[:-1])
    with pytest.raises(CorruptIndex, match="inconsistent"):
        SparseIndex.load(tmp_path)
    (tmp_path / "fwd_values.npy").write_bytes(b"garbage")
    with pytest.raises(CorruptIndex, match="unreadable"):
        SparseIndex.load(tmp_path)
    meta = json.loads((tmp_path / "sparse.json").read_text())
    (tmp_path / "sparse.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(CorruptIndex):
        SparseIndex.load(tmp_path)


# ---------------------------------------------------------------------------- bad input
@pytest.fixture
def tiny() -> SparseIndex:
    index = SparseIndex(100)
    index.add(np.arange(20), small_random(20, vocab=100, nnz=5))
    return index


@pytest.mark.parametrize("row, message", [
    ({1: -0.5}, "negative weight -0.5 for term 1"),
    ({1: float("nan")}, "NaN or infinite"),
    ({1: float("inf")}, "NaN or infinite"),
    ({100: 1.0}, r"term id 100 outside the vocabulary \[0, 100\)"),
    ({-1: 1.0}, "term id -1 outside"),
])
def test_bad_weights_and_terms_are_invalid(tiny, row, message):
    bad = SparseBatch.from_rows([{2: 1.0}, row])
    with pytest.raises(InvalidArgument, match=f"query 1 has .*{message}"):
        tiny.search(bad, 5)
    with pytest.raises(InvalidArgument, match=f"document 1 has .*{message}"):
        tiny.add(np.array([100, 101]), bad)
    assert len(tiny) == 20


@pytest.mark.parametrize("query", [SparseBatch.from_rows([{}]), SparseBatch.from_rows([{4: 0.0}]),
                                   SparseBatch.from_rows([{4: 1.0}, {}])])
def test_empty_query_has_no_terms(tiny, query):
    with pytest.raises(InvalidArgument, match=r"query \d has no terms"):
        tiny.search(query, 5)


def test_bad_calls_are_invalid(tiny):
    query = SparseBatch.from_rows([{1: 1.0}])
    for k in (0, -1, 2.5, True):
        with pytest.raises(InvalidArgument, match="k must be a positive integer"):
            tiny.search(query, k)
    with pytest.raises(InvalidArgument, match="unknown search parameter.*nprobe"):
        tiny.search(query, 5, params={"nprobe": 3})
    with pytest.raises(InvalidArgument, match="heap_factor"):
        tiny.search(query, 5, params={"heap_factor": 0})
    with pytest.raises(InvalidArgument, match="query_cut"):
        tiny.search(query, 5, params={"query_cut": 1.5})
    scores, ids = tiny.search(SparseBatch.empty(), 5)  # no queries is not an error: no rows
    assert scores.shape == ids.shape == (0, 5)
    with pytest.raises(InvalidArgument, match="duplicate ids"):
        tiny.add(np.array([7, 7]), SparseBatch.from_rows([{1: 1.0}, {2: 1.0}]))
    with pytest.raises(InvalidArgument, match="2 ids for 1"):
        tiny.add(np.array([7, 8]), SparseBatch.from_rows([{1: 1.0}]))
    with pytest.raises(InvalidArgument, match="float16 range"):
        tiny.add(np.array([7]), SparseBatch.from_rows([{1: 1e6}]))
    with pytest.raises(InvalidArgument, match="must be a SparseBatch"):
        tiny.add(np.array([7]), np.ones((1, 100)))
    with pytest.raises(InvalidArgument, match="indptr"):
        SparseBatch(np.array([0, 3]), np.array([1, 2]), np.array([1.0, 1.0]))
    for bad in ({"centroid_fraction": 0}, {"pruning": "none"}, {"heap_factor": float("nan")}, {"seed": -1}):
        with pytest.raises(InvalidArgument):
            SeismicConfig(**bad)
    with pytest.raises(InvalidArgument, match="unknown sparse index option"):
        SeismicConfig.from_dict({"nlist": 3})
    assert SeismicConfig.from_dict(SeismicConfig(query_cut=4).to_dict()) == SeismicConfig(query_cut=4)


@pytest.mark.parametrize("rows, status", [
    ([{1: 1.0, 5: 2.0}, {0: 0.5}], "canonical"),
    ([{1: 1.0}, {}], "empty rows"),
    ([(np.array([5, 1]), np.array([1.0, 1.0]))], "not canonical"),  # unsorted
    ([(np.array([1, 1]), np.array([1.0, 1.0]))], "not canonical"),  # duplicate term
    ([{1: 0.0}], "not canonical"),  # a stored zero
    ([{1: float("nan")}], "not canonical"),
    ([{1: float("inf")}], "not canonical"),
    ([{1: -1.0}], "not canonical"),
    ([{100: 1.0}], "not canonical"),  # outside a vocabulary of 100
    ([{-1: 1.0}], "not canonical"),
])
def test_canonical_fast_path_agrees_with_the_numpy_checks(rows, status):
    """The one-pass numba check decides only when nothing needs fixing; the rest takes the
    numpy path, which canonicalises or raises with a message."""
    from lamina.index.sparse.batch import CANONICAL, CANONICAL_WITH_EMPTY_ROWS, NOT_CANONICAL, canonical_status

    batch = SparseBatch.from_rows(rows)
    got = canonical_status(batch.indptr, batch.indices, batch.values, 100)
    assert got == {"canonical": CANONICAL, "empty rows": CANONICAL_WITH_EMPTY_ROWS,
                   "not canonical": NOT_CANONICAL}[status]
    if status == "not canonical" and all(np.isfinite(v) and v >= 0 and 0 <= t < 100
                                         for row in rows for t, v in zip(*_terms_weights(row))):
        fixed = canonical_batch(batch, 100)  # valid but not canonical: repaired
        assert canonical_status(fixed.indptr, fixed.indices, fixed.values, 100) != NOT_CANONICAL
    elif status == "not canonical":
        with pytest.raises(InvalidArgument):
            canonical_batch(batch, 100)
    else:
        assert canonical_batch(batch, 100) is batch  # nothing to do: the same object back


def _terms_weights(row):
    return (list(row.keys()), list(row.values())) if isinstance(row, dict) else row


def test_search_checks_every_query_of_a_batch(tiny):
    good = {2: 1.0, 7: 0.5}
    for bad, message in (({3: float("nan")}, "query 2 has a NaN"), ({}, "query 2 has no terms"),
                         ({3: -2.0}, "query 2 has negative weight -2"), ({250: 1.0}, "query 2 has term id 250")):
        with pytest.raises(InvalidArgument, match=message):
            tiny.search(SparseBatch.from_rows([good, good, bad, good]), 3)
    # the empty query names what is missing
    with pytest.raises(InvalidArgument, match="no term of the vocabulary has a positive weight"):
        tiny.search(SparseBatch.from_rows([{5: 0.0}]), 3)
    # a valid unsorted query with a repeated term equals its canonical form
    messy = SparseBatch.from_rows([(np.array([7, 2, 7]), np.array([0.25, 1.0, 0.25]))])
    assert_same_results(tiny.search(messy, 5), tiny.search(SparseBatch.from_rows([good]), 5))


def test_search_parameters_are_checked_on_every_call(tiny):
    """Validated parameter sets are remembered; that must never let a bad one through."""
    query = SparseBatch.from_rows([{1: 1.0, 3: 0.5}])
    want = tiny.search(query, 5, params={"query_cut": 2, "heap_factor": 1.0})
    for _ in range(2):
        assert_same_results(tiny.search(query, 5, params={"query_cut": 2, "heap_factor": 1.0}), want)
        with pytest.raises(InvalidArgument, match="heap_factor"):
            tiny.search(query, 5, params={"query_cut": 2, "heap_factor": True})  # == 1.0, but a bool
        with pytest.raises(InvalidArgument, match="query_cut"):
            tiny.search(query, 5, params={"query_cut": 2.0, "heap_factor": 1.0})  # == 2, but a float
        with pytest.raises(InvalidArgument, match="unknown search parameter"):
            tiny.search(query, 5, params={"query_cut": 2, "heap_factor": 1.0, "nprobe": 1})
        with pytest.raises(InvalidArgument, match="query_cut"):
            tiny.search(query, 5, params={"query_cut": [2]})  # unhashable
