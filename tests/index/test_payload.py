import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.filters import Exists, Filter, Match, MatchAny, Range, matches
from lamina.index.payload import (
    IdSet,
    NumericColumn,
    PayloadIndex,
    difference_sorted,
    intersect_sorted,
    keys_not_indexed,
    sort_unique,
    union_sorted,
    unique_ids,
)

# --------------------------------------------------------------------------- strategies
WORDS = ["red", "green", "blue", "2024-01-03", "x"]
KEYWORD = ["color", "tags", "flag", "meta.authors.name", "mixed"]
NUMERIC = ["size", "meta.year", "ts"]
SCHEMA = {**{k: "keyword" for k in KEYWORD}, **{k: "numeric" for k in NUMERIC}}

words = st.sampled_from(WORDS)
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.0, -1.5]))
keyword_values = st.one_of(words, numbers, st.booleans())
stamps = st.integers(1, 9).map(lambda d: f"2024-01-0{d}")
bounds = st.one_of(numbers, stamps, st.integers(1704067200, 1704067200 + 9 * 86400))
present = st.integers(0, 3).map(bool)


@st.composite
def documents(draw):
    doc = {}
    if draw(present):
        doc["color"] = draw(st.one_of(words, st.lists(words, max_size=2)))
    if draw(present):
        doc["tags"] = draw(st.lists(words, max_size=3))
    if draw(present):
        doc["flag"] = draw(st.one_of(st.booleans(), st.none()))
    if draw(present):
        doc["meta"] = {"year": draw(st.one_of(numbers, st.lists(numbers, max_size=2), words)),
                       "authors": [{"name": draw(words)} for _ in range(draw(st.integers(0, 2)))]}
    if draw(present):
        doc["size"] = draw(st.one_of(numbers, st.booleans(), words, st.lists(numbers, max_size=3)))
    if draw(present):
        doc["ts"] = draw(st.one_of(stamps, st.integers(1704067200, 1704067200 + 9 * 86400), st.just("soon")))
    if draw(present):
        doc["mixed"] = draw(st.one_of(keyword_values, st.lists(keyword_values, max_size=2), st.none()))
    if draw(st.integers(0, 5).map(bool)):
        doc["free"] = draw(words)  # never indexed: only the fallback can read it
    return doc


@st.composite
def range_conditions(draw, keys):
    names = draw(st.lists(st.sampled_from(["lt", "lte", "gt", "gte"]), min_size=1, max_size=2, unique=True))
    return Range(draw(st.sampled_from(keys)), **{name: draw(bounds) for name in names})


def answerable(keys_kw=KEYWORD, keys_num=NUMERIC):
    """Conditions each index kind answers: anything on keywords; ranges and numbers on numerics."""
    kw, num = st.sampled_from(keys_kw), st.sampled_from(keys_num)
    return st.one_of(
        st.builds(Match, kw, keyword_values),
        st.builds(MatchAny, kw, st.lists(keyword_values, min_size=1, max_size=4).map(tuple)),
        st.builds(Match, num, numbers),
        st.builds(MatchAny, num, st.lists(numbers, min_size=1, max_size=4).map(tuple)),
        st.builds(Exists, st.one_of(kw, num)),
        range_conditions(keys_num),
    )


def filters(leaf):
    def extend(children):
        clause = st.lists(st.one_of(leaf, children), max_size=2)
        return st.builds(Filter, clause, clause, clause)

    clause = st.lists(leaf, max_size=2)
    return st.recursive(st.builds(Filter, clause, clause, clause), extend, max_leaves=6)


def brute_force(flt, docs, universe=None):
    ids = sorted(docs) if universe is None else sorted(universe)
    return np.array([i for i in ids if matches(flt, docs.get(i, {}))], dtype=np.int64)


def build(docs, schema=SCHEMA, *, one_by_one=False):
    index = PayloadIndex(schema)
    ids = sorted(docs)
    if one_by_one:
        for i in ids:
            index.add(i, docs[i])
    else:
        index.add_many(np.array(ids, dtype=np.int64), [docs[i] for i in ids])
    return index


corpora = st.lists(documents(), min_size=1, max_size=25).map(lambda ds: {3 * i + 1: d for i, d in enumerate(ds)})


# --------------------------------------------------------------------------- properties
@settings(max_examples=100, deadline=None)
@given(corpora, st.lists(filters(answerable()), min_size=1, max_size=4), st.booleans())
def test_evaluate_equals_brute_force(docs, flts, one_by_one):
    index = build(docs, one_by_one=one_by_one)
    for flt in flts:
        got = index.evaluate(flt)
        np.testing.assert_array_equal(got, brute_force(flt, docs))
        assert index.count(flt) == len(got)


@settings(max_examples=60, deadline=None)
@given(corpora, filters(answerable()), st.data())
def test_universe_and_writes(docs, flt, data):
    index = build(docs)
    # a universe mixing known ids and ids the index never saw (they have no metadata)
    universe = data.draw(st.lists(st.sampled_from(sorted(docs) + [0, 2, 10**6]), unique=True))
    np.testing.assert_array_equal(index.evaluate(flt, universe), brute_force(flt, docs, universe))
    # exact removals, tombstones, then re-adds under new ids
    ids = sorted(docs)
    removed = data.draw(st.lists(st.sampled_from(ids), unique=True))
    tombstoned = data.draw(st.lists(st.sampled_from(ids), unique=True))
    for i in removed:
        index.remove(i, docs[i])
    index.delete([i for i in tombstoned if i not in removed])
    live = {i: d for i, d in docs.items() if i not in removed and i not in tombstoned}
    np.testing.assert_array_equal(index.evaluate(flt), brute_force(flt, live))
    for i in removed[:3]:
        live[i + 10**5] = docs[i]
        index.add(i + 10**5, docs[i])
    np.testing.assert_array_equal(index.evaluate(flt), brute_force(flt, live))
    index.compact()
    np.testing.assert_array_equal(index.evaluate(flt), brute_force(flt, live))
    assert len(index) == len(live)


@settings(max_examples=60, deadline=None)
@given(corpora, filters(st.one_of(answerable(), st.builds(Match, st.just("free"), st.sampled_from(WORDS)),
                                  range_conditions(["color"]))))
def test_fallback_scans_what_is_not_indexed(docs, flt):
    index = build(docs)
    calls = []

    def lookup(iids):
        calls.append(len(iids))
        return [docs.get(int(i)) for i in iids]

    np.testing.assert_array_equal(index.evaluate(flt, fallback=lookup), brute_force(flt, docs))


@settings(max_examples=40, deadline=None)
@given(corpora, filters(answerable()))
def test_save_load_round_trip(tmp_path_factory, docs, flt):
    index = build(docs)
    index.remove(min(docs))  # a tombstone: save() compacts it away
    directory = tmp_path_factory.mktemp("payload")
    index.save(directory)
    for mmap in (False, True):
        loaded = PayloadIndex.load(directory, mmap=mmap)
        assert loaded.fields == index.fields
        np.testing.assert_array_equal(loaded.evaluate(flt), index.evaluate(flt))
    loaded.add(10**7, docs[min(docs)])  # a loaded (memory-mapped) index takes writes
    assert 10**7 in loaded.evaluate(None)


# --------------------------------------------------------------------------- examples and errors
def test_unindexed_fields_and_wrong_kinds_are_named():
    index = PayloadIndex({"year": "numeric", "lang": "keyword"})
    index.add(1, {"year": 1999, "lang": "en", "author": "Ada"})
    for flt, needle in [
        (Filter(must=[Match("author", "Ada")]), "field 'author' is not indexed"),
        (Filter(should=[Filter(must_not=[Exists("author")])]), "field 'author' is not indexed"),
        (Filter(must=[Range("lang", gte=1)]), "field 'lang' has a keyword index"),
        (Filter(must=[Match("year", "1999")]), "field 'year' has a numeric index"),
        (Filter(must=[MatchAny("year", (1999, True))]), "field 'year' has a numeric index"),
    ]:
        with pytest.raises(InvalidArgument, match=needle):
            index.evaluate(flt)
    assert keys_not_indexed(index, Filter(must=[Match("author", "x"), Exists("year")])) == {"author"}
    with pytest.raises(InvalidArgument, match="'year'"):
        PayloadIndex({"year": "date"})
    with pytest.raises(InvalidArgument, match="key"):
        PayloadIndex({"": "keyword"})


def test_typed_keys_and_timestamps():
    index = PayloadIndex({"v": "keyword", "t": "numeric"})
    docs = {1: {"v": True, "t": "2024-01-01"}, 2: {"v": 1, "t": 1704067200}, 3: {"v": 1.0, "t": "2024-01-02T00:00:00Z"},
            4: {"v": "1", "t": 1704067200.5}, 5: {"v": [1, "a"], "t": [0, "2030-01-01"]}}
    for i, d in docs.items():
        index.add(i, d)
    assert index.evaluate(Filter(must=[Match("v", 1)])).tolist() == [2, 3, 5]
    assert index.evaluate(Filter(must=[Match("v", True)])).tolist() == [1]
    assert index.evaluate(Filter(must=[Match("v", "1")])).tolist() == [4]
    # a range sees timestamps and epoch numbers on one axis; a numeric match sees numbers only
    assert index.evaluate(Filter(must=[Range("t", gte="2024-01-01", lt="2024-01-02")])).tolist() == [1, 2, 4]
    assert index.evaluate(Filter(must=[Match("t", 1704067200)])).tolist() == [2]
    assert index.evaluate(Filter(must=[Range("t", gt=1704067200, lte=1704067200.5)])).tolist() == [4]
    assert index.evaluate(Filter(must=[Range("t", lt=1, gte=0)])).tolist() == [5]
    assert index.evaluate(Filter(must=[Range("t", gt=1, gte=1704067200.5, lt=2e9, lte=1704153600)])).tolist() == [3, 4]


def test_large_index_by_numpy_and_brute_force_agree():
    rng = np.random.default_rng(0)
    n = 20_000
    docs = {int(i): {"cat": f"c{rng.integers(50)}", "price": float(rng.integers(0, 1000)) / 10,
                     "tags": [f"t{x}" for x in rng.integers(0, 20, rng.integers(0, 4))]}
            for i in rng.choice(10 * n, n, replace=False)}
    index = build(docs, {"cat": "keyword", "price": "numeric", "tags": "keyword"})
    flt = Filter(must=[Range("price", gte=10, lt=60), MatchAny("cat", tuple(f"c{i}" for i in range(25)))],
                 should=[Match("tags", "t1"), Match("tags", "t2")], must_not=[Match("cat", "c3")])
    got = index.evaluate(flt)
    np.testing.assert_array_equal(got, brute_force(flt, docs))
    assert 100 < len(got) < n
    assert index.memory_bytes() > 0


def test_sorted_set_algebra():
    a = np.array([1, 3, 5, 7], dtype=np.int64)
    b = np.array([3, 4, 5], dtype=np.int64)
    assert intersect_sorted(a, b).tolist() == [3, 5]
    assert union_sorted([a, b, np.empty(0, np.int64)]).tolist() == [1, 3, 4, 5, 7]
    assert difference_sorted(a, b).tolist() == [1, 7]
    assert sort_unique(np.array([5, 1, 5, 3, 1], dtype=np.int64)).tolist() == [1, 3, 5]
    assert sort_unique(np.empty(0, np.int64)).tolist() == []
    ids = IdSet()
    for i in (5, 1, 9):
        ids.add(i)
    ids.discard(1)
    ids.add(1)
    ids.discard(9)
    assert ids.array().tolist() == [1, 5]
    column = NumericColumn()
    column.add(1, [3.0, 1.0])
    column.add(2, [2.0])
    column.discard(1)
    column.add(3, [3.0])
    assert column.between(1.0, True, 3.0, True).tolist() == [2, 3]
    assert column.equal_any(np.array([3.0, 2.0, 9.0])).tolist() == [2, 3]


def test_load_rejects_damaged_files(tmp_path):
    index = PayloadIndex({"a": "keyword", "b": "numeric"})
    index.add_many(np.arange(10), [{"a": str(i % 3), "b": i} for i in range(10)])
    index.save(tmp_path)
    np.save(tmp_path / "payload_0_offsets.npy", np.array([0, 99]))
    with pytest.raises(CorruptIndex, match="payload index"):
        PayloadIndex.load(tmp_path)
    (tmp_path / "payload.json").write_text("{")
    with pytest.raises(CorruptIndex):
        PayloadIndex.load(tmp_path)


def test_keyword_counts_follow_adds_removals_and_tombstones():
    index = PayloadIndex({"lang": "keyword", "year": "numeric"})
    langs = ["en", "fr", "en", "de", "en", "fr"]
    for iid, lang in enumerate(langs):
        index.add(iid, {"lang": lang, "year": 2000 + iid})
    index.add(6, {"year": 1990})  # no lang at all
    index.remove(1, {"lang": "fr"})  # removed with its metadata
    index.delete([3])  # tombstoned: still in the "de" posting until compaction
    index.delete([0])
    expected = {"en": 2, "fr": 1}
    assert index.keyword_counts("lang") == expected
    for lang, n in expected.items():
        assert index.count(Filter(must=[Match("lang", lang)])) == n
    index.compact()
    assert index.keyword_counts("lang") == expected
    with pytest.raises(InvalidArgument, match="'year' is not an indexed keyword field"):
        index.keyword_counts("year")


@pytest.mark.parametrize("n, span", [(100, 10**6), (5_000, 200_000), (100_000, 1_000_000), (2_000, 2_000),
                                     (500_000, 1_000_000), (3_000, 10**12), (3_000, 3_000 * 256 + 1)])
def test_unique_ids_matches_numpy_on_every_path(n, span):
    """Sort (few or very sparse ids), bitmap (sparse in their span) and byte mask (dense)."""
    rng = np.random.default_rng(n)
    ids = rng.integers(7, 7 + span, n).astype(np.int64)
    np.testing.assert_array_equal(unique_ids(ids), np.unique(ids))
    np.testing.assert_array_equal(unique_ids(ids[::-1].copy()), np.unique(ids))


def test_a_reader_during_another_readers_merge_gets_the_merged_ids(monkeypatch):
    """Readers merge write buffers under a shared read lock: one arriving mid-merge must not take
    the emptied buffer for merged ids (it waits, then reads what the merge published)."""
    import threading

    from lamina.index.payload import IdSet

    ids = IdSet(np.array([1, 2], np.int64))
    ids.add(5)
    ids.add(7)
    seen: list[list[int]] = []
    merge = IdSet._merge

    def merge_with_a_second_reader(self, new):
        other = threading.Thread(target=lambda: seen.append(ids.array().tolist()))
        other.start()
        other.join(0.2)  # a reader that does not wait answers within this
        merge(self, new)
        monkeypatch.setattr(IdSet, "_merge", merge)
        return other

    monkeypatch.setattr(IdSet, "_merge", merge_with_a_second_reader)
    assert ids.array().tolist() == [1, 2, 5, 7]
    for _ in range(50):
        if seen:
            break
        threading.Event().wait(0.1)
    assert seen == [[1, 2, 5, 7]]
