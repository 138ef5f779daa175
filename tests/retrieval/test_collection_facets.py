"""Collection.facet against a brute-force count over the stored documents, through upserts,
re-upserts, deletes, tenants, filters, a snapshot and a reopen."""

from collections import Counter
from itertools import count

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lamina.index.errors import InvalidArgument
from lamina.index.facets import bin_edges
from lamina.index.filters import as_filter, field_values, matches, parse_timestamp, range_value, value_key
from lamina.retrieval.collection import Database

PAYLOAD = {"topic": "keyword", "tags": "keyword", "year": "numeric"}
TOPICS = ["aero", "flow", "heat", 7, True]
TENANTS = [None, "acme", "globex"]
_names = count()

metadata = st.fixed_dictionaries({}, optional={
    "topic": st.sampled_from(TOPICS),
    "tags": st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
    "year": st.one_of(st.integers(1950, 1960), st.lists(st.integers(1950, 1960), max_size=2),
                      st.sampled_from([1955.5, "1956-03-01"])),
})
point = st.tuples(st.sampled_from([f"p{i}" for i in range(30)]), metadata, st.sampled_from(TENANTS))
operation = st.one_of(st.tuples(st.just("upsert"), st.lists(point, min_size=1, max_size=12)),
                      st.tuples(st.just("delete"), st.lists(st.sampled_from([f"p{i}" for i in range(30)]),
                                                            max_size=6)))
facet_filters = st.sampled_from([
    None,
    {"must": [{"key": "year", "range": {"gte": 1955}}]},
    {"must": [{"key": "tags", "match": {"any": ["a", "b"]}}], "must_not": [{"key": "topic", "match": {"value": 7}}]},
    {"should": [{"key": "topic", "match": {"value": "aero"}}, {"key": "year", "exists": True}]},
])


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with Database(tmp_path_factory.mktemp("facets")) as database:
        yield database


def apply(coll, live, op):
    kind, items = op
    if kind == "upsert":
        # a tenant's point keeps its tenant in the model as the collection keeps it
        coll.upsert([{"id": i, "vector": np.ones(4), "metadata": md, "tenant": t} for i, md, t in items])
        for i, md, t in items:
            live[i] = (md, t)
    else:
        coll.delete(items)
        for i in items:
            live.pop(i, None)


def selected(live, flt, tenant):
    flt = as_filter(flt)
    return [md for md, t in live.values() if (tenant is None or t == tenant) and (flt is None or matches(flt, md))]


def brute_keyword(docs, key):
    counts = Counter()
    for md in docs:
        counts.update({value_key(v) for v in field_values(md, key)})
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def numbers_of(md):
    out = [parse_timestamp(v) if isinstance(v, str) else range_value(v) for v in field_values(md, "year")]
    return [x for x in out if x is not None]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, min_size=1, max_size=5), facet_filters, st.sampled_from(TENANTS),
       st.integers(1, 4), st.sampled_from([None, 3, [1950.0, 1955.0, 1960.0]]))
def test_facet_equals_brute_force(db, ops, flt, tenant, limit, bins):
    coll = db.create_collection(f"c{next(_names)}", 4, encoder=None, sparse=False, payload=PAYLOAD)
    live: dict[str, tuple[dict, str | None]] = {}
    for op in ops:
        apply(coll, live, op)
    docs = selected(live, flt, tenant)
    for key in ("topic", "tags"):
        result = coll.facet(key, limit=limit, filter=flt, tenant=tenant)
        expected = brute_keyword(docs, key)
        assert [(value_key(c.value), c.count) for c in result.counts] == expected[:limit]
        assert (result.documents, result.distinct, result.kind) == (len(docs), len(expected), "keyword")
    stats = coll.facet("year", bins=bins, filter=flt, tenant=tenant).stats
    values = [x for md in docs for x in numbers_of(md)]
    assert stats.count == sum(bool(numbers_of(md)) for md in docs)
    assert (stats.min, stats.max) == ((min(values), max(values)) if values else (None, None))
    if bins is not None and (values or not isinstance(bins, int)):
        edges = np.asarray(bins) if not isinstance(bins, int) else bin_edges(min(values), max(values), bins)
        np.testing.assert_array_equal(stats.edges, edges)
        per_bin = [sum(any(e0 <= x < e1 or (b == len(edges) - 2 and x == e1) for x in numbers_of(md)) for md in docs)
                   for b, (e0, e1) in enumerate(zip(edges[:-1], edges[1:]))]
        assert list(stats.counts) == per_bin
    db.drop_collection(coll.name)


def test_facet_survives_snapshot_and_reopen(tmp_path):
    points = [{"id": f"p{i}", "vector": np.ones(4), "tenant": ["acme", "globex"][i % 2],
               "metadata": {"topic": ["aero", "flow", "heat"][i % 3], "year": 1950 + i % 7}} for i in range(60)]
    early = {"must": [{"key": "year", "range": {"lt": 1953}}]}
    requests = [(key, tenant, flt) for key in ("topic", "year") for tenant in (None, "acme") for flt in (None, early)]

    def answers(coll):
        return [coll.facet(key, tenant=tenant, filter=flt, bins=2 if key == "year" else None)
                for key, tenant, flt in requests]

    with Database(tmp_path) as db:
        coll = db.create_collection("c", 4, encoder=None, sparse=False, payload=PAYLOAD)
        coll.upsert(points)
        coll.delete([f"p{i}" for i in range(0, 60, 4)])
        coll.upsert([{"id": "p1", "vector": np.ones(4), "tenant": "globex", "metadata": {"topic": "new"}}])
        before = answers(coll)
        assert before[0].documents == 45 and sum(c.count for c in before[0].counts) == 45
        coll.snapshot()  # compaction: the tombstones leave the postings
        assert answers(coll) == before
        coll.upsert([{"id": "p2", "vector": np.ones(4), "tenant": "acme", "metadata": {"topic": "late"}}])
    with Database(tmp_path) as db:  # the write after the snapshot is replayed
        coll = db.collection("c")
        topics = {c.value: c.count for c in coll.facet("topic", limit=100).counts}
        assert topics["late"] == 1 and topics["new"] == 1
        assert sum(topics.values()) == coll.count() == 45


def test_bad_facets_are_invalid_argument(tmp_path):
    with Database(tmp_path) as db:
        coll = db.create_collection("c", 4, encoder=None, sparse=False, payload=PAYLOAD)
        with pytest.raises(InvalidArgument, match=r"'colour' is not a declared payload field.*tags \(keyword\)"):
            coll.facet("colour")
        with pytest.raises(InvalidArgument, match="'year' is declared numeric"):
            coll.facet("year", kind="keyword")
        with pytest.raises(InvalidArgument, match="limit"):
            coll.facet("topic", limit=0)
        with pytest.raises(InvalidArgument, match="not indexed"):
            coll.facet("topic", filter={"must": [{"key": "colour", "match": {"value": "red"}}]})
        empty = coll.facet("year", bins=4)
        assert (empty.documents, empty.stats.count, empty.stats.edges) == (0, 0, ())
