"""The facet tool: JSON-able answers equal to Collection.facet, errors told back, the OpenAI shape."""

import json

import numpy as np
import pytest

from lamina.rag.tools import FACET_TOOL, Faceted, call_facet_tool, describe, facet_tool
from lamina.retrieval.collection import Database

PAYLOAD = {"topic": "keyword", "year": "numeric"}


@pytest.fixture
def db(tmp_path):
    with Database(tmp_path) as database:
        coll = database.create_collection("c", 4, encoder=None, sparse=False, payload=PAYLOAD)
        coll.upsert([{"id": f"p{i}", "vector": np.ones(4), "tenant": ["acme", "globex"][i % 2],
                      "metadata": {"topic": ["aero", "flow", "heat"][i % 3], "year": 1950 + i}} for i in range(30)])
        yield database


def test_facet_tool_answers_as_collection_facet(db):
    coll = db.collection("c")
    assert isinstance(coll, Faceted)
    answer = facet_tool(coll, "topic", limit=2, filter={"must": [{"key": "year", "range": {"lt": 1960}}]})
    assert answer == coll.facet("topic", limit=2, filter={"must": [{"key": "year", "range": {"lt": 1960}}]}).to_dict()
    assert answer["counts"] == [{"value": "aero", "count": 4}, {"value": "flow", "count": 3}]
    assert json.loads(json.dumps(answer)) == answer  # JSON-able as it is
    years = facet_tool(db, "year", collection="c", bins=3, tenant="acme")  # anything with .collection(name)
    assert years["stats"] == {"count": 15, "min": 1950.0, "max": 1978.0,
                              "histogram": {"edges": [1950.0, 1959 + 1 / 3, 1968 + 2 / 3, 1978.0], "counts": [5, 5, 5]}}


def test_bad_arguments_are_told_back(db):
    coll = db.collection("c")
    assert "not a declared payload field" in facet_tool(coll, "colour")["error"]
    assert "unknown facet option(s) colour" in facet_tool(coll, "topic", colour=1)["error"]
    assert facet_tool(db, "topic", collection="nope")["error"].startswith("NotFound")
    assert "not JSON" in call_facet_tool(coll, "{field: topic")["error"]
    assert "string 'field'" in call_facet_tool(coll, {"limit": 3})["error"]
    assert "collection" in call_facet_tool(db, {"field": "topic", "collection": "other"}, collection="c")["error"]


def test_a_model_call_runs_under_the_pipelines_tenant(db):
    answer = call_facet_tool(db, '{"field": "topic", "tenant": "globex"}', collection="c", tenant="acme")
    assert answer["documents"] == 15 == db.collection("c").count(tenant="acme")
    assert answer == db.collection("c").facet("topic", tenant="acme").to_dict()


def test_describe_is_an_openai_tool():
    tool = describe(PAYLOAD)
    assert tool["type"] == "function" and tool["function"]["name"] == FACET_TOOL
    params = tool["function"]["parameters"]
    assert params["required"] == ["field"] and params["properties"]["field"]["enum"] == ["topic", "year"]
    assert "topic (keyword)" in tool["function"]["description"]
    assert "enum" not in describe()["function"]["parameters"]["properties"]["field"]
    assert json.loads(json.dumps(tool)) == tool
