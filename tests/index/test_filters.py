import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lamina.index.errors import InvalidArgument
from lamina.index.filters import (
    MAX_ANY_VALUES,
    MAX_DEPTH,
    Exists,
    Filter,
    Match,
    MatchAny,
    Range,
    as_filter,
    field_values,
    filter_keys,
    matches,
    parse_timestamp,
)

# --------------------------------------------------------------------------- strategies
WORDS = ["red", "green", "blue", "2024-01-03", "1"]
KEYS = ["color", "size", "tags", "flag", "meta.year", "meta.authors.name", "ts", "n", "missing"]
DAY = 86_400.0
JAN1 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()

scalars = st.one_of(st.sampled_from(WORDS), st.integers(-3, 3), st.sampled_from([0.5, 1.0, -2.5]), st.booleans())
stamps = st.integers(0, 9).map(lambda d: f"2024-01-0{d + 1}" if d < 9 else "2024-01-10T12:00:00Z")
bounds = st.one_of(st.integers(-4, 4), st.sampled_from([0.5, -1.5]), stamps, st.just(JAN1 + 3 * DAY))


@st.composite
def documents(draw):
    doc = {}
    present = st.integers(0, 3).map(bool)  # most fields present, so that filters often hold
    if draw(present):
        doc["color"] = draw(st.sampled_from(["red", "green", "blue"]))
    if draw(present):
        doc["size"] = draw(st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.0]), st.none()))
    if draw(present):
        doc["tags"] = draw(st.lists(st.sampled_from(WORDS), max_size=3))
    if draw(present):
        doc["flag"] = draw(st.booleans())
    if draw(present):
        meta = {}
        if draw(st.booleans()):
            meta["year"] = draw(st.integers(-2, 3))
        if draw(st.booleans()):
            meta["authors"] = [{"name": draw(st.sampled_from(WORDS))} for _ in range(draw(st.integers(0, 2)))]
        doc["meta"] = meta if draw(st.booleans()) else [meta, {"year": 1}]
    if draw(present):
        doc["ts"] = draw(st.one_of(stamps, st.floats(JAN1, JAN1 + 10 * DAY, allow_nan=False)))
    if draw(present):  # a field of mixed types
        doc["n"] = draw(st.one_of(scalars, st.none(), st.lists(scalars, max_size=2), st.just({})))
    return doc


def conditions(keys=KEYS):
    key = st.sampled_from(keys)
    match = st.builds(Match, key, scalars)
    match_any = st.builds(MatchAny, key, st.lists(scalars, min_size=1, max_size=4).map(tuple))
    exists = st.builds(Exists, key)

    @st.composite
    def ranges(draw):
        names = draw(st.lists(st.sampled_from(["lt", "lte", "gt", "gte"]), min_size=1, max_size=2, unique=True))
        return Range(draw(key), **{name: draw(bounds) for name in names})

    return st.one_of(match, match_any, exists, ranges())


def filters(leaf=None):
    leaf = leaf or conditions()

    def extend(children):
        clause = st.lists(st.one_of(leaf, children), max_size=2)
        return st.builds(Filter, clause, clause, clause)

    clause = st.lists(leaf, max_size=2)
    return st.recursive(st.builds(Filter, clause, clause, clause), extend, max_leaves=6)


# --------------------------------------------------------------------------- an independent oracle
def oracle(node, doc):
    """A second evaluator, over the JSON form, written without the module's helpers (bar timestamps)."""
    if "key" not in node:
        ok = all(oracle(c, doc) for c in node.get("must", []))
        if node.get("should"):
            ok = ok and any(oracle(c, doc) for c in node["should"])
        return ok and not any(oracle(c, doc) for c in node.get("must_not", []))

    def walk(value, parts):
        if isinstance(value, list):
            return [v for item in value for v in walk(item, parts)]
        if not parts:
            return [value]
        if isinstance(value, dict) and parts[0] in value:
            return walk(value[parts[0]], parts[1:])
        return []

    values = [v for v in walk(doc, node["key"].split(".")) if isinstance(v, (str, int, float)) and v is not None]
    if "exists" in node:
        return bool(values)

    def same(a, b):
        if isinstance(a, bool) or isinstance(b, bool):
            return isinstance(a, bool) and isinstance(b, bool) and a == b
        if isinstance(a, str) or isinstance(b, str):
            return isinstance(a, str) and isinstance(b, str) and a == b
        return a == b

    if "match" in node:
        wanted = [node["match"]["value"]] if "value" in node["match"] else node["match"]["any"]
        return any(same(v, w) for v in values for w in wanted)

    def number(v):
        if isinstance(v, bool):
            return None
        if isinstance(v, str):
            return parse_timestamp(v)
        return float(v)

    limits = {name: number(bound) for name, bound in node["range"].items()}
    tests = {"lt": lambda x, b: x < b, "lte": lambda x, b: x <= b, "gt": lambda x, b: x > b, "gte": lambda x, b: x >= b}
    return any(n is not None and all(tests[name](n, b) for name, b in limits.items())
               for n in map(number, values))


@settings(max_examples=200, deadline=None)
@given(conditions(), st.lists(documents(), min_size=1, max_size=6))
def test_each_condition_agrees_with_an_independent_oracle(condition, docs):
    as_json = json.loads(json.dumps(condition.to_dict()))
    for doc in docs:
        assert matches(Filter(must=[condition]), doc) == oracle(as_json, doc)


@settings(max_examples=100, deadline=None)
@given(filters(), st.lists(documents(), min_size=1, max_size=6))
def test_filters_agree_with_an_independent_oracle(flt, docs):
    as_json = json.loads(json.dumps(flt.to_dict()))
    for doc in docs:
        assert matches(flt, doc) == oracle(as_json, doc)


@settings(max_examples=100, deadline=None)
@given(filters())
def test_json_round_trip(flt):
    assert Filter.from_dict(json.loads(json.dumps(flt.to_dict()))) == flt


@settings(max_examples=100, deadline=None)
@given(filters(), filters(), documents())
def test_boolean_laws(a, b, doc):
    ma, mb = matches(a, doc), matches(b, doc)
    assert matches(Filter(must=[a, b]), doc) == (ma and mb)
    assert matches(Filter(should=[a, b]), doc) == (ma or mb)
    assert matches(Filter(must_not=[a]), doc) == (not ma)
    assert matches(Filter(must=[a]), doc) == ma


# --------------------------------------------------------------------------- semantics by example
DOC = {
    "lang": "en", "year": 1995, "score": 0.5, "draft": False, "tags": ["a", "b"], "none": None, "empty": [],
    "author": {"name": "Ada", "born": "1815-12-10"},
    "refs": [{"year": 1990, "by": ["x", "y"]}, {"year": 2001}],
    "published": "2024-03-01T12:00:00Z",
}


@pytest.mark.parametrize("condition,expected", [
    (Match("lang", "en"), True),
    (Match("lang", "EN"), False),
    (Match("year", 1995.0), True),  # numbers compare by value
    (Match("draft", False), True),
    (Match("draft", 0), False),  # a bool never equals a number
    (Match("year", "1995"), False),  # nor a string a number
    (Match("tags", "b"), True),  # any element of a list
    (MatchAny("tags", ("z", "a")), True),
    (MatchAny("lang", ("de", "fr")), False),
    (Match("author.name", "Ada"), True),  # dotted paths
    (Match("refs.by", "y"), True),  # through a list of objects
    (Range("refs.year", gt=2000), True),
    (Range("refs.year", gt=1990, lt=2001), False),  # no single value lies inside
    (Range("year", gte=1990, lt=2000), True),
    (Range("score", gt=0.5), False),
    (Range("lang", gte=0), False),  # a plain string is no number
    (Range("draft", lte=1), False),  # nor is a bool
    (Range("published", gte="2024-03-01", lt="2024-03-02"), True),  # ISO strings on both sides
    (Range("published", gt=datetime(2024, 3, 1, 12, tzinfo=UTC).timestamp()), False),
    (Range("published", gte="2024-03-01T13:00:00+02:00"), True),  # 11:00 UTC
    (Range("author.born", lt="1900-01-01"), True),
    (Exists("lang"), True),
    (Exists("none"), False),  # null
    (Exists("empty"), False),  # []
    (Exists("author"), False),  # an object is no scalar value
    (Exists("nope"), False),
    (Exists("author.name"), True),
])
def test_condition_semantics(condition, expected):
    assert matches(Filter(must=[condition]), DOC) is expected


def test_clause_semantics():
    yes, no = Match("lang", "en"), Match("lang", "de")
    assert matches(Filter(), DOC) and matches(None, DOC) and matches(Filter(), None)
    assert matches(Filter(should=[no, yes]), DOC)
    assert not matches(Filter(should=[no]), DOC)
    assert not matches(Filter(must=[yes], must_not=[yes]), DOC)
    assert matches(Filter(must=[Filter(should=[no, Filter(must_not=[no])])]), DOC)
    assert not matches(Filter(must=[yes, no]), DOC)


def test_field_values_walks_lists_and_skips_non_scalars():
    assert field_values(DOC, "refs.year") == [1990, 2001]
    assert field_values({"a": [[1, [2]], None, {"b": 1}]}, "a") == [1, 2]
    assert field_values({"a": {"b": None}}, "a.b") == []
    assert field_values({"a": 1}, "a.b") == []


def test_parse_timestamp():
    assert parse_timestamp("1970-01-01") == 0.0
    assert parse_timestamp("1970-01-01T00:00:01Z") == 1.0
    assert parse_timestamp("1970-01-01 01:00:00+01:00") == 0.0
    assert parse_timestamp("1970-01-01T00:00:00.5") == 0.5  # no offset: UTC
    for text in ("20240101", "2024", "yesterday", "2024-02-30", "2024-01-01T25:00"):
        assert parse_timestamp(text) is None


def test_json_form_and_helpers():
    data = {"must": [{"key": "year", "range": {"gte": 1990, "lt": "2000-01-01"}},
                     {"key": "tags", "match": {"any": ["a", "b"]}}],
            "should": {"key": "lang", "match": {"value": "en"}},  # a lone condition is a list of one
            "must_not": [{"must": [{"key": "draft", "exists": True}]}]}
    flt = Filter.from_dict(data)
    assert flt.depth == 2 and flt.size == 5
    assert filter_keys(flt) == {"year", "tags", "lang", "draft"}
    assert flt.to_dict()["should"] == [{"key": "lang", "match": {"value": "en"}}]
    assert as_filter(None) is None and as_filter({}) is None and as_filter(flt) is flt
    assert as_filter(data) == flt
    assert hash(flt) == hash(Filter.from_dict(flt.to_dict()))


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("data,needle", [
    ({"must": [{"key": "year", "range": {"gte": "soon"}}]}, "'year'"),
    ({"must": [{"key": "year", "range": {"gte": True}}]}, "'year'"),
    ({"must": [{"key": "year", "range": {}}]}, "'year'"),
    ({"must": [{"key": "year", "range": {"from": 1}}]}, "'year'"),
    ({"must": [{"key": "tags", "match": {"any": []}}]}, "'tags'"),
    ({"must": [{"key": "tags", "match": {"any": list(range(MAX_ANY_VALUES + 1))}}]}, "'tags'"),
    ({"must": [{"key": "tags", "match": {"value": [1]}}]}, "'tags'"),
    ({"must": [{"key": "tags", "match": {"value": None}}]}, "'tags'"),
    ({"must": [{"key": "tags", "match": "a"}]}, "'tags'"),
    ({"must": [{"key": "tags", "exists": False}]}, "'tags'"),
    ({"must": [{"key": "tags", "match": {"value": 1}, "range": {"gt": 1}}]}, "'tags'"),
    ({"must": [{"key": "tags", "matches": {"value": 1}}]}, "'tags'"),
    ({"must": [{"key": "a..b", "exists": True}]}, "'a..b'"),
    ({"must": [{"key": "", "exists": True}]}, "key"),
    ({"must": [{"match": {"value": 1}}]}, "must[0]"),
    ({"must": [{"key": "x", "exists": True}, 3]}, "must[1]"),
    ({"must": {"key": "x"}, "extra": []}, "extra"),
    ({"should": "x"}, "should"),
    ([], "JSON object"),
])
def test_invalid_json_is_rejected_naming_the_place(data, needle):
    with pytest.raises(InvalidArgument, match=needle.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        Filter.from_dict(data)


def test_limits():
    nested = {"must": [{"key": "x", "exists": True}]}
    for _ in range(MAX_DEPTH - 1):
        nested = {"must": [nested]}
    assert Filter.from_dict(nested).depth == MAX_DEPTH
    with pytest.raises(InvalidArgument, match="nests"):
        Filter.from_dict({"must": [nested]})
    flt = Filter.from_dict(nested)
    with pytest.raises(InvalidArgument, match="nests"):
        Filter(must=[flt])
    deep = {"must": []}
    for _ in range(5000):  # no recursion error, just a refusal
        deep = {"must": [deep]}
    with pytest.raises(InvalidArgument, match="nests"):
        Filter.from_dict(deep)
    with pytest.raises(InvalidArgument, match="conditions"):
        Filter(must=[Exists(f"k{i}") for i in range(2000)])
    with pytest.raises(InvalidArgument, match="'score'"):
        Range("score", lt=math.nan)
    with pytest.raises(InvalidArgument, match="'score'"):
        Match("score", math.inf)
    with pytest.raises(InvalidArgument, match="not a condition"):
        Filter(must=["year"])
