"""Facet kernels against a brute-force count over the documents themselves."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lamina.index.errors import InvalidArgument
from lamina.index.facets import (
    FieldPairs,
    bin_edges,
    check_bins,
    check_facet,
    facet,
    histogram,
    restrict,
    selected,
    sorted_histogram,
    top_values,
)
from lamina.index.filters import field_values, matches, parse_timestamp, range_value, value_key
from lamina.index.payload import PayloadIndex

from tests.index.test_payload import KEYWORD, NUMERIC, answerable, build, corpora, filters


# --------------------------------------------------------------------------- brute force
def live_ids(docs, flt=None, allowed=None):
    return [i for i in sorted(docs) if (allowed is None or i in allowed) and (flt is None or matches(flt, docs[i]))]


def brute_keyword(docs, ids, key):
    """{value key: documents} over `ids`, a document once per distinct value."""
    counts = Counter()
    for i in ids:
        counts.update({value_key(v) for v in field_values(docs[i], key)})
    return counts


def numeric_values(doc, key):
    out = []
    for v in field_values(doc, key):
        x = parse_timestamp(v) if isinstance(v, str) else range_value(v)
        if x is not None:
            out.append(x)
    return out


def brute_histogram(docs, ids, key, edges):
    """Documents per bin: v in [e_i, e_i+1), the last bin closed, a document once per bin."""
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    for i in ids:
        bins = set()
        for v in numeric_values(docs[i], key):
            for b in range(len(edges) - 1):
                last = b == len(edges) - 2
                if edges[b] <= v < edges[b + 1] or (last and v == edges[b + 1]):
                    bins.add(b)
        for b in bins:
            counts[b] += 1
    return counts


def run(index, key, allowed=None, **options):
    pairs = index.facet_pairs(key)
    documents = len(allowed) if allowed is not None else len(index)
    allowed = None if allowed is None else np.asarray(sorted(allowed), dtype=np.int64)
    return facet(pairs, key, allowed, index.tombstones(), documents, **options)


# --------------------------------------------------------------------------- properties
@settings(max_examples=80, deadline=None)
@given(corpora, st.sampled_from(KEYWORD), st.integers(1, 6), st.data())
def test_keyword_facet_equals_brute_force(docs, key, limit, data):
    index = build(docs)
    flt = data.draw(st.none() | filters(answerable()))
    dead = data.draw(st.lists(st.sampled_from(sorted(docs)), unique=True))
    index.delete(dead)  # tombstones: never counted
    for i in dead:
        docs.pop(i)
    allowed = None if flt is None else set(index.evaluate(flt).tolist())
    ids = live_ids(docs, flt)
    result = run(index, key, allowed, limit=limit)
    expected = brute_keyword(docs, ids, key)
    ranked = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    assert [(value_key(c.value), c.count) for c in result.counts] == ranked
    assert result.distinct == len(expected)
    assert result.documents == len(ids)


@settings(max_examples=80, deadline=None)
@given(corpora, st.sampled_from(NUMERIC), st.data())
def test_numeric_facet_equals_brute_force(docs, key, data):
    index = build(docs, one_by_one=data.draw(st.booleans()))
    restricted = data.draw(st.booleans())
    allowed = set(data.draw(st.lists(st.sampled_from(sorted(docs) + [10**6]), unique=True))) if restricted else None
    bins = data.draw(st.none() | st.integers(1, 5) | st.just([-2.0, 0.0, 0.5, 3.0]) | st.just([1704067200.0, 1.71e9]))
    result = run(index, key, allowed, bins=check_bins(bins))
    ids = live_ids(docs, allowed=allowed)
    values = [v for i in ids for v in numeric_values(docs[i], key)]
    stats = result.stats
    assert stats.count == sum(1 for i in ids if numeric_values(docs[i], key))
    assert (stats.min, stats.max) == ((min(values), max(values)) if values else (None, None))
    if bins is None:
        assert stats.edges == () and stats.counts == ()
    elif isinstance(bins, int) and not values:
        assert stats.edges == () and stats.counts == ()
    else:
        edges = np.asarray(bins if not isinstance(bins, int) else bin_edges(min(values), max(values), bins))
        np.testing.assert_array_equal(stats.edges, edges)
        np.testing.assert_array_equal(stats.counts, brute_histogram(docs, ids, key, edges))


def test_numeric_histogram_is_numpys_for_single_values():
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=2_000), 1)  # many ties, and values on the edges
    index = PayloadIndex({"x": "numeric"})
    index.add_many(np.arange(len(values)), [{"x": float(v)} for v in values])
    for bins in (1, 7, [-1.0, -0.5, 0.0, 0.5, 1.0]):
        stats = run(index, "x", bins=check_bins(bins)).stats
        counts, edges = np.histogram(values, bins=bins)
        np.testing.assert_array_equal(stats.edges, edges)
        np.testing.assert_array_equal(stats.counts, counts)
    same = PayloadIndex({"x": "numeric"})
    same.add_many(np.arange(3), [{"x": 2}] * 3)
    stats = run(same, "x", bins=check_bins(2)).stats
    assert stats.edges == (1.5, 2.0, 2.5) and stats.counts == (0, 3)  # min == max: numpy's +-0.5


def test_restriction_paths_agree():
    """The marks, the sparse-span search and the by-iid binary search select the same pairs."""
    rng = np.random.default_rng(1)
    ids = np.sort(rng.choice(10**6, 20_000, replace=False))
    postings = np.array_split(ids[rng.permutation(len(ids))], 50)
    pairs = FieldPairs.keyword([f"v{i:02d}" for i in range(50)], [np.sort(p) for p in postings])
    dead, none = np.sort(rng.choice(ids, 500, replace=False)), np.empty(0, np.int64)

    def check(allowed, dead, path):
        selection = restrict(pairs, allowed, dead)
        assert path == ("marks" if selection.marks is not None else "positions")
        keep = ~np.isin(pairs.ids, dead) & (True if allowed is None else np.isin(pairs.ids, allowed))
        np.testing.assert_array_equal(selected(pairs, selection)[0], pairs.ids[keep])

    for size, path in ((3, "positions"), (90, "positions"), (5_000, "marks"), (15_000, "marks")):
        pool = np.concatenate([ids, np.arange(10**6, 10**6 + 50)])  # ids beyond every pair's too
        check(np.sort(rng.choice(pool, size, replace=False)), dead, path)
    check(None, dead, "marks")
    check(np.append(ids[:5000], 10**12), none, "marks")  # an allowed id far beyond the pairs' span
    sparse = FieldPairs.keyword(["a"], [np.array([5, 10**9], dtype=np.int64)])  # iids sparse in their span
    assert restrict(sparse, None, np.array([5])).positions.tolist() == [1]
    assert restrict(pairs, None, none) == type(restrict(pairs, None, none))()  # everything: no selection


def test_sorted_histogram_is_histogram():
    rng = np.random.default_rng(2)
    numbers = np.sort(np.round(rng.normal(size=500), 1))
    for edges in (np.array([-1.0, 0.0, 0.1, 2.0]), np.linspace(numbers[0], numbers[-1], 6)):
        np.testing.assert_array_equal(sorted_histogram(numbers, edges), histogram(numbers, edges))


def test_top_values_breaks_ties_by_code():
    counts = np.array([3, 5, 0, 5, 3, 1])
    np.testing.assert_array_equal(top_values(counts, 10), [1, 3, 0, 4, 5])
    np.testing.assert_array_equal(top_values(counts, 3), [1, 3, 0])
    np.testing.assert_array_equal(top_values(np.zeros(4, np.int64), 2), [])


def test_multi_valued_histogram_counts_documents_per_bin():
    edges = np.array([0.0, 1.0, 2.0])
    numbers, ids = np.array([0.2, 0.3, 1.5, 2.0, 5.0]), np.array([7, 7, 7, 8, 8])
    np.testing.assert_array_equal(histogram(numbers, edges), [2, 2])
    np.testing.assert_array_equal(histogram(numbers, edges, ids), [1, 2])


def test_keyword_values_in_tie_order_and_empty_results():
    index = PayloadIndex({"k": "keyword", "n": "numeric"})
    index.add_many(np.arange(6), [{"k": v} for v in ["b", 2, True, "a", 1.5, False]])
    result = run(index, "k", limit=10)
    assert [c.value for c in result.counts] == [False, True, 1.5, 2, "a", "b"]
    empty = run(index, "k", allowed=set())
    assert empty.counts == () and empty.distinct == 0 and empty.documents == 0
    stats = run(index, "n", bins=check_bins([0.0, 1.0])).stats
    assert (stats.count, stats.min, stats.max, stats.edges, stats.counts) == (0, None, None, (0.0, 1.0), (0,))


def test_pairs_follow_writes_and_compaction():
    index = PayloadIndex({"k": "keyword"})
    index.add_many([1, 2, 3], [{"k": "a"}, {"k": "a"}, {"k": "b"}])
    before = index.memory_bytes()
    assert [(c.value, c.count) for c in run(index, "k").counts] == [("a", 2), ("b", 1)]
    assert index.memory_bytes() == before + index.facet_pairs("k").nbytes() > before  # the cache is counted
    index.delete([1])
    index.add(4, {"k": "b"})
    assert [(c.value, c.count) for c in run(index, "k").counts] == [("b", 2), ("a", 1)]
    index.compact()
    assert [(c.value, c.count) for c in run(index, "k").counts] == [("b", 2), ("a", 1)]
    index.remove(4, {"k": "b"})
    assert [(c.value, c.count) for c in run(index, "k").counts] == [("a", 1), ("b", 1)]


def test_bad_requests_name_the_field():
    declared = {"color": "keyword", "year": "numeric"}
    with pytest.raises(InvalidArgument, match=r"'colour'.*declared fields: color \(keyword\), year \(numeric\)"):
        check_facet("colour", None, declared, None)
    with pytest.raises(InvalidArgument, match="'year' is declared numeric"):
        check_facet("year", "keyword", declared, None)
    with pytest.raises(InvalidArgument, match="bins apply to numeric"):
        check_facet("color", None, declared, 5)
    assert check_facet("year", None, declared, 5) == "numeric"
    for bad in (0, 10**6, [1.0], [2.0, 1.0], [0.0, float("nan")], "10", True):
        with pytest.raises(InvalidArgument):
            check_bins(bad)
