"""`lamina facet` in-process and against a server, text and JSON, and its bad arguments."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lamina.cli import main
from lamina.retrieval.collection import Database

from tests.service.conftest import ServerThread


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "data"
    with Database(data) as db:
        coll = db.create_collection("c", 4, encoder=None, sparse=False, payload={"topic": "keyword", "year": "numeric"})
        coll.upsert([{"id": f"p{i}", "vector": np.ones(4), "tenant": ["acme", "globex"][i % 2],
                      "metadata": {"topic": ["aero", "flow", "heat", "aero"][i % 4], "year": 1950 + i}}
                     for i in range(20)])
    return data


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_keyword_facet_text_and_json(data):
    out = run(["facet", "--collection", "c", "topic", "--data-dir", data])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == ['"aero"\t10', '"flow"\t5', '"heat"\t5', "20 documents, 3 distinct values of topic"]
    flt = json.dumps({"must": [{"key": "year", "range": {"lt": 1960}}]})
    out = run(["facet", "--collection", "c", "topic", "--limit", "1", "--filter", flt, "--tenant", "acme", "--json",
               "--data-dir", data])
    answer = json.loads(out.output)
    assert answer["counts"] == [{"value": "aero", "count": 3}] and answer["documents"] == 5  # acme: even ids and "time_ms" in answer


def test_numeric_facet_histogram(data):
    out = run(["facet", "--collection", "c", "year", "--bins", "2", "--data-dir", data])
    assert out.output.splitlines() == ["[1950, 1959.5)\t10", "[1959.5, 1969]\t10",
                                       "20 documents, 20 with a value of year: min 1950, max 1969"]
    out = run(["facet", "--collection", "c", "year", "--edges", "1900,1955,2000", "--json", "--data-dir", data])
    assert json.loads(out.output)["stats"]["histogram"] == {"edges": [1900.0, 1955.0, 2000.0], "counts": [5, 15]}


def test_bad_arguments_are_one_line_errors(data):
    out = CliRunner().invoke(main, ["facet", "--collection", "c", "colour", "--data-dir", str(data)])
    assert out.exit_code != 0 and "InvalidArgument: field 'colour' is not a declared payload field" in out.output
    out = CliRunner().invoke(main, ["facet", "--collection", "c", "year", "--bins", "2", "--edges", "1,2",
                                    "--data-dir", str(data)])
    assert out.exit_code != 0 and "not both" in out.output


def test_facet_against_a_server(data):
    with Database(data) as db:
        server = ServerThread(db, grace=0.5).start()
        try:
            remote = run(["facet", "--collection", "c", "topic", "--json", "--target", server.target, "--tenant", "globex"])
            local = db.collection("c").facet("topic", tenant="globex").to_dict()
        finally:
            server.stop()
    answer = json.loads(remote.output)
    answer.pop("time_ms")
    assert answer == local
