"""Malformed input is INVALID_ARGUMENT naming the problem: never UNKNOWN, INTERNAL or a raw exception.

In Python (a `lamina.errors` class) and over gRPC (the status code), including requests whose bytes
do not decode; a hypothesis fuzz test sends random requests through a real server and checks that
every reply is OK or a documented status, the server stays up, and rejected writes store nothing.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lamina.index.errors import InvalidArgument
from lamina.index.types import MAX_TEXT_BYTES
from lamina.retrieval.query import SearchRequest, Stage
from lamina.service.v1 import points_pb2, search_pb2

DOCUMENTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ALREADY_EXISTS}


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def coll(database):
    c = database.create_collection("c", encoder="hashing")
    c.upsert([{"id": "1", "text": "wing lift"}], wait=True)
    return c


def raw_call(target: str, method: str, payload: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            call(payload, timeout=10)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            return exc.code(), exc.details()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def deep_struct(depth: int) -> bytes:
    """A google.protobuf.Struct nested `depth` levels, built as wire bytes (the library refuses to)."""
    value = _field(1, b"x")  # Value.string_value would be 3; any leaf will do: Value{null_value} via field 1
    for _ in range(depth):
        entry = _field(1, b"a") + _field(2, _field(5, value))  # map entry {key, Value{struct_value}}
        value = _field(1, entry)
    return value


def test_requests_that_do_not_decode_are_invalid_argument(server, coll):
    method = "/lamina.v1.Search/Search"
    bad_utf8 = _field(1, b"\xff\xfe")                               # collection: not UTF-8
    corrupt = b"\xff\xff\xff\xff"
    for payload in (bad_utf8, corrupt):
        code, details = raw_call(server.target, method, payload)
        assert code is grpc.StatusCode.INVALID_ARGUMENT and "does not decode as Search request" in details
    point = _field(1, b"p") + _field(4, deep_struct(300))               # Point.metadata nested 300 levels
    upsert = _field(1, b"c") + _field(2, point)
    code, details = raw_call(server.target, "/lamina.v1.Points/Upsert", upsert)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert coll.count() == 1


def test_bad_points_fail_their_row_with_a_named_reason(coll):
    results = coll.upsert([
        {"id": "\ud800", "text": "x"},                                 # a lone surrogate
        {"id": "deep", "text": "x", "metadata": nested(1000)},
        {"id": "big", "vector": np.full(32, 3.4e38, dtype=np.float32)},
        {"id": "long", "text": "x" * (MAX_TEXT_BYTES + 1)},
        {"id": "x" * 10_000_000, "text": "y"},
        {"id": "fine", "text": "drag"},
    ])
    errors = [r.error for r in results]
    assert "not valid Unicode" in errors[0]
    assert "nested deeper than 32 levels" in errors[1]
    assert "would overflow float32" in errors[2]
    assert f"the limit is {MAX_TEXT_BYTES:,}" in errors[3]
    assert "exceeds 512 bytes" in errors[4] and len(errors[4]) < 300   # the id is not echoed whole
    assert errors[5] is None and coll.count() == 2
    with pytest.raises(InvalidArgument, match="not valid Unicode"):
        coll.get(["\ud800"])


def test_an_encoder_that_is_not_a_model_is_refused_at_create(tmp_path):
    from lamina.retrieval.collection import Database

    with Database(tmp_path / "real") as db:  # the real encoder loader: it never reaches a model load
        with pytest.raises(InvalidArgument, match="holds no model"):
            db.create_collection("e", encoder="/etc")
        with pytest.raises(InvalidArgument, match="holds no model"):
            db.create_collection("e", 8, encoder=str(tmp_path))  # a given dim: checked all the same
        assert [c.name for c in db.list_collections()] == []


def test_messages_name_the_right_field_and_value(coll):
    with pytest.raises(InvalidArgument, match="term id 4000000000"):
        coll.query(SearchRequest({4_000_000_000: 1.0}, 5, (Stage("sparse"),)))
    with pytest.raises(InvalidArgument, match="dense stage limit must be a positive integer, got 0"):
        Stage("dense", limit=0)
    with pytest.raises(InvalidArgument, match="query text has at least"):
        coll.search("w" * (MAX_TEXT_BYTES + 1))


def test_over_grpc_the_same_rows_fail_and_nothing_is_stored(client, coll):
    results = client.upsert("c", [{"id": "big", "vector": [3.4e38] * 32}, {"id": "ok", "text": "flow"}])
    assert [r.ok for r in results] == [False, True] and "overflow" in results[0].error
    message = search_pb2.SearchRequest(collection="c", k=5)
    message.vector.sparse.indices.append(4_000_000_000)
    message.vector.sparse.values.append(1.0)
    with pytest.raises(InvalidArgument, match="term id 4000000000 is outside"):
        client._search_message(message)


@st.composite
def search_messages(draw):
    message = search_pb2.SearchRequest(collection=draw(st.sampled_from(["c", "nope", ""])))
    kind = draw(st.sampled_from(["text", "dense", "sparse", "none"]))
    if kind == "text":
        message.text = draw(st.text(max_size=50))
    elif kind == "dense":
        message.vector.dense.values.extend(draw(st.lists(st.floats(width=32), max_size=40)))
    elif kind == "sparse":
        terms = draw(st.lists(st.integers(0, 2**32 - 1), max_size=5))
        message.vector.sparse.indices.extend(terms)
        message.vector.sparse.values.extend(draw(st.lists(st.floats(width=32), min_size=len(terms),
                                                          max_size=len(terms))))
    if draw(st.booleans()):
        message.k = draw(st.integers(-5, 20_000))
    for _ in range(draw(st.integers(0, 3))):
        message.prefetch.add(kind=draw(st.integers(0, 3)), limit=draw(st.integers(0, 20_000)))
    if draw(st.booleans()):
        cond = message.filter.must.add()
        cond.field.key = draw(st.sampled_from(["year", "", "x" * 300]))
    return message


@st.composite
def upsert_messages(draw):
    message = points_pb2.UpsertPointsRequest(collection="c")
    for _ in range(draw(st.integers(0, 4))):
        point = message.points.add(id=draw(st.text(max_size=20)))
        if draw(st.booleans()):
            point.text = draw(st.text(max_size=30))
        if draw(st.booleans()):
            point.vector.dense.values.extend(draw(st.lists(st.floats(width=32), max_size=40)))
        if draw(st.booleans()):
            point.metadata.update({draw(st.text(max_size=5)): draw(st.one_of(st.floats(), st.text(max_size=5)))})
    return message


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(search=search_messages(), upsert=upsert_messages(), noise=st.binary(max_size=40))
def test_fuzzed_requests_get_documented_statuses_and_rejected_writes_store_nothing(server, coll, search, upsert,
                                                                                  noise):
    with grpc.insecure_channel(server.target) as channel:
        search_call = channel.unary_unary("/lamina.v1.Search/Search", request_serializer=lambda m: m,
                                          response_deserializer=lambda b: b)
        upsert_call = channel.unary_unary("/lamina.v1.Points/Upsert", request_serializer=lambda m: m,
                                          response_deserializer=points_pb2.UpsertPointsResponse.FromString)
        for payload in (search.SerializeToString(), noise):
            try:
                search_call(payload, timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() in DOCUMENTED, (exc.code(), exc.details())
        before = coll.count()
        try:
            response = upsert_call(upsert.SerializeToString(), timeout=10)
            written = {r.index for r in response.results if not r.error}
            ids = {upsert.points[i].id for i in written}
            assert coll.count() <= before + len(ids)
        except grpc.RpcError as exc:
            assert exc.code() in DOCUMENTED, (exc.code(), exc.details())
            assert coll.count() == before  # a rejected batch writes nothing
