"""The gRPC API end to end: a real server on a free port, the Client, and raw stubs for status codes."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

from lamina.index.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from lamina.index.types import CollectionConfig, Document, GraphConfig, IndexConfig
from lamina.retrieval.collection import MAX_BATCH
from lamina.retrieval.query import SearchRequest
from lamina.service.client import Client, CollectionInfo, RemoteCollection
from lamina.service.status import ServiceError
from lamina.service.v1 import (
    collections_pb2,
    collections_pb2_grpc,
    common_pb2,
    points_pb2,
    points_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

DIM = 16


@pytest.fixture
def vectors():
    return np.random.default_rng(7).standard_normal((200, DIM)).astype(np.float32)


@pytest.fixture
def filled(client, vectors):
    """A flat L2 collection "c" holding `vectors` with ids "0".."199" and {"n": i} metadata."""
    client.create_collection("c", DIM, metric="l2", encoder=None)
    results = client.upsert("c", [{"id": str(i), "vector": v, "metadata": {"n": i}} for i, v in enumerate(vectors)],
                            wait=True)
    assert all(r.ok for r in results)
    return vectors


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.target) as ch:
        yield ch


def status_of(call, request) -> tuple[grpc.StatusCode, str]:
    """The status code and details a raw stub call fails with."""
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value.code(), info.value.details()


# ---------------------------------------------------------------------------- collections
def test_collections_round_trip(client):
    created = client.create_collection("vecs", 8, metric="l2", encoder=None, index={"kind": "hnsw", "ef_search": 32})
    assert created == CollectionConfig("vecs", 8, "l2", IndexConfig(kind="hnsw", ef_search=32), None)
    texts = client.create_collection("texts")  # the dimension comes from the (fake) encoder
    assert texts.dim == 32 and texts.encoder == "all-MiniLM-L6-v2" and texts.index == IndexConfig()

    clustered = client.create_collection("days", 8, encoder=None, payload={"day": "numeric"}, clustering_key="day")
    assert clustered.clustering_key == "day" and client.get_collection("days").config.clustering_key == "day"
    client.drop_collection("days")

    assert sorted(c.name for c in client.list_collections()) == ["texts", "vecs"]
    assert client.get_collection("vecs") == CollectionInfo(created, 0)
    with pytest.raises(AlreadyExists, match="vecs"):
        client.create_collection("vecs", 8, encoder=None)

    client.drop_collection("vecs")
    assert [c.name for c in client.list_collections()] == ["texts"]
    with pytest.raises(NotFound, match="vecs"):
        client.get_collection("vecs")
    with pytest.raises(NotFound):
        client.drop_collection("vecs")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "bad name!", "dim": 4, "encoder": None}, "invalid collection name"),
    ({"name": "x", "encoder": None}, "explicit dimension"),
    ({"name": "x", "dim": 4, "metric": "cosine"}, "unknown metric"),
    ({"name": "x", "dim": 4, "index": {"kind": "ivf", "nprobe": 0}}, "nprobe"),
    ({"name": "x", "dim": 4, "encoder": None, "clustering_key": "day"}, "clustering key 'day' must be a numeric"),
    ({"name": "x", "graph": {"extractor": "regex", "synonym_threshold": 2.0}}, "synonym_threshold must be a number"),
])
def test_create_rejects_bad_configs(client, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        client.create_collection(**kwargs)


def test_a_graph_collection_is_created_and_searched_over_grpc(client, database):
    created = client.create_collection("kg", graph={"extractor": "regex", "max_cooc": 4})
    assert created.graph == GraphConfig(extractor="regex", max_cooc=4)
    assert client.get_collection("kg").config.graph == created.graph
    client.upsert("kg", [Document(id="a", text="Ada Lovelace worked with Charles Babbage."),
                         Document(id="b", text="Charles Babbage designed the Analytical Engine."),
                         Document(id="c", text="Bread is made of flour.")], wait=True)
    remote = client.query("kg", SearchRequest.simple("Ada Lovelace", 3, mode="graph", explain=True))
    local = database.collection("kg").query(SearchRequest.simple("Ada Lovelace", 3, mode="graph", explain=True))
    assert [h.id for h in remote.hits] == [h.id for h in local.hits]
    assert [h.id for h in remote.hits][:2] == ["a", "b"]  # b is reached only through Charles Babbage
    assert remote.explain["graph"]["hits"][1]["path"] == ["chunk:a", "entity:Charles Babbage", "chunk:b"]
    plain = client.create_collection("flat-texts")
    assert plain.graph is None


# ---------------------------------------------------------------------------- points and search
def test_search_matches_the_in_process_collection_and_brute_force(client, database, filled):
    local = database.collection("c")
    for q in (0, 5, 17):
        query = filled[q] + 0.01
        remote = client.search("c", query, 10)
        expected = local.search(query, 10)
        assert [h.id for h in remote] == [h.id for h in expected]
        np.testing.assert_allclose([h.score for h in remote], [h.score for h in expected], rtol=1e-6)
        assert remote == expected  # payload included: text, metadata (ints stay ints), tenant
        brute = np.argsort(((filled - query) ** 2).sum(1), kind="stable")[:10]
        assert [h.id for h in remote] == [str(i) for i in brute]  # flat is exact
    bare = client.search("c", filled[3].tolist(), 3, with_payload=False)
    assert bare[0].id == "3" and bare[0].metadata is None and bare[0].text is None


def test_text_queries_go_through_the_encoder(client, database):
    client.create_collection("docs")
    texts = ["the cat sat on the mat", "dogs chase cats", "stock markets fell sharply", "a cat and a dog"]
    client.upsert("docs", [{"id": f"d{i}", "text": t, "tenant": "acme"} for i, t in enumerate(texts)])
    hits = client.search("docs", "stock markets fell sharply", 2)
    assert hits[0].id == "d2" and hits[0].text == texts[2] and hits[0].tenant == "acme"
    assert math.isclose(hits[0].score, 1.0, rel_tol=1e-5)  # normalised embeddings of the same text
    assert hits == database.collection("docs").search("stock markets fell sharply", 2)


def test_get_returns_documents_in_order_with_none_for_missing(client, filled):
    docs = client.get("c", ["5", "missing", "0", "5"], with_vectors=True)
    assert [d.id if d else None for d in docs] == ["5", None, "0", "5"]
    assert docs[0].metadata == {"n": 5} and type(docs[0].metadata["n"]) is int
    np.testing.assert_array_equal(docs[0].vector, filled[5])
    assert docs[0] is not docs[3]
    assert client.get("c", ["1"])[0].vector is None


def test_delete_returns_the_ids_that_existed(client, filled):
    assert sorted(client.delete("c", ["1", "2", "nope"], wait=True)) == ["1", "2"]
    assert client.get_collection("c").count == 198
    assert client.get("c", ["1"]) == [None]
    assert "1" not in [h.id for h in client.search("c", filled[1], 5)]


def test_upsert_with_delete_replaces_and_deletes_in_one_write(client, database, filled):
    seq = database.store.last_seq
    results = client.upsert("c", [{"id": "0", "vector": filled[5], "metadata": {"n": -1}}],
                            delete=["1", "2", "nope"], wait=True)
    assert [r.ok for r in results] == [True]
    assert database.store.last_seq == seq + 1
    assert client.get("c", ["0", "1", "2"])[1:] == [None, None]
    assert client.get("c", ["0"])[0].metadata == {"n": -1} and client.get_collection("c").count == 198
    remote = client.collection("c")
    assert remote.upsert([], delete=["3"]) == [] and client.get("c", ["3"]) == [None]
    with pytest.raises(InvalidArgument, match="both written and deleted"):
        remote.upsert([{"id": "4", "vector": filled[4]}], delete=["4"])


def test_upsert_reports_each_row_and_writes_only_the_valid_ones(client):
    client.create_collection("m", 4, encoder=None)
    rows = [
        {"id": "ok1", "vector": [1, 0, 0, 0], "metadata": {"year": 2020, "tags": ["a"]}},
        {"id": "short", "vector": [1, 0]},
        {"id": "nan-meta", "vector": [0, 1, 0, 0], "metadata": {"x": float("nan")}},
        {"id": "nothing"},
        {"id": "", "vector": [0, 0, 1, 0]},
        Document("ok2", vector=np.array([0, 0, 0, 1], dtype=np.float32), tenant="t"),
    ]
    results = client.upsert("m", rows)
    assert [(r.index, r.id, r.ok) for r in results] == [
        (0, "ok1", True), (1, "short", False), (2, "nan-meta", False), (3, "nothing", False), (4, "", False),
        (5, "ok2", True)]
    assert "dimension 2" in results[1].error and "finite" in results[2].error
    assert "neither a vector nor a text" in results[3].error
    assert client.get_collection("m").count == 2
    assert client.get("m", ["ok1"])[0].metadata == {"year": 2020, "tags": ["a"]}


def test_remote_collection_behaves_like_the_in_process_one(client, database, vectors):
    """The same script gives the same answers through either API."""
    client.create_collection("remote", DIM, encoder=None)
    database.create_collection("local", DIM, encoder=None)
    remote = client.collection("remote")
    assert isinstance(remote, RemoteCollection) and remote.config.dim == DIM

    def script(coll):
        rows = [{"id": f"p{i}", "vector": v, "metadata": {"i": i}} for i, v in enumerate(vectors[:50])]
        written = coll.upsert([*rows, {"id": "bad", "vector": vectors[0][:3]}], wait=True)
        deleted = coll.delete(["p1", "p2", "zz"])
        found = coll.get(["p3", "p1"], with_vectors=True)
        hits = coll.search(vectors[3], 5, params={})
        try:
            coll.search(vectors[3], 0)
        except InvalidArgument as exc:
            error = str(exc)
        return ([(r.index, r.id, r.error) for r in written], sorted(deleted), [(d.id, d.metadata) if d else None
                for d in found], [(h.id, round(h.score, 4), h.metadata) for h in hits], coll.count(), error)

    assert script(remote) == script(database.collection("local"))
    with pytest.raises(NotFound):
        client.collection("nope")


# ---------------------------------------------------------------------------- status codes
def test_invalid_arguments(client, filled, channel):
    search = search_pb2_grpc.SearchStub(channel).Search

    def vector_query(values, **kwargs):
        return search_pb2.SearchRequest(collection="c", vector=common_pb2.Vector(
            dense=common_pb2.DenseVector(values=values)), **kwargs)

    code, details = status_of(search, vector_query([1.0] * (DIM + 1), k=3))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and f"dimension {DIM + 1}" in details
    for k in (0, -1):
        code, details = status_of(search, vector_query([1.0] * DIM, k=k))
        assert code is grpc.StatusCode.INVALID_ARGUMENT and "k must be a positive integer" in details
    code, details = status_of(search, search_pb2.SearchRequest(collection="c"))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "neither a text nor a vector" in details
    code, details = status_of(search, vector_query([1.0] * DIM, params={"nprobes": 3}))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "unknown search parameter" in details

    # the same through the client, as the in-process exception class
    with pytest.raises(InvalidArgument, match="dimension 3"):
        client.search("c", [1.0, 2.0, 3.0])
    with pytest.raises(InvalidArgument, match="k must be a positive integer"):
        client.search("c", filled[0], k=0)
    with pytest.raises(InvalidArgument, match="k must be"):
        client.search("c", filled[0], k=2.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="search parameter nprobe"):
        client.search("c", filled[0], params={"nprobe": 0})


def test_empty_text_query_is_invalid(client):
    client.create_collection("docs")
    client.upsert("docs", [{"id": "a", "text": "hello"}])
    for query in ("", "   "):
        with pytest.raises(InvalidArgument, match="query text is empty"):
            client.search("docs", query)


@pytest.mark.parametrize("metadata, message", [
    ({"x": float("nan")}, "not a finite number"),
    ({"": 1}, "not a non-empty string"),
    ({"ok": {"deep": [1, float("inf")]}}, "ok.deep\\[1\\]"),
])
def test_malformed_metadata_is_invalid(client, channel, metadata, message):
    client.create_collection("m", 2, encoder=None)
    with pytest.raises(InvalidArgument, match=message):
        client.upsert("m", [{"id": "a", "vector": [1, 2], "metadata": metadata}])
    # the raw status: a batch whose only row is invalid is aborted, naming the row
    point = common_pb2.Point(id="a", vector=common_pb2.Vector(dense=common_pb2.DenseVector(values=[1, 2])))
    point.metadata.update(metadata)
    code, details = status_of(points_pb2_grpc.PointsStub(channel).Upsert,
                              points_pb2.UpsertPointsRequest(collection="m", points=[point]))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "row 0 (id 'a')" in details
    assert client.get_collection("m").count == 0


def test_a_batch_with_no_valid_row_names_the_first_failure(client):
    client.create_collection("m", 2, encoder=None)
    rows = [{"id": "x", "vector": [1, 2, 3]}, {"id": "y", "text": "no encoder here"}]
    with pytest.raises(InvalidArgument, match=r"no point of the batch of 2 is valid; row 0 \(id 'x'\): .*dimension 3"):
        client.upsert("m", rows)
    assert client.upsert("m", []) == []  # an empty batch is not an error


def test_rows_the_wire_cannot_carry_fail_the_call_before_sending(client):
    client.create_collection("m", 2, encoder=None)
    with pytest.raises(InvalidArgument, match=r"point 1: .*document id"):
        client.upsert("m", [{"id": "a", "vector": [1, 2]}, {"id": 7, "vector": [1, 2]}])
    assert client.get_collection("m").count == 0


def test_unknown_collections_are_not_found(client, channel):
    for call in (lambda: client.search("nope", [1.0]), lambda: client.upsert("nope", [{"id": "a", "text": "t"}]),
                 lambda: client.get("nope", ["a"]), lambda: client.delete("nope", ["a"]),
                 lambda: client.get_collection("nope"), lambda: client.drop_collection("nope")):
        with pytest.raises(NotFound, match="'nope' does not exist"):
            call()
    code, _ = status_of(collections_pb2_grpc.CollectionsStub(channel).Get,
                        collections_pb2.GetCollectionRequest(name="nope"))
    assert code is grpc.StatusCode.NOT_FOUND


def test_creating_an_existing_collection_is_already_exists(client, channel):
    client.create_collection("dup", 2, encoder=None)
    code, details = status_of(collections_pb2_grpc.CollectionsStub(channel).Create,
                              collections_pb2.CreateCollectionRequest(name="dup", dim=2))
    assert code is grpc.StatusCode.ALREADY_EXISTS and "dup" in details


def test_a_batch_over_the_limit_is_resource_exhausted(client, channel):
    client.create_collection("m", 1, encoder=None)
    rows = [{"id": str(i), "vector": [1.0]} for i in range(MAX_BATCH + 1)]
    with pytest.raises(ResourceExhausted, match=f"exceeds the limit of {MAX_BATCH}"):
        client.upsert("m", rows)
    code, _ = status_of(points_pb2_grpc.PointsStub(channel).Delete,
                        points_pb2.DeletePointsRequest(collection="m", ids=[str(i) for i in range(MAX_BATCH + 1)]))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.get_collection("m").count == 0


def test_a_message_over_the_size_limit_is_resource_exhausted(start_server):
    small = start_server(max_message_bytes=64 * 1024)
    with Client(small.target, timeout=10) as client:
        client.create_collection("m", 1024, encoder=None)
        rows = [{"id": str(i), "vector": np.ones(1024, dtype=np.float32)} for i in range(20)]  # ~80 KiB
        with pytest.raises(ResourceExhausted):
            client.upsert("m", rows)
        assert all(r.ok for r in client.upsert("m", rows[:5]))  # under the limit it goes through


def test_unexpected_server_errors_are_internal_without_details(client, database, monkeypatch):
    def explode(name):
        raise RuntimeError("/var/lib/lamina exploded")

    monkeypatch.setattr(database, "collection", explode)
    with pytest.raises(ServiceError) as info:
        client.search("c", [1.0])
    assert info.value.code is grpc.StatusCode.INTERNAL
    assert "exploded" not in str(info.value) and "see the server log" in str(info.value)


def test_responses_carry_the_server_time(channel, client):
    client.create_collection("t", 2, encoder=None)
    response = collections_pb2_grpc.CollectionsStub(channel).Get(collections_pb2.GetCollectionRequest(name="t"))
    assert response.count == 0 and response.time > 0
