"""Domain types survive a trip through their protobuf messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lamina.index.errors import InvalidArgument
from lamina.index.types import CollectionConfig, Document, GraphConfig, Hit, IndexConfig, RowResult
from lamina.service import convert
from lamina.service.v1 import common_pb2 as pb


@pytest.mark.parametrize("config", [
    CollectionConfig("plain", 8),
    CollectionConfig("vectors-only", 3, metric="l2", encoder=None),
    CollectionConfig("hnsw", 384, index=IndexConfig(kind="hnsw", hnsw_m=16, ef_search=128, gpu=False)),
    CollectionConfig("ivf", 16, index=IndexConfig(kind="ivf", nlist=0, nprobe=4)),
    CollectionConfig("clustered", 8, payload={"day": "numeric", "kind": "keyword"}, clustering_key="day"),
    CollectionConfig("graph", 8, graph=GraphConfig()),
    CollectionConfig("graph-tuned", 8, graph=GraphConfig(extractor="regex", synonym_threshold=0.65, max_cooc=0,
                                                         cooc_weight=1.0)),
])
def test_collection_config_round_trip(config):
    message = convert.collection_config_to_proto(config)
    assert convert.collection_config_from_proto(pb.CollectionConfig.FromString(message.SerializeToString())) == config


def test_unset_graph_fields_take_the_domain_defaults_and_bad_ones_are_named():
    assert convert.graph_config_from_proto(pb.GraphConfig()) == GraphConfig()
    assert convert.graph_config_from_proto(pb.GraphConfig(max_cooc=3)) == GraphConfig(max_cooc=3)
    with pytest.raises(InvalidArgument, match="graph extractor must be spacy or regex, got 'llm'"):
        convert.graph_config_from_proto(pb.GraphConfig(extractor="llm"))
    with pytest.raises(InvalidArgument, match="graph max_cooc must be an integer in \\[0, 64\\], got 65"):
        convert.graph_config_from_proto(pb.GraphConfig(max_cooc=65))


def test_unset_index_fields_take_the_domain_defaults():
    assert convert.index_config_from_proto(pb.IndexConfig()) == IndexConfig()
    assert convert.index_config_from_proto(pb.IndexConfig(kind=pb.INDEX_KIND_HNSW, ef_search=7)) == IndexConfig(
        kind="hnsw", ef_search=7)
    assert convert.metric_from_proto(pb.METRIC_UNSPECIFIED) == "ip"


def test_unknown_enum_values_are_invalid_arguments():
    with pytest.raises(InvalidArgument, match="metric"):
        convert.metric_from_proto(99)
    with pytest.raises(InvalidArgument, match="index kind"):
        convert.index_config_from_proto(pb.IndexConfig(kind=99))
    with pytest.raises(InvalidArgument, match="unknown metric"):
        convert.metric_to_proto("cosine")


def test_metadata_keeps_json_types_and_reads_integral_numbers_as_ints():
    metadata = {"n": 2, "neg": -7, "f": 1.5, "s": "x", "b": True, "none": None,
                "list": [1, 2.25, "a", [False]], "nested": {"year": 1999, "tags": []},
                "numpy": np.int64(4), "np_float": np.float32(0.5), "tuple": (1, 2)}
    back = convert.metadata_from_proto(convert.metadata_to_proto(metadata))
    assert back == {**metadata, "numpy": 4, "np_float": 0.5, "tuple": [1, 2]}
    assert type(back["n"]) is int and type(back["nested"]["year"]) is int and type(back["f"]) is float
    assert type(back["b"]) is bool
    # the documented price: an integral float reads back as an int
    assert convert.metadata_from_proto(convert.metadata_to_proto({"x": 3.0})) == {"x": 3}


def test_metadata_rejects_what_json_cannot_carry():
    with pytest.raises(InvalidArgument, match="exceeds 2\\*\\*53"):
        convert.metadata_to_proto({"big": 2**60})
    with pytest.raises(InvalidArgument, match="not a string"):
        convert.metadata_to_proto({1: "x"})
    with pytest.raises(InvalidArgument, match="not a string"):
        convert.metadata_to_proto({"a": {2: "x"}})
    with pytest.raises(InvalidArgument, match="unsupported type set"):
        convert.metadata_to_proto({"a": {1, 2}})
    with pytest.raises(InvalidArgument, match="JSON object"):
        convert.metadata_to_proto(["a"])  # type: ignore[arg-type]
    # stored metadata is sent rounded rather than refused
    assert convert.metadata_from_proto(convert.metadata_to_proto({"big": 2**60}, exact=False)) == {"big": float(2**60)}


def test_non_finite_numbers_travel_for_the_server_to_judge():
    back = convert.metadata_from_proto(convert.metadata_to_proto({"x": math.nan, "y": math.inf}))
    assert math.isnan(back["x"]) and back["y"] == math.inf


def test_document_round_trip():
    doc = Document("a", "some text", np.array([0.5, -1, 2], dtype=np.float32), {"k": [1, "v"]}, "tenant-1")
    back = convert.document_from_proto(pb.Point.FromString(convert.document_to_proto(doc).SerializeToString()))
    assert (back.id, back.text, back.metadata, back.tenant) == (doc.id, doc.text, doc.metadata, doc.tenant)
    assert back.vector.dtype == np.float32 and np.array_equal(back.vector, doc.vector)

    bare = convert.document_from_proto(convert.document_to_proto({"id": "b", "text": ""}))
    assert bare == Document("b", "", None, {}, None)  # "" stays a text, absent stays None


def test_mapping_rows_take_the_in_process_keys():
    doc = convert.as_document({"_id": "x", "title": "Title", "text": "body", "metadata": None})
    assert (doc.id, doc.text, doc.metadata) == ("x", "Title body", {})
    with pytest.raises(InvalidArgument, match="unknown point field"):
        convert.document_to_proto({"id": "x", "txt": "typo"})


@pytest.mark.parametrize("row, message", [
    ({"id": 5, "text": "t"}, "document id"),
    ({"id": "x", "text": 3}, "text must be a string"),
    ({"id": "x", "text": "t", "tenant": 1}, "tenant must be a string"),
    ({"id": "x", "vector": ["a", "b"]}, "not numeric"),
    ({"id": "x", "vector": np.zeros((2, 2))}, "one-dimensional"),
    ("not a row", "Document or a mapping"),
])
def test_rows_the_wire_cannot_carry(row, message):
    with pytest.raises(InvalidArgument, match=message):
        convert.document_to_proto(row)


def test_a_vector_without_a_kind_is_invalid():
    with pytest.raises(InvalidArgument, match="no kind"):
        convert.document_from_proto(pb.Point(id="x", vector=pb.Vector()))


def test_hits_distinguish_no_payload_from_empty_metadata():
    for hit in (Hit("a", 0.5), Hit("b", -2.0, "text", {}, None), Hit("c", 1.25, None, {"n": 1}, "t")):
        assert convert.hit_from_proto(pb.Hit.FromString(convert.hit_to_proto(hit).SerializeToString())) == hit


def test_row_results_round_trip():
    for result in (RowResult(0, "a"), RowResult(3, "b", "bad vector"), RowResult(4, None, "no id")):
        assert convert.row_result_from_proto(convert.row_result_to_proto(result)) == result
    # a row rejected for a non-string id still reports its position
    assert convert.row_result_from_proto(convert.row_result_to_proto(RowResult(1, 7, "id"))) == RowResult(1, None, "id")  # type: ignore[arg-type]
