"""Tenant isolation through the whole gRPC surface, and the query pipeline over the wire.

The matrix runs over both transports (the `transport` parameter): gRPC, and the HTTP/JSON API
(`lamina serve --http`), through the same `Client` on an HTTP channel (`lamina.service.http_channel`).

The isolation matrix: two tenant keys (acme, globex) with read and write rights on one
collection, and an admin key. Every RPC of every Lamina service has a case here (a test fails
when an RPC is added without one), and each case checks that acme sees, counts, fetches,
deletes and infers nothing of globex: globex's ids look exactly like ids that do not exist.
"""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from lamina.retrieval.query import Fusion, GraphExpansion, Rerank, SearchRequest, Stage
from lamina.service import gateway
from lamina.service.auth import KeyStore
from lamina.service.client import Client
from lamina.service.rag import GeneratorPool
from lamina.service.v1 import collections_pb2, points_pb2, rag_pb2, search_pb2

from tests.rag.conftest import EchoGenerator
from tests.retrieval.test_search_pipeline import HashingTokenEncoder, make_corpus

COLLECTION = "docs"
GRAPH_DOCS = [  # one entity name in both tenants: each tenant's graph has its own node for it
    {"id": "kg-acme", "text": "Zorblax Corp builds wings for Ilsa Brandt.", "tenant": "acme"},
    {"id": "kg-globex-1", "text": "Zorblax Corp sells drag to Quentin Hale.", "tenant": "globex"},
    {"id": "kg-globex-2", "text": "Quentin Hale lives in Varnholm tower.", "tenant": "globex"},
]


@pytest.fixture(params=["grpc", pytest.param("http", marks=pytest.mark.slow)])  # http doubles the matrix's time
def transport(request):
    return request.param


@pytest.fixture
def served(start_server, database, transport):
    database._token_loader = lambda name: HashingTokenEncoder()
    coll = database.create_collection(COLLECTION, encoder="hashing", multivector=True,
                                      payload={"year": "numeric", "topic": "keyword"}, graph={"extractor": "regex"})
    corpus = [d for d in make_corpus(120) if d["tenant"] != "initech"] + GRAPH_DOCS
    coll.upsert(corpus)
    keys = KeyStore(database.store)
    _, admin = keys.create(admin=True)
    rights = {COLLECTION: {"read", "write"}}
    _, acme = keys.create(tenant="acme", rights=rights)
    _, globex = keys.create(tenant="globex", rights=rights)
    server = start_server(auth="on", http_port=0 if transport == "http" else None, generators=GeneratorPool({"echo": "echo", "none": None}, default="none",
                                                              loader=lambda spec: EchoGenerator()))
    target = server.url if transport == "http" else server.target
    clients = {name: Client(target, api_key=key) for name, key in
               (("admin", admin), ("acme", acme), ("globex", globex))}
    yield clients, corpus
    for client in clients.values():
        client.close()


def ids_of(corpus, tenant):
    return [d["id"] for d in corpus if d["tenant"] == tenant]


# ------------------------------------------------------------------ the matrix, one case per RPC
def case_collections_create(clients, corpus):
    with pytest.raises(PermissionDenied):
        clients["acme"].create_collection("new", 32, encoder=None)
    clients["admin"].create_collection("new", 32, encoder=None)


def case_collections_get(clients, corpus):
    assert clients["acme"].get_collection(COLLECTION).count == len(ids_of(corpus, "acme"))
    assert clients["admin"].get_collection(COLLECTION).count == len(corpus)


def case_collections_list(clients, corpus):
    clients["admin"].create_collection("private", 32, encoder=None)
    assert [c.name for c in clients["acme"].list_collections()] == [COLLECTION]
    assert sorted(c.name for c in clients["admin"].list_collections()) == [COLLECTION, "private"]


def case_collections_drop(clients, corpus):
    with pytest.raises(PermissionDenied):
        clients["acme"].drop_collection(COLLECTION)
    assert clients["admin"].get_collection(COLLECTION).count == len(corpus)


def case_collections_snapshot(clients, corpus):
    from lamina.retrieval.collection import Database

    with pytest.raises(PermissionDenied):  # a backup holds every tenant's data: admin only
        clients["acme"].snapshot("mine")
    with pytest.raises(InvalidArgument):  # a name, never a path the client picks
        clients["admin"].snapshot("../../etc")
    path, seq = clients["admin"].snapshot("nightly")
    assert path.endswith("/backups/nightly") and seq > 0
    with Database(path) as copy:  # the backup opens as a data directory holding the whole collection
        assert copy.store.last_seq == seq and copy.store.count(COLLECTION) == len(corpus)


def case_points_upsert(clients, corpus):
    theirs = ids_of(corpus, "globex")[0]
    results = clients["acme"].upsert(COLLECTION, [
        {"id": "acme-new", "text": "wing flow"},                       # becomes acme's
        {"id": "sneaky", "text": "wing", "tenant": "globex"},          # names another tenant
        {"id": theirs, "text": "overwrite attempt"},                   # another tenant's id
    ])
    assert [r.ok for r in results] == [True, False, False]
    assert clients["admin"].get(COLLECTION, ["acme-new"])[0].tenant == "acme"
    assert clients["admin"].get(COLLECTION, [theirs])[0].text != "overwrite attempt"
    assert clients["admin"].get(COLLECTION, ["sneaky"]) == [None]
    # deletes riding on an upsert delete only the caller's own ids
    others, mine = ids_of(corpus, "globex")[1:3], ids_of(corpus, "acme")[:1]
    assert clients["acme"].upsert(COLLECTION, [{"id": "acme-2", "text": "drag"}], delete=others + mine)[0].ok
    assert all(d is not None for d in clients["admin"].get(COLLECTION, others))
    assert clients["admin"].get(COLLECTION, mine) == [None]


def case_points_delete(clients, corpus):
    theirs, mine = ids_of(corpus, "globex")[:3], ids_of(corpus, "acme")[:1]
    assert clients["acme"].delete(COLLECTION, theirs + mine) == mine
    assert all(d is not None for d in clients["admin"].get(COLLECTION, theirs))


def case_points_get(clients, corpus):
    theirs, mine = ids_of(corpus, "globex")[:5], ids_of(corpus, "acme")[:5]
    # another tenant's id answers exactly like an id that does not exist
    assert clients["acme"].get(COLLECTION, theirs + ["no-such-id"]) == [None] * 6
    assert [d.id for d in clients["acme"].get(COLLECTION, mine)] == mine


def case_points_count(clients, corpus):
    assert clients["acme"].count(COLLECTION) == len(ids_of(corpus, "acme"))
    assert clients["acme"].count(COLLECTION, tenant="acme") == len(ids_of(corpus, "acme"))
    with pytest.raises(PermissionDenied):
        clients["acme"].count(COLLECTION, tenant="globex")
    assert clients["admin"].count(COLLECTION, tenant="globex") == len(ids_of(corpus, "globex"))


def case_points_facet(clients, corpus):
    def topics(docs):
        found = {}
        for d in docs:
            if "metadata" in d:  # the graph documents carry no payload
                found[d["metadata"]["topic"]] = found.get(d["metadata"]["topic"], 0) + 1
        return found

    everything = corpus
    corpus = [d for d in corpus if "metadata" in d]
    mine = [d for d in corpus if d["tenant"] == "acme"]
    own = [d for d in everything if d["tenant"] == "acme"]
    facet = clients["acme"].facet(COLLECTION, "topic")
    assert {c.value: c.count for c in facet.counts} == topics(mine) and facet.documents == len(own)
    assert clients["acme"].facet(COLLECTION, "topic", tenant="acme") == facet
    years = clients["acme"].facet(COLLECTION, "year", bins=2).stats
    assert (years.count, years.min, years.max) == (len(mine), min(d["metadata"]["year"] for d in mine),
                                                   max(d["metadata"]["year"] for d in mine))
    assert sum(years.counts) == len(mine)
    with pytest.raises(PermissionDenied):
        clients["acme"].facet(COLLECTION, "topic", tenant="globex")
    everyone = clients["admin"].facet(COLLECTION, "topic")
    assert {c.value: c.count for c in everyone.counts} == topics(corpus)
    assert clients["admin"].facet(COLLECTION, "topic", tenant="globex").documents == len(ids_of(everything, "globex"))


def case_tenants_list(clients, corpus):
    assert clients["acme"].tenants(COLLECTION) == {"acme": len(ids_of(corpus, "acme"))}
    assert set(clients["admin"].tenants(COLLECTION)) == {"acme", "globex"}


def case_tenants_delete(clients, corpus):
    with pytest.raises(PermissionDenied):
        clients["acme"].delete_tenant(COLLECTION, "globex")
    assert clients["admin"].count(COLLECTION, tenant="globex") == len(ids_of(corpus, "globex"))
    assert clients["acme"].delete_tenant(COLLECTION, "acme") == len(ids_of(corpus, "acme"))
    assert clients["admin"].count(COLLECTION) == len(ids_of(corpus, "globex"))


def case_search_search(clients, corpus):
    for mode in ("dense", "sparse", "hybrid"):
        hits = clients["acme"].search(COLLECTION, "wing flow drag", k=100, mode=mode)
        assert hits and {h.tenant for h in hits} == {"acme"}
    hits = clients["acme"].search(COLLECTION, "wing flow drag", k=10, mode="hybrid", rerank=20)
    assert {h.tenant for h in hits} == {"acme"}
    with pytest.raises(PermissionDenied):
        clients["acme"].search(COLLECTION, "wing", tenant="globex")
    assert {h.tenant for h in clients["admin"].search(COLLECTION, "wing", k=100)} == {"acme", "globex"}
    # the graph stage walks only the caller's part of the graph: globex's Quentin Hale is never reached
    for mode in ("graph", "hybrid+graph"):
        result = clients["acme"].query(COLLECTION, SearchRequest.simple("Whom does Zorblax Corp sell to?", 100,
                                                                        mode=mode, explain=True))
        assert result.hits and {h.tenant for h in result.hits} == {"acme"}
        assert [s["chunks"] for s in result.explain["graph"]["seeds"]] == [1]
        assert all("Quentin" not in " ".join(h["path"]) for h in result.explain["graph"]["hits"])
    admin = clients["admin"].query(COLLECTION, SearchRequest.simple("Zorblax Corp", 5, mode="graph"))
    assert {"kg-acme", "kg-globex-1", "kg-globex-2"} <= {h.id for h in admin.hits}


def case_rag_answer(clients, corpus):
    tenant_of = {d["id"]: d["tenant"] for d in corpus}
    text_of = {d["id"]: d["text"] for d in corpus}
    for mode in ("dense", "hybrid"):
        result = clients["acme"].answer(COLLECTION, "wing flow drag", k=50, mode=mode, generator="echo")
        assert result.citations and {tenant_of[c.chunk_id] for c in result.citations} == {"acme"}
        assert result.answer == " ".join(text_of[result.citations[0].chunk_id].split())
    with pytest.raises(PermissionDenied):
        clients["acme"].answer(COLLECTION, "wing", tenant="globex")
    everyone = clients["admin"].answer(COLLECTION, "wing flow drag", k=50, context_tokens=100_000)
    assert {tenant_of[c.chunk_id] for c in everyone.citations} == {"acme", "globex"}


def case_keys_create(clients, corpus):
    with pytest.raises(PermissionDenied):
        clients["acme"].create_key(tenant="acme", rights={COLLECTION: {"read"}})
    record, secret = clients["admin"].create_key(tenant="initech", rights={COLLECTION: {"read"}})
    assert record.tenant == "initech" and record.rights == {COLLECTION: frozenset({"read"})}
    with Client(clients["admin"].target, api_key=secret) as initech:  # accepted at once, confined to its tenant
        assert initech.count(COLLECTION) == 0
        with pytest.raises(PermissionDenied):
            initech.upsert(COLLECTION, [{"id": "x", "text": "wing"}])


def case_keys_list(clients, corpus):
    with pytest.raises(PermissionDenied):
        clients["acme"].list_keys()
    listed = clients["admin"].list_keys()
    assert sorted(k.tenant or "" for k in listed) == ["", "acme", "globex"]
    assert all(k.source == "store" and k.revoked is None for k in listed)


def case_keys_revoke(clients, corpus):
    globex_id = next(k.id for k in clients["admin"].list_keys() if k.tenant == "globex")
    with pytest.raises(PermissionDenied):
        clients["acme"].revoke_key(globex_id)
    assert clients["globex"].count(COLLECTION) == len(ids_of(corpus, "globex"))
    assert clients["admin"].revoke_key(globex_id).revoked is not None
    with pytest.raises(Unauthenticated):  # refused at once, no restart
        clients["globex"].count(COLLECTION)
    with pytest.raises(NotFound):
        clients["admin"].revoke_key("nosuchkey")


MATRIX = {
    "/lamina.v1.Collections/Create": case_collections_create,
    "/lamina.v1.Collections/Get": case_collections_get,
    "/lamina.v1.Collections/List": case_collections_list,
    "/lamina.v1.Collections/Drop": case_collections_drop,
    "/lamina.v1.Collections/Snapshot": case_collections_snapshot,
    "/lamina.v1.Points/Upsert": case_points_upsert,
    "/lamina.v1.Points/Delete": case_points_delete,
    "/lamina.v1.Points/Get": case_points_get,
    "/lamina.v1.Points/Count": case_points_count,
    "/lamina.v1.Points/Facet": case_points_facet,
    "/lamina.v1.Tenants/List": case_tenants_list,
    "/lamina.v1.Tenants/Delete": case_tenants_delete,
    "/lamina.v1.Search/Search": case_search_search,
    "/lamina.v1.Rag/Answer": case_rag_answer,
    "/lamina.v1.Keys/Create": case_keys_create,
    "/lamina.v1.Keys/List": case_keys_list,
    "/lamina.v1.Keys/Revoke": case_keys_revoke,
}


def test_every_lamina_rpc_has_an_isolation_case():
    methods = {f"/{service.full_name}/{method.name}"
               for module in (collections_pb2, points_pb2, search_pb2, rag_pb2)
               for service in module.DESCRIPTOR.services_by_name.values()
               for method in service.methods}
    assert methods <= {m.grpc_path for m in gateway.METHODS.values()}  # every stub module is on HTTP too
    assert {m.grpc_path for m in gateway.METHODS.values()} == set(MATRIX)


@pytest.mark.parametrize("method", sorted(MATRIX))
def test_isolation(served, method):
    clients, corpus = served
    MATRIX[method](clients, corpus)


def test_no_key_no_access(served, start_server):
    clients, _ = served
    with Client(clients["admin"].target) as anonymous, pytest.raises(Unauthenticated):
        anonymous.search(COLLECTION, "wing")


# ------------------------------------------------------------------ the pipeline over the wire
def test_remote_search_equals_in_process(served, database):
    clients, _ = served
    local = database.collection(COLLECTION)
    flt = {"must": [{"key": "year", "range": {"gte": 1960}}], "should": [{"key": "topic", "match": {"any": ["aero", "flow"]}}]}
    requests = [
        SearchRequest.simple("shock boundary layer", 10, mode="sparse", filter=flt),
        SearchRequest.simple("shock boundary layer", 10, mode="hybrid", fusion="weighted", tenant="globex"),
        SearchRequest("laminar heat", 5, (Stage("dense", limit=40), Stage("sparse", params={"query_cut": 5})),
                      Fusion("rrf", (1.0, 2.0)), Rerank(kappa=20, alpha=0.3), explain=True),
        SearchRequest({7592: 1.0, 3917: 0.5}, 5, (Stage("sparse"),)),  # raw sparse weights
        SearchRequest.simple("Whom does Zorblax Corp sell to?", 5, mode="hybrid+graph", explain=True,
                             graph=GraphExpansion(limit=50, damping=0.6, fusion="rrf", method="push", eps=1e-6)),
    ]
    for request in requests:
        remote = clients["admin"].query(COLLECTION, request)
        mine = local.query(request)
        assert [(h.id, round(h.score, 5)) for h in remote.hits] == [(h.id, round(h.score, 5)) for h in mine.hits]
        assert (remote.explain is None) == (not request.explain)
    explained = clients["admin"].query(COLLECTION, requests[2]).explain
    assert [s["kind"] for s in explained["stages"]] == ["dense", "sparse"] and "rerank" in explained
    assert explained["stages"][0]["limit"] == 40 and isinstance(explained["stages"][0]["limit"], int)


def test_remote_bad_requests(served):
    client = served[0]["admin"]
    with pytest.raises(InvalidArgument, match="not indexed"):
        client.search(COLLECTION, "wing", filter={"must": [{"key": "colour", "match": {"value": "red"}}]})
    with pytest.raises(InvalidArgument, match="kappa"):
        client.search(COLLECTION, "wing", k=10, rerank=5)
    with pytest.raises(InvalidArgument, match="outside the vocabulary"):
        client.query(COLLECTION, SearchRequest({10**6: 1.0}, 5, (Stage("sparse"),)))
    with pytest.raises(NotFound):
        client.search("nope", "wing")
    with pytest.raises(InvalidArgument, match="rerank needs a text"):
        client.search(COLLECTION, np.ones(32), rerank=20)
    client.create_collection("nograph", 32, encoder=None)
    with pytest.raises(InvalidArgument, match="option graph"):
        client.query("nograph", SearchRequest(np.ones(32), 5, graph=GraphExpansion()))
