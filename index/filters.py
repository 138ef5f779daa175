"""Metadata filters: a small filter language over document metadata, after Qdrant's `Filter`.

A `Filter` holds three lists of conditions (Qdrant's semantics):

- `must`: every condition holds;
- `should`: at least one condition holds (ignored when the list is empty);
- `must_not`: no condition holds.

An empty `Filter()` matches every document. A condition is one of

- `Match(key, value)`: some value of the field equals `value`;
- `MatchAny(key, values)`: some value of the field equals one of `values`;
- `Range(key, lt=, lte=, gt=, gte=)`: some value of the field lies in the range;
- `Exists(key)`: the field has at least one value;
- a nested `Filter`.

Field values. `key` is a dotted path into the metadata JSON object ("author.name"); a list met
on the way is walked element-wise, so "authors.name" reaches every author's name, and a list
at the end contributes each of its elements (Qdrant's array semantics: a condition holds when it
holds for *any* value). Only scalars (str, int, float, bool) are values: null, {} and [] are not,
so `Exists` is Qdrant's "not is_empty and not is_null". Keys containing a literal "." cannot be
addressed.

Equality is typed: a bool equals only a bool, a number equals a number of the same value (1 ==
1.0), a string equals the same string. JSON has no other scalars.

Ranges compare float64 numbers. A bound is a number or an ISO-8601 timestamp string
("2024-03-01", "2024-03-01T12:00:00Z", "2024-03-01T12:00:00+02:00"), converted to epoch
seconds (UTC when the string has no offset). A metadata value takes part in a range when it is
a number or such a timestamp string; so timestamps may be stored either as epoch seconds or as
ISO strings, and both forms compare on one axis. Bools and other strings never lie in a range.

The JSON form (the wire and the CLI), one shape per condition:

    {"must": [{"key": "year", "range": {"gte": 1990, "lt": 2000}},
              {"key": "lang", "match": {"value": "en"}},
              {"key": "tags", "match": {"any": ["a", "b"]}},
              {"key": "author", "exists": true},
              {"should": [...], "must_not": [...]}]}        # a nested filter

`matches(filter, metadata)` is the plain reference evaluator; `lamina.index.payload` answers the
same question for a whole collection at once with inverted indexes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Union

from lamina.index.errors import InvalidArgument

MAX_DEPTH = 8  # nesting of filters, the outermost filter counting 1
MAX_ANY_VALUES = 1024  # values of one MatchAny
MAX_CONDITIONS = 1024  # conditions of a whole filter tree, nested filters included
MAX_KEY_LENGTH = 256

Scalar = Union[str, int, float, bool]

_KEY = re.compile(r"^[^.\s][^.]*(\.[^.\s][^.]*)*$")
# the extended ISO-8601 forms only: a bare "20240301" is a number-like string, not a date
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


# --------------------------------------------------------------------------- values
def parse_timestamp(text: str) -> float | None:
    """Epoch seconds (float) of an extended ISO-8601 date or date-time, None if `text` is not one.

    A string without an offset is taken as UTC, so the value never depends on the server's zone.
    """
    if not _ISO.match(text):
        return None
    try:
        stamp = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:  # "2024-02-30" passes the pattern
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def range_value(value: Any) -> float | None:
    """The float64 a metadata value contributes to a range comparison, or None.

    Numbers (not bools) and ISO-8601 timestamp strings take part; everything else does not.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # JSON allows integers beyond float64
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return parse_timestamp(value)
    return None


def value_key(value: Scalar) -> tuple[int, Scalar]:
    """The equality key of a scalar: typed, so that True != 1 while 1 == 1.0.

    The payload index keys its keyword postings with it, which keeps the index and `matches`
    in agreement by construction.
    """
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, value)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def field_values(metadata: Mapping[str, Any], key: str) -> list[Scalar]:
    """Every scalar reached by the dotted `key` in `metadata`, lists walked element-wise.

    >>> field_values({"a": [{"b": 1}, {"b": [2, None]}], "c": None}, "a.b")
    [1, 2]
    """
    nodes: list[Any] = [metadata]
    for part in key.split("."):
        found: list[Any] = []
        for node in nodes:
            for item in _flatten(node):
                if isinstance(item, Mapping) and part in item:
                    found.append(item[part])
        nodes = found
        if not nodes:
            return []
    return [item for node in nodes for item in _flatten(node) if _is_scalar(item)]


# --------------------------------------------------------------------------- validation
def check_key(key: Any) -> str:
    """Return `key` if it is a valid dotted field path, else raise InvalidArgument naming it."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"filter key must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument(f"filter key {key[:40]!r}... exceeds {MAX_KEY_LENGTH} characters")
    if not _KEY.match(key):
        raise InvalidArgument(f"filter key {key!r} is not a dotted path of non-empty names")
    return key


def _check_scalar(key: str, value: Any, what: str) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"field {key!r}: {what} must be finite, got {value!r}")
    if not isinstance(value, (str, int, float, bool)):
        raise InvalidArgument(
            f"field {key!r}: {what} must be a string, number or bool, got {type(value).__name__}"
        )
    return value


def _check_bound(key: str, name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidArgument(
            f"field {key!r}: range bound {name} must be a number or an ISO-8601 timestamp, got {value!r}"
        )
    number = range_value(value)
    if number is None:  # NaN, infinities, and strings that are not timestamps
        raise InvalidArgument(
            f"field {key!r}: range bound {name}={value!r} is neither a finite number nor an ISO-8601 timestamp"
        )
    return number


# --------------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class Match:
    """Some value of field `key` equals `value` (typed equality, see `value_key`)."""

    key: str
    value: Scalar

    def __post_init__(self) -> None:
        check_key(self.key)
        _check_scalar(self.key, self.value, "match value")

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "match": {"value": self.value}}


@dataclass(frozen=True)
class MatchAny:
    """Some value of field `key` equals one of `values` (1 to MAX_ANY_VALUES of them)."""

    key: str
    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        check_key(self.key)
        values = self.values
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise InvalidArgument(f"field {self.key!r}: match any needs a list of values, got {values!r}")
        values = tuple(values)
        if not values:
            raise InvalidArgument(f"field {self.key!r}: match any needs at least one value")
        if len(values) > MAX_ANY_VALUES:
            raise InvalidArgument(
                f"field {self.key!r}: match any has {len(values)} values, the limit is {MAX_ANY_VALUES}"
            )
        for i, value in enumerate(values):
            _check_scalar(self.key, value, f"match any value [{i}]")
        object.__setattr__(self, "values", values)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "match": {"any": list(self.values)}}


@dataclass(frozen=True)
class Range:
    """Some value of field `key` lies within the given bounds (at least one bound).

    Bounds are numbers or ISO-8601 timestamp strings; both compare as float64 epoch seconds.
    """

    key: str
    lt: float | int | str | None = None
    lte: float | int | str | None = None
    gt: float | int | str | None = None
    gte: float | int | str | None = None

    def __post_init__(self) -> None:
        check_key(self.key)
        bounds = {name: _check_bound(self.key, name, getattr(self, name)) for name in ("lt", "lte", "gt", "gte")}
        if all(bound is None for bound in bounds.values()):
            raise InvalidArgument(f"field {self.key!r}: a range needs at least one of lt, lte, gt, gte")
        object.__setattr__(self, "_bounds", bounds)

    @property
    def bounds(self) -> dict[str, float | None]:
        """The bounds as float64 numbers (timestamps converted), None where absent."""
        return dict(self._bounds)  # type: ignore[attr-defined]

    def contains(self, number: float) -> bool:
        b = self._bounds  # type: ignore[attr-defined]
        return not (
            (b["lt"] is not None and not number < b["lt"])
            or (b["lte"] is not None and not number <= b["lte"])
            or (b["gt"] is not None and not number > b["gt"])
            or (b["gte"] is not None and not number >= b["gte"])
        )

    def to_dict(self) -> dict[str, Any]:
        bounds = {name: getattr(self, name) for name in ("lt", "lte", "gt", "gte") if getattr(self, name) is not None}
        return {"key": self.key, "range": bounds}


@dataclass(frozen=True)
class Exists:
    """Field `key` has at least one scalar value (not missing, not null, not an empty list)."""

    key: str

    def __post_init__(self) -> None:
        check_key(self.key)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "exists": True}


Condition = Union[Match, MatchAny, Range, Exists, "Filter"]
FieldCondition = (Match, MatchAny, Range, Exists)


@dataclass(frozen=True)
class Filter:
    """must: all hold; should: at least one holds when non-empty; must_not: none holds.

    Lists are stored as tuples, so filters are hashable and immutable. Construction checks the
    nesting depth (MAX_DEPTH) and the number of conditions (MAX_CONDITIONS).
    """

    must: tuple[Condition, ...] = field(default_factory=tuple)
    should: tuple[Condition, ...] = field(default_factory=tuple)
    must_not: tuple[Condition, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        depth, size = 1, 0
        for clause in ("must", "should", "must_not"):
            conditions = getattr(self, clause)
            if isinstance(conditions, (Filter, *FieldCondition)):
                conditions = (conditions,)  # a lone condition is a list of one
            if isinstance(conditions, (str, bytes, Mapping)) or not isinstance(conditions, Iterable):
                raise InvalidArgument(f"filter {clause} must be a list of conditions, got {type(conditions).__name__}")
            conditions = tuple(conditions)
            for i, condition in enumerate(conditions):
                if isinstance(condition, Filter):
                    depth = max(depth, condition.depth + 1)
                    size += condition.size + 1
                elif isinstance(condition, FieldCondition):
                    size += 1
                else:
                    raise InvalidArgument(
                        f"filter {clause}[{i}] is not a condition: {type(condition).__name__}"
                    )
            object.__setattr__(self, clause, conditions)
        if depth > MAX_DEPTH:
            raise InvalidArgument(f"filter nests {depth} levels deep, the limit is {MAX_DEPTH}")
        if size > MAX_CONDITIONS:
            raise InvalidArgument(f"filter has {size} conditions, the limit is {MAX_CONDITIONS}")
        object.__setattr__(self, "_depth", depth)
        object.__setattr__(self, "_size", size)

    @property
    def depth(self) -> int:
        """Nesting depth: 1 for a filter without nested filters."""
        return self._depth  # type: ignore[attr-defined]

    @property
    def size(self) -> int:
        """Number of conditions in the whole tree (a nested filter counts itself and its own)."""
        return self._size  # type: ignore[attr-defined]

    @property
    def is_empty(self) -> bool:
        """True for a filter without conditions, which matches everything."""
        return not (self.must or self.should or self.must_not)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; empty clauses are left out."""
        return {
            clause: [condition.to_dict() for condition in getattr(self, clause)]
            for clause in ("must", "should", "must_not")
            if getattr(self, clause)
        }

    @classmethod
    def from_dict(cls, data: Any) -> Filter:
        """Parse the JSON form, raising InvalidArgument that names the offending place and field."""
        return _filter_from_dict(data, "filter", 1)


# --------------------------------------------------------------------------- parsing
_CLAUSES = ("must", "should", "must_not")


def _filter_from_dict(data: Any, where: str, depth: int) -> Filter:
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"{where} must be a JSON object, got {type(data).__name__}")
    if depth > MAX_DEPTH:
        raise InvalidArgument(f"{where}: filter nests more than {MAX_DEPTH} levels deep")
    unknown = set(data) - set(_CLAUSES)
    if unknown:
        raise InvalidArgument(f"{where}: unknown filter field(s) {', '.join(sorted(map(str, unknown)))}")
    clauses: dict[str, list[Condition]] = {}
    for clause in _CLAUSES:
        items = data.get(clause) or []
        if isinstance(items, Mapping):
            items = [items]  # Qdrant accepts a lone condition
        if not isinstance(items, list):
            raise InvalidArgument(f"{where}.{clause} must be a list of conditions, got {type(items).__name__}")
        clauses[clause] = [_condition_from_dict(item, f"{where}.{clause}[{i}]", depth) for i, item in enumerate(items)]
    try:
        return Filter(**clauses)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None


def _condition_from_dict(data: Any, where: str, depth: int) -> Condition:
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"{where} must be a JSON object, got {type(data).__name__}")
    if "key" not in data:
        if set(data) & set(_CLAUSES) or not data:
            return _filter_from_dict(data, where, depth + 1)
        raise InvalidArgument(f"{where}: a condition needs a key (or must/should/must_not for a nested filter)")
    key = data["key"]
    kinds = [kind for kind in ("match", "range", "exists") if kind in data]
    unknown = set(data) - {"key", "match", "range", "exists"}
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise InvalidArgument(f"{where} (field {key!r}): unknown condition field(s) {names}")
    if len(kinds) != 1:
        raise InvalidArgument(f"{where} (field {key!r}): a condition needs exactly one of match, range, exists")
    body = data[kinds[0]]
    try:
        if kinds[0] == "match":
            if not isinstance(body, Mapping) or len(body) != 1 or not set(body) <= {"value", "any"}:
                raise InvalidArgument(f"field {key!r}: match must be {{\"value\": v}} or {{\"any\": [v, ...]}}")
            if "value" in body:
                return Match(key, body["value"])
            if not isinstance(body["any"], list):
                raise InvalidArgument(f"field {key!r}: match any needs a list of values")
            return MatchAny(key, tuple(body["any"]))
        if kinds[0] == "range":
            if not isinstance(body, Mapping):
                raise InvalidArgument(f"field {key!r}: range must be an object of lt, lte, gt, gte")
            unknown = set(body) - {"lt", "lte", "gt", "gte"}
            if unknown:
                raise InvalidArgument(f"field {key!r}: unknown range bound(s) {', '.join(sorted(map(str, unknown)))}")
            return Range(key, **body)
        if body is not True:
            raise InvalidArgument(f"field {key!r}: exists must be true (use must_not for absence)")
        return Exists(key)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None


def as_filter(value: Filter | Mapping[str, Any] | None) -> Filter | None:
    """A Filter from a Filter, its JSON form or None; an empty filter becomes None (no filtering)."""
    if value is None:
        return None
    result = value if isinstance(value, Filter) else Filter.from_dict(value)
    return None if result.is_empty else result


def filter_keys(flt: Filter) -> frozenset[str]:
    """Every field key a filter reads, nested filters included."""
    keys: set[str] = set()
    for clause in _CLAUSES:
        for condition in getattr(flt, clause):
            if isinstance(condition, Filter):
                keys |= filter_keys(condition)
            else:
                keys.add(condition.key)
    return frozenset(keys)


# --------------------------------------------------------------------------- reference evaluator
def condition_matches(condition: Condition, metadata: Mapping[str, Any]) -> bool:
    """Whether one condition holds for one document's metadata (the reference semantics)."""
    if isinstance(condition, Filter):
        return matches(condition, metadata)
    values = field_values(metadata, condition.key)
    if isinstance(condition, Exists):
        return bool(values)
    if isinstance(condition, Match):
        wanted = value_key(condition.value)
        return any(value_key(v) == wanted for v in values)
    if isinstance(condition, MatchAny):
        allowed = {value_key(v) for v in condition.values}
        return any(value_key(v) in allowed for v in values)
    numbers = (range_value(v) for v in values)
    return any(n is not None and condition.contains(n) for n in numbers)


def matches(flt: Filter | None, metadata: Mapping[str, Any] | None) -> bool:
    """Brute-force evaluation of `flt` on one document: the reference the indexes are tested against.

    None (no filter) matches everything; metadata None is the empty object.
    """
    if flt is None:
        return True
    metadata = metadata or {}
    if not all(condition_matches(c, metadata) for c in flt.must):
        return False
    if flt.should and not any(condition_matches(c, metadata) for c in flt.should):
        return False
    return not any(condition_matches(c, metadata) for c in flt.must_not)


def matches_many(flt: Filter | None, metadatas: Sequence[Mapping[str, Any] | None]) -> list[bool]:
    """`matches` over a list of documents (the unindexed fallback of the payload index)."""
    return [matches(flt, metadata) for metadata in metadatas]
