"""The HTTP/JSON API (`lamina.service.http`): the JSON mapping, status codes, streaming, OpenAPI and /metrics.

Tenant isolation over HTTP is `tests/service/test_isolation.py`, whose matrix runs over both transports.
"""

from __future__ import annotations

import json

import httpx
import pytest

from lamina.service import gateway
from lamina.service.auth import KeyStore
from lamina.service.client import Client
from lamina.service.rag import GeneratorPool

from tests.rag.conftest import EchoGenerator

TEXTS = ["the wing stalls at high angle of attack", "boundary layer flow over a flat plate",
         "shock waves in supersonic flow", "heat transfer in laminar flow"]


@pytest.fixture
def http(start_server, database):
    coll = database.create_collection("docs", encoder="hashing", payload={"year": "numeric"})
    coll.upsert([{"id": f"d{i}", "text": t, "metadata": {"year": 1950 + i}} for i, t in enumerate(TEXTS)], wait=True)
    server = start_server(http_port=0, generators=GeneratorPool({"echo": "echo"}, default="echo",
                                                                loader=lambda spec: EchoGenerator()))
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


def post(http, method, body=None, headers=None):
    content = body if isinstance(body, (str, bytes)) else json.dumps(body or {})
    return http.post(f"/v1/{method}", content=content, headers={"content-type": "application/json", **(headers or {})})


def test_unary_calls_use_the_json_mapping(http):
    listed = post(http, "Collections/List").json()
    assert [c["name"] for c in listed["collections"]] == ["docs"]
    got = post(http, "Collections/Get", {"name": "docs"}).json()
    assert got["count"] == "4"  # int64 is a JSON string in protobuf's mapping
    hits = post(http, "Search/Search", {"collection": "docs", "text": "supersonic shock", "k": 2}).json()["hits"]
    assert hits[0]["id"] == "d2" and len(hits) == 2
    # lowerCamelCase names are accepted too
    points = post(http, "Points/Get", {"collection": "docs", "ids": ["d1"], "withVectors": False}).json()["points"]
    assert [p["id"] for p in points] == ["d1"] and points[0]["text"] == TEXTS[1]


def test_search_explain_and_filter_over_http(http, database):
    body = {"collection": "docs", "text": "flow", "k": 10, "explain": True,
            "filter": {"must": [{"field": {"key": "year", "range": {"gte": {"number": 1952}}}}]}}
    reply = post(http, "Search/Search", body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert {h["id"] for h in data["hits"]} <= {"d2", "d3"} and data["hits"]
    assert [s["kind"] for s in data["explain"]["stages"]] == ["dense"]
    local = database.collection("docs").search("flow", 10, filter={"must": [{"key": "year", "range": {"gte": 1952}}]})
    assert [h["id"] for h in data["hits"]] == [h.id for h in local]


@pytest.mark.parametrize("body, needle", [
    ("{not json", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"collection": "docs", "text": "x", "k": "many"}, "k"),
    ({"collection": "docs", "colour": "red"}, "colour"),
])
def test_bad_json_is_400_naming_the_problem(http, body, needle):
    reply = post(http, "Search/Search", body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT" and needle in error["message"]


def test_status_codes_map_to_http(http):
    cases = [
        ("Collections/Get", {"name": "nope"}, 404, "NOT_FOUND"),
        ("Collections/Create", {"name": "docs", "dim": 8}, 409, "ALREADY_EXISTS"),
        ("Search/Search", {"collection": "docs", "text": "wing", "k": 0}, 400, "INVALID_ARGUMENT"),
        ("Nope/Nothing", {}, 501, "UNIMPLEMENTED"),
    ]
    for method, body, status, code in cases:
        reply = post(http, method, body)
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), (method, reply.text)


def test_auth_status_codes(start_server, database):
    database.create_collection("docs", 8, encoder=None)
    keys = KeyStore(database.store)
    _, reader = keys.create(rights={"docs": {"read"}})
    server = start_server(http_port=0, auth="on")
    with httpx.Client(base_url=server.url) as http:
        assert post(http, "Collections/List").status_code == 401
        bad = post(http, "Collections/List", headers={"authorization": "Bearer lk_nope_nope"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "UNAUTHENTICATED"
        ok = post(http, "Collections/List", headers={"authorization": f"Bearer {reader}"})
        assert ok.status_code == 200 and [c["name"] for c in ok.json()["collections"]] == ["docs"]
        denied = post(http, "Collections/Drop", {"name": "docs"}, headers={"authorization": f"Bearer {reader}"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "PERMISSION_DENIED"
        assert post(http, "Collections/List", headers={"x-api-key": reader}).status_code == 200
        assert http.get("/openapi.json").status_code == 200  # public, like reflection
        scraped = http.get("/metrics").text  # refusals are counted as rejected, by reason
        assert 'lamina_rejected_requests_total{method="/lamina.v1.Collections/List",reason="unauthenticated"} 2.0' \
            in scraped
        assert 'lamina_rejected_requests_total{method="/lamina.v1.Collections/Drop",reason="permission_denied"} 1.0' \
            in scraped


def test_answer_streams_ndjson(http):
    body = {"search": {"collection": "docs", "text": "supersonic shock", "k": 2}, "generator": "echo"}
    with http.stream("POST", "/v1/Rag/Answer", content=json.dumps(body)) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in reply.iter_lines() if line]
    kinds = [next(k for k in ("citations", "token", "done") if k in e) for e in events]
    assert kinds[0] == "citations" and kinds[-1] == "done" and "token" in kinds
    assert events[0]["citations"]["citations"][0]["chunk_id"] == "d2"
    assert events[-1]["done"]["answer"] == "".join(e["token"] for e in events if "token" in e)
    refused = post(http, "Rag/Answer", {"search": {"collection": "nope", "text": "x"}})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "NOT_FOUND"


def test_python_client_over_http(http, start_server):
    url = str(http.base_url).rstrip("/")
    with Client(url) as client:
        assert [c.name for c in client.list_collections()] == ["docs"]
        assert client.search("docs", "supersonic shock", k=1)[0].id == "d2"
        assert client.answer("docs", "supersonic shock", k=2).citations[0].chunk_id == "d2"
        from lamina.index.errors import NotFound

        with pytest.raises(NotFound):
            client.get_collection("nope")


def test_openapi_lists_every_method(http):
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {f"/v1/{name}" for name in gateway.METHODS}
    assert {"Collections/Create", "Points/Upsert", "Search/Search", "Rag/Answer"} <= set(gateway.METHODS)
    schemas = doc["components"]["schemas"]
    search = schemas["lamina.v1.SearchRequest"]["properties"]
    assert search["k"]["type"] == "integer" and search["filter"]["$ref"].endswith("lamina.v1.Filter")
    for path in doc["paths"].values():  # every $ref resolves
        for ref in _refs(path):
            assert ref.rpartition("/")[2] in schemas
    answer = doc["paths"]["/v1/Rag/Answer"]["post"]["responses"]["200"]["content"]
    assert "application/x-ndjson" in answer


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_metrics_move_with_requests(http):
    def scrape():
        reply = http.get("/metrics")
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
        return reply.text

    def value(text, name, **labels):
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in text.splitlines():
            if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0 if want else None

    before = scrape()
    search = "/lamina.v1.Search/Search"
    hybrid = [{"kind": "STAGE_KIND_DENSE"}, {"kind": "STAGE_KIND_SPARSE"}]
    for body in ({"collection": "docs", "text": "wing", "k": 2, "prefetch": hybrid}, {"collection": "docs", "text": "wing"}):
        assert post(http, "Search/Search", body).status_code == 200
    post(http, "Collections/Get", {"name": "nope"})
    post(http, "Search/Search", "{not json")
    after = scrape()
    assert value(after, "lamina_http_requests_total", method="Search/Search", status="400") == 1
    assert value(after, "lamina_http_requests_total", method="Search/Search", status="200") == 2
    assert value(after, "lamina_requests_total", method=search, code="OK") == \
        value(before, "lamina_requests_total", method=search, code="OK") + 2
    assert value(after, "lamina_requests_total", method="/lamina.v1.Collections/Get", code="NOT_FOUND") == 1
    assert value(after, "lamina_request_seconds_count", method=search) == 2
    assert value(after, "lamina_search_stage_seconds_count", collection="docs", stage="dense") == 2
    assert value(after, "lamina_search_stage_seconds_count", collection="docs", stage="sparse") == 1
    assert value(after, "lamina_search_stage_seconds_count", collection="docs", stage="total") == 2
    assert value(after, "lamina_collection_points", collection="docs") == 4
    assert value(after, "lamina_index_memory_bytes", collection="docs", index="dense") > 0
    assert value(after, "lamina_writes_since_snapshot", collection="docs") == 4
