"""The Facet RPC end to end: the remote answer is the in-process one, and bad requests are INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.index.facets import FacetCount, FacetResult, NumericStats
from lamina.service import convert
from lamina.service.v1 import points_pb2, points_pb2_grpc

from tests.service.test_grpc_api import channel, status_of  # noqa: F401 - a fixture

PAYLOAD = {"topic": "keyword", "year": "numeric", "flag": "keyword"}


@pytest.fixture
def filled(client, database):
    client.create_collection("c", 4, encoder=None, payload=PAYLOAD)
    rows = [{"id": f"p{i}", "vector": np.ones(4), "tenant": ["acme", "globex"][i % 2],
             "metadata": {"topic": ["aero", "flow", 7, 2.5][i % 4], "flag": i % 3 == 0,
                          "year": [1950 + i % 9, "1957-06-01"][i % 5 == 0]}} for i in range(80)]
    client.upsert("c", rows, wait=True)
    client.delete("c", [f"p{i}" for i in range(0, 80, 7)], wait=True)
    return database.collection("c")


@pytest.mark.parametrize("field, options", [
    ("topic", {}),
    ("topic", {"limit": 2, "tenant": "acme"}),
    ("flag", {"filter": {"must": [{"key": "year", "range": {"gte": 1953}}]}}),
    ("year", {}),
    ("year", {"bins": 4, "tenant": "globex"}),
    ("year", {"bins": [1950, 1952.5, 1955, 1.8e9], "filter": {"must": [{"key": "topic", "match": {"value": 7}}]}}),
    ("year", {"bins": 3, "filter": {"must": [{"key": "topic", "match": {"value": "none"}}]}}),  # nothing matches
])
def test_remote_facet_equals_in_process(client, filled, field, options):
    remote = client.collection("c").facet(field, **options)
    local = filled.facet(field, **options)
    assert remote == local
    assert [type(c.value) for c in remote.counts] == [type(c.value) for c in local.counts]  # 7 stays an int
    assert remote.time_ms > 0


def test_bad_facet_requests_are_invalid_argument(client, filled, channel):
    facet = points_pb2_grpc.PointsStub(channel).Facet
    for request, message in [
        (points_pb2.FacetRequest(collection="c", field="colour"), "'colour' is not a declared payload field"),
        (points_pb2.FacetRequest(collection="c", field="year", kind=points_pb2.FACET_KIND_KEYWORD),
         "'year' is declared numeric"),
        (points_pb2.FacetRequest(collection="c", field="year", bins=3, edges=[0, 1]), "both bins and edges"),
        (points_pb2.FacetRequest(collection="c", field="year", edges=[1, 0]), "strictly increasing"),
        (points_pb2.FacetRequest(collection="c", field="topic", limit=0), "limit"),
        (points_pb2.FacetRequest(collection="c", field="topic", bins=2), "bins apply to numeric"),
    ]:
        code, details = status_of(facet, request)
        assert code is grpc.StatusCode.INVALID_ARGUMENT and message in details
    code, _ = status_of(facet, points_pb2.FacetRequest(collection="nope", field="topic"))
    assert code is grpc.StatusCode.NOT_FOUND
    with pytest.raises(InvalidArgument, match="declared fields: flag \\(keyword\\), topic \\(keyword\\), year"):
        client.facet("c", "colour")


def test_facet_messages_round_trip():
    keyword = FacetResult("k", "keyword", 9, (FacetCount(True, 4), FacetCount(7, 3), FacetCount(2.5, 2),
                                              FacetCount("x", 1), FacetCount(2**70, 1)), 5)
    back = convert.facet_result_from_proto(convert.facet_result_to_proto(keyword))
    assert [type(c.value) for c in back.counts] == [bool, int, float, str, float]  # beyond int64: a double
    assert back.counts[:4] == keyword.counts[:4] and back.counts[4].value == float(2**70)
    numeric = FacetResult("n", "numeric", 3, stats=NumericStats(2, -1.5, 4.0, (-2.0, 0.0, 4.0), (1, 1)))
    assert convert.facet_result_from_proto(convert.facet_result_to_proto(numeric)) == numeric
    empty = FacetResult("n", "numeric", 0, stats=NumericStats(0, None, None))
    assert convert.facet_result_from_proto(convert.facet_result_to_proto(empty)) == empty
    options = {"kind": "numeric", "limit": 3, "bins": [0.0, 1.0], "tenant": "acme",
               "filter": {"must": [{"key": "k", "match": {"value": "x"}}]}}
    got = convert.facet_request_from_proto(convert.facet_request_to_proto("c", "n", **options))
    assert got == {**options, "field": "n", "filter": convert.filter_from_proto(convert.filter_to_proto(options["filter"]))}
    got = convert.facet_request_from_proto(convert.facet_request_to_proto("c", "n", bins=4))
    assert (got["bins"], got["kind"], got["limit"], got["tenant"], got["filter"]) == (4, None, 10, None, None)
    for bad in ({"limit": -1}, {"bins": "ten"}, {"kind": "text"}):
        with pytest.raises(InvalidArgument):
            convert.facet_request_to_proto("c", "n", **bad)
