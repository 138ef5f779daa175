import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.index.multivector import TokenStore
from lamina.retrieval.rerank import (
    MAX_KAPPA,
    RerankStats,
    TokenSource,
    exhaustive_maxsim,
    maxsim,
    maxsim_reference,
    pruning_threshold,
    rerank,
    rerank_reference,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def random_docs(n: int, dim: int = 16, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit(rng.standard_normal((int(rng.integers(1, 25)), dim))) for _ in range(n)]


class ScoreSource:
    """Document i has one 1-d token equal to the MaxSim it should get against the query [[1.0]]."""

    dim = 1

    def __init__(self, maxsims: dict[int, float]) -> None:
        self.store = TokenStore(1)
        ids = np.array(sorted(maxsims), dtype=np.int64)
        self.store.add(ids, [np.array([[maxsims[int(i)]]], np.float32) for i in ids])
        self.calls: list[np.ndarray] = []

    def get_packed(self, ids):
        self.calls.append(np.asarray(ids))
        return self.store.get_packed(ids)


QUERY = np.ones((1, 1), np.float32)


# ---------------------------------------------------------------------- MaxSim
def test_maxsim_matches_the_plain_loops():
    docs = random_docs(40)
    query = random_docs(1, seed=9)[0]
    tokens = np.concatenate(docs)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
    np.testing.assert_allclose(maxsim(query, tokens, offsets), maxsim_reference(query, docs), rtol=1e-5, atol=1e-5)


def test_maxsim_of_empty_documents_is_minus_infinity():
    docs = [np.empty((0, 4), np.float32), unit(np.ones((2, 4))), np.empty((0, 4), np.float32),
            unit(np.eye(4)[:3]), np.empty((0, 4), np.float32)]
    query = unit(np.eye(4)[[0, 3]])
    tokens = np.concatenate(docs)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])])
    got = maxsim(query, tokens, offsets)
    assert np.isneginf(got[[0, 2, 4]]).all()
    np.testing.assert_allclose(got[[1, 3]], maxsim_reference(query, docs)[[1, 3]], rtol=1e-6)
    assert np.isneginf(maxsim(query, np.empty((0, 4), np.float32), np.zeros(3, np.int64))).all()


def test_token_store_is_a_token_source():
    assert isinstance(TokenStore(4), TokenSource)


# ---------------------------------------------------------------------- full rerank
@pytest.fixture(scope="module")
def corpus():
    docs = random_docs(300, seed=1)
    ids = np.arange(1000, 1300, dtype=np.int64)
    store = TokenStore.build(ids, docs)
    queries = random_docs(10, seed=2)
    return ids, docs, store, queries


def test_full_rerank_is_the_maxsim_top_k_of_the_kappa_best(corpus):
    ids, docs, store, queries = corpus
    rng = np.random.default_rng(3)
    f16 = [d.astype(np.float16).astype(np.float32) for d in docs]
    for query in queries:
        first = rng.standard_normal(300)
        got_ids, got_scores, stats = rerank(query, ids, first, store, k=10, kappa=50)
        best50 = np.argsort(-first, kind="stable")[:50]
        truth = maxsim_reference(query, [f16[i] for i in best50])
        order = np.argsort(-truth, kind="stable")[:10]
        np.testing.assert_array_equal(got_ids, ids[best50][order])
        np.testing.assert_allclose(got_scores, truth[order], rtol=1e-5, atol=1e-5)
        assert stats == RerankStats(offered=300, considered=50, pruned=0, scored=50, skipped=0, missing=0)


@pytest.mark.parametrize("alpha,beta", [(None, None), (0.0, None), (0.3, None), (None, 1), (None, 3),
                                        (0.2, 2), (0.9, 10)])
def test_vectorised_rerank_equals_the_reference(corpus, alpha, beta):
    ids, _, store, queries = corpus
    rng = np.random.default_rng(4)
    for query in queries[:6]:
        first = np.abs(rng.standard_normal(300)) + 0.1
        got = rerank(query, ids, first, store, k=7, kappa=80, alpha=alpha, beta=beta)
        want = rerank_reference(query, ids, first, store, k=7, kappa=80, alpha=alpha, beta=beta)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)
        assert got[2] == want[2]


def test_rules_off_and_never_triggered_equal_full_rerank(corpus):
    ids, _, store, queries = corpus
    first = np.linspace(2.0, 1.0, 300)
    for query in queries:
        full = rerank(query, ids, first, store, k=10, kappa=100)
        # alpha close to 1 keeps everything of positive scores; beta beyond kappa never exits
        lax = rerank(query, ids, first, store, k=10, kappa=100, alpha=0.999, beta=MAX_KAPPA)
        np.testing.assert_array_equal(full[0], lax[0])
        # one matrix product or several blocks: BLAS may round a row's sums differently (1 ulp)
        np.testing.assert_allclose(full[1], lax[1], rtol=1e-6)
        assert lax[2].scored == 100 and lax[2].pruned == 0 and lax[2].skipped == 0


# ---------------------------------------------------------------------- the paper's rules on crafted lists
def test_candidate_pruning_threshold():
    scores = np.array([10.0, 9.0, 8.0, 5.0, 4.0, 1.0])
    assert pruning_threshold(scores, 3, 0.5) == 4.0  # (1 - alpha) * s_k for s_k >= 0
    assert pruning_threshold(scores, 3, 0.0) == 8.0
    assert pruning_threshold(scores, 7, 0.5) == -np.inf  # fewer than k: prune nothing
    negative = np.array([-1.0, -2.0, -4.0])
    assert pruning_threshold(negative, 2, 0.5) == -3.0  # still keeps the top-k


def test_candidate_pruning_drops_weak_first_stage_candidates():
    source = ScoreSource({i: float(i) for i in range(10)})
    first = np.array([10.0, 9.0, 8.0, 5.0, 4.0, 3.9, 1.0, 0.5, 0.2, 0.1])
    ids = np.arange(10)
    got, scores, stats = rerank(QUERY, ids, first, source, k=3, kappa=10, alpha=0.5)
    # threshold 0.5 * 8 = 4: candidates 0..4 survive, the best MaxSim among them is id 4
    assert stats.pruned == 5 and stats.scored == 5
    np.testing.assert_array_equal(got, [4, 3, 2])
    np.testing.assert_array_equal(scores, [4.0, 3.0, 2.0])
    got, _, stats = rerank(QUERY, ids, first, source, k=3, kappa=10, alpha=0.0)
    assert stats.pruned == 7 and got.tolist() == [2, 1, 0]  # the first-stage top-3, reordered
    # kappa cuts first, alpha applies to what is left
    _, _, stats = rerank(QUERY, ids, first, source, k=3, kappa=4, alpha=0.5)
    assert stats.considered == 4 and stats.pruned == 0


def test_early_exit_stops_after_beta_consecutive_misses():
    # first-stage order is the id order; MaxSims: 5 8 6 | 1 7 2 3 4 9 0
    maxsims = [5, 8, 6, 1, 7, 2, 3, 4, 9, 0]
    source = ScoreSource({i: float(v) for i, v in enumerate(maxsims)})
    ids = np.arange(10)
    first = np.linspace(1.0, 0.1, 10)
    # after the heap {5, 8, 6}: 1 misses, 7 enters (stalls reset), 2, 3 miss -> exit at beta = 2
    got, scores, stats = rerank(QUERY, ids, first, source, k=3, kappa=10, beta=2)
    np.testing.assert_array_equal(got, [1, 4, 2])
    assert stats.scored == 7 and stats.skipped == 3
    # the scan never fetched a candidate past the exit
    assert max(int(c.max()) for c in source.calls if len(c)) == 6
    # beta = 3: 2, 3, 4 (MaxSim 4) all miss -> exit before id 8 (MaxSim 9), which a full rerank finds
    got, _, stats = rerank(QUERY, ids, first, source, k=3, kappa=10, beta=3)
    assert stats.scored == 8 and 8 not in got
    full, _, _ = rerank(QUERY, ids, first, source, k=3, kappa=10)
    assert full.tolist() == [8, 1, 4]
    # a tie with the k-th score does not enter: it counts as a miss
    tie = ScoreSource({0: 3.0, 1: 2.0, 2: 2.0, 3: 9.0})
    got, _, stats = rerank(QUERY, np.arange(4), np.array([4.0, 3, 2, 1]), tie, k=2, kappa=4, beta=1)
    assert got.tolist() == [0, 1] and stats.scored == 3


def test_candidates_are_ordered_deduplicated_and_cleaned():
    source = ScoreSource({1: 1.0, 2: 2.0, 3: 3.0})
    # unordered input, a repeated id (keeps its best score), faiss's empty slots (-1, -inf)
    ids = np.array([3, -1, 1, 2, 3, 7])
    first = np.array([0.1, 5.0, 0.9, 0.5, 0.95, -np.inf])
    got, scores, stats = rerank(QUERY, ids, first, source, k=2, kappa=2)
    assert stats.offered == 3 and stats.considered == 2
    assert got.tolist() == [3, 1]  # kappa=2 keeps 3 (0.95) and 1 (0.9); 2 (0.5) is cut
    assert scores.dtype == np.float32 and got.dtype == np.int64


def test_candidates_without_tokens_are_dropped():
    source = ScoreSource({0: 1.0, 2: 3.0})  # id 1 was deleted from the token store
    for beta in (None, 1):
        got, _, stats = rerank(QUERY, np.arange(3), np.array([3.0, 2.0, 1.0]), source, k=2, kappa=3, beta=beta)
        assert got.tolist() == [2, 0] and stats.missing == 1
    got, scores, stats = rerank(QUERY, np.array([5, 6]), np.array([1.0, 0.5]), source, k=2, kappa=2)
    assert len(got) == 0 and len(scores) == 0 and stats.missing == 2
    got, _, stats = rerank(QUERY, np.empty(0, np.int64), np.empty(0), source, k=2, kappa=2)
    assert len(got) == 0 and stats.offered == 0


@pytest.mark.parametrize("kwargs,message", [
    ({"k": 0, "kappa": 10}, "k must be a positive integer"),
    ({"k": 3, "kappa": 0}, "kappa must be a positive integer"),
    ({"k": 3, "kappa": -5}, "kappa must be a positive integer"),
    ({"k": 3, "kappa": MAX_KAPPA + 1}, "exceeds the limit"),
    ({"k": 11, "kappa": 10}, "k=11 exceeds kappa=10"),
    ({"k": 3, "kappa": 10, "alpha": 1.0}, "alpha"),
    ({"k": 3, "kappa": 10, "alpha": -0.1}, "alpha"),
    ({"k": 3, "kappa": 10, "alpha": float("nan")}, "alpha"),
    ({"k": 3, "kappa": 10, "beta": 0}, "beta"),
    ({"k": 3, "kappa": 10, "beta": 2.5}, "beta"),
    ({"k": True, "kappa": 10}, "k must be"),
])
def test_bad_parameters_are_rejected(kwargs, message):
    source = ScoreSource({0: 1.0})
    with pytest.raises(InvalidArgument, match=message):
        rerank(QUERY, np.array([0]), np.array([1.0]), source, **kwargs)


def test_bad_inputs_are_rejected():
    source = ScoreSource({0: 1.0})
    with pytest.raises(InvalidArgument, match="shape"):
        rerank(np.ones((2, 3), np.float32), np.array([0]), np.array([1.0]), source, k=1, kappa=1)
    with pytest.raises(InvalidArgument, match="no tokens"):
        rerank(np.empty((0, 1), np.float32), np.array([0]), np.array([1.0]), source, k=1, kappa=1)
    with pytest.raises(InvalidArgument, match="NaN"):
        rerank(np.full((1, 1), np.nan, np.float32), np.array([0]), np.array([1.0]), source, k=1, kappa=1)
    with pytest.raises(InvalidArgument, match="2 candidate ids for 1"):
        rerank(QUERY, np.array([0, 1]), np.array([1.0]), source, k=1, kappa=1)


# ---------------------------------------------------------------------- exhaustive
def test_exhaustive_maxsim_over_a_store(corpus):
    ids, docs, store, queries = corpus
    store = TokenStore.build(ids, docs)
    store.delete(ids[:5])
    scores, found = exhaustive_maxsim(queries[:3], store.iter_blocks(max_tokens=200), 5)
    f16 = [d.astype(np.float16).astype(np.float32) for d in docs]
    for qi, query in enumerate(queries[:3]):
        truth = maxsim_reference(query, f16)
        truth[:5] = -np.inf
        order = np.argsort(-truth, kind="stable")[:5]
        np.testing.assert_array_equal(found[qi], ids[order])
        np.testing.assert_allclose(scores[qi], truth[order], rtol=1e-5, atol=1e-5)
    # a collection smaller than k pads with -1 / -inf
    small = TokenStore.build(np.array([4, 9]), docs[:2])
    scores, found = exhaustive_maxsim(queries[:1], small.iter_blocks(), 4)
    assert found[0, 2:].tolist() == [-1, -1] and np.isneginf(scores[0, 2:]).all()
    # exhaustive MaxSim bounds reranking: rerank over every document is the same answer
    got, _, _ = rerank(queries[0], ids, np.ones(300), store, k=5, kappa=300)
    np.testing.assert_array_equal(got, exhaustive_maxsim(queries[:1], store.iter_blocks(), 5)[1][0])


# ---------------------------------------------------------------------- compressed tokens
@pytest.mark.parametrize("codec", ["pq8", "ivf16pq4", "ivf16x2pq4"])
@pytest.mark.parametrize("alpha,beta", [(None, None), (0.3, 2)])
def test_rerank_over_compressed_tokens_equals_the_reference(corpus, codec, alpha, beta):
    """Blocks decoded apart (early exit) or together score alike, and as the decoded rows do."""
    ids, docs, _, queries = corpus
    store = TokenStore.build(ids, docs, codec=codec)
    assert store.encoded and store.codec.unit_rows
    decoded = store.get(ids)
    rng = np.random.default_rng(5)
    for query in queries[:4]:
        first = np.abs(rng.standard_normal(300)) + 0.1
        got = rerank(query, ids, first, store, k=7, kappa=60, alpha=alpha, beta=beta)
        want = rerank_reference(query, ids, first, store, k=7, kappa=60, alpha=alpha, beta=beta)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)
        rows = np.searchsorted(ids, got[0])
        plain = maxsim_reference(query, [decoded[r] for r in rows])
        np.testing.assert_allclose(got[1], plain, rtol=1e-5, atol=1e-5)
