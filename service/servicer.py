"""The gRPC servicers of `lamina.v1`: Collections, Points, Tenants and Search over one `Database`
(and Rag, from `lamina.service.rag`).

Thin by design (Feast's registry server is the model): each RPC converts the request with
`lamina.service.convert`, calls `Database`/`Collection`, and converts the answer back. The
handler bodies are plain synchronous functions run on a thread pool, never on the event
loop: faiss and RocksDB release the GIL, so searches and writes proceed in parallel while
the loop keeps accepting calls. Errors map to status codes in one place, `lamina.service.status`.

Every handler gets the caller's `Principal` (set by the auth interceptor, `lamina.service.auth`).
A principal bound to a tenant is confined to it here, never by the client's own filter: its
writes are its tenant's, and its reads, counts, deletes and searches see nothing else (another
tenant's ids look exactly like ids that do not exist).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc
from lamina.index import deadline as request_deadline
from lamina.index.errors import AlreadyExists, InvalidArgument, ResourceExhausted
from lamina.index.types import Document, RowResult, check_name
from lamina.retrieval.collection import MAX_BATCH, Database
from lamina.service import convert
from lamina.service.auth import KeyStore, Principal, current_principal
from lamina.service.keys import add_keys_servicer
from lamina.service.rag import GeneratorPool, RagServicer
from lamina.service.status import to_status
from lamina.service.v1 import (
    collections_pb2,
    collections_pb2_grpc,
    keys_pb2,
    points_pb2,
    points_pb2_grpc,
    rag_pb2,
    rag_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from lamina.service.work import WorkCounters, WritePool, call_deadline, run_checked

DEFAULT_K = 10
BACKUPS_DIR = "backups"  # Collections/Snapshot writes under <data_dir>/backups/<name>
Request = TypeVar("Request")
Response = TypeVar("Response")


class _Handler:
    """What every servicer shares: the database, the executor, and how a call is run."""

    def __init__(self, database: Database, executor: Executor, *, counters: WorkCounters | None = None,
                 write_pool: WritePool | None = None) -> None:
        self.database = database
        self.executor = executor
        self.counters = counters if counters is not None else WorkCounters()
        self.write_pool = write_pool  # None: writes run on `executor` like everything else

    async def _run(self, context: grpc.aio.ServicerContext, handler: Callable[[Request, Principal], Response],
                   request: Request, *, pool: WritePool | None = None) -> Response:
        """Run `handler(request, principal)` on the executor (or `pool`), stamp the response's `time`, map
        errors to a status. The principal (who calls, bound to which tenant) is read here, in the call's own
        context, where the auth interceptor set it. The call's deadline, cancelled when grpc cancels this
        task (client gone, deadline passed), is bound for the handler (`lamina.service.work`)."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        principal = current_principal()
        deadline = call_deadline(context.time_remaining())
        self.counters.add("received")
        try:
            if pool is None:
                future = loop.run_in_executor(self.executor, run_checked, self.counters, deadline, handler,
                                              request, principal)
            else:
                future = asyncio.wrap_future(pool.submit(run_checked, self.counters, deadline, handler,
                                                         request, principal))
            try:
                response: Any = await future
            except asyncio.CancelledError:  # the work still running stops at its next deadline check
                deadline.cancel()
                raise
        except Exception as exc:  # LaminaError -> its code; anything else -> INTERNAL, logged
            code, details = to_status(exc)
            await context.abort(code, details)
        response.time = time.perf_counter() - started
        return response


# -------------------------------------------------------------------------------- Collections
class CollectionsServicer(_Handler, collections_pb2_grpc.CollectionsServicer):
    async def Create(self, request: collections_pb2.CreateCollectionRequest,
                     context: grpc.aio.ServicerContext) -> collections_pb2.CreateCollectionResponse:
        return await self._run(context, self._create, request)

    async def Get(self, request: collections_pb2.GetCollectionRequest,
                  context: grpc.aio.ServicerContext) -> collections_pb2.GetCollectionResponse:
        return await self._run(context, self._get, request)

    async def List(self, request: collections_pb2.ListCollectionsRequest,
                   context: grpc.aio.ServicerContext) -> collections_pb2.ListCollectionsResponse:
        return await self._run(context, self._list, request)

    async def Drop(self, request: collections_pb2.DropCollectionRequest,
                   context: grpc.aio.ServicerContext) -> collections_pb2.DropCollectionResponse:
        return await self._run(context, self._drop, request)

    async def Snapshot(self, request: collections_pb2.SnapshotRequest,
                       context: grpc.aio.ServicerContext) -> collections_pb2.SnapshotResponse:
        return await self._run(context, self._snapshot, request)

    def _snapshot(self, request: collections_pb2.SnapshotRequest,
                  principal: Principal) -> collections_pb2.SnapshotResponse:
        name = request.name if request.HasField("name") else time.strftime("backup-%Y%m%dT%H%M%SZ", time.gmtime())
        check_name(name)  # one path component under the server's backups directory, nothing else
        dest = self.database.data_dir / BACKUPS_DIR / name
        if dest.exists():
            raise AlreadyExists(f"backup {name!r} already exists on the server")
        dest.parent.mkdir(parents=True, exist_ok=True)
        manifest = self.database.backup(dest)
        return collections_pb2.SnapshotResponse(path=str(dest), seq=manifest["seq"],
                                                collections=manifest["collections"])

    def _create(self, request: collections_pb2.CreateCollectionRequest,
                principal: Principal) -> collections_pb2.CreateCollectionResponse:
        sparse: Any = None if request.no_sparse else True
        if request.HasField("sparse"):
            if request.no_sparse:
                raise InvalidArgument("the request sets both sparse and no_sparse")
            sparse = convert.sparse_config_from_proto(request.sparse)
        collection = self.database.create_collection(
            request.name,
            request.dim if request.HasField("dim") else None,
            metric=convert.metric_from_proto(request.metric),
            index=convert.index_config_from_proto(request.index) if request.HasField("index") else None,
            encoder=request.encoder if request.HasField("encoder") else None,
            sparse=sparse,
            multivector=convert.multivector_config_from_proto(request.multivector)
            if request.HasField("multivector") else None,
            payload=convert.payload_from_proto(request.payload),
            tenant_tree=request.tenant_tree,
            clustering_key=request.clustering_key if request.HasField("clustering_key") else None,
            graph=convert.graph_config_from_proto(request.graph) if request.HasField("graph") else None,
        )
        return collections_pb2.CreateCollectionResponse(config=convert.collection_config_to_proto(collection.config))

    def _get(self, request: collections_pb2.GetCollectionRequest,
             principal: Principal) -> collections_pb2.GetCollectionResponse:
        collection = self.database.collection(request.name)
        return collections_pb2.GetCollectionResponse(
            config=convert.collection_config_to_proto(collection.config),
            count=collection.count(tenant=principal.scope_tenant(None)))

    def _list(self, request: collections_pb2.ListCollectionsRequest,
              principal: Principal) -> collections_pb2.ListCollectionsResponse:
        return collections_pb2.ListCollectionsResponse(
            collections=[convert.collection_config_to_proto(c) for c in self.database.list_collections()
                         if principal.can("read", c.name)])

    def _drop(self, request: collections_pb2.DropCollectionRequest,
              principal: Principal) -> collections_pb2.DropCollectionResponse:
        self.database.drop_collection(request.name)
        return collections_pb2.DropCollectionResponse()


# -------------------------------------------------------------------------------- Points
def _first_failure_message(results: list[RowResult]) -> str:
    first = next(r for r in results if not r.ok)
    return (f"no point of the batch of {len(results)} is valid; "
            f"row {first.index} (id {first.id!r}): {first.error}")


class PointsServicer(_Handler, points_pb2_grpc.PointsServicer):
    async def Upsert(self, request: points_pb2.UpsertPointsRequest,
                     context: grpc.aio.ServicerContext) -> points_pb2.UpsertPointsResponse:
        encodes = self.write_pool is not None and any(p.HasField("text") for p in request.points)
        return await self._run(context, self._upsert, request, pool=self.write_pool if encodes else None)

    async def Delete(self, request: points_pb2.DeletePointsRequest,
                     context: grpc.aio.ServicerContext) -> points_pb2.DeletePointsResponse:
        return await self._run(context, self._delete, request)

    async def Get(self, request: points_pb2.GetPointsRequest,
                  context: grpc.aio.ServicerContext) -> points_pb2.GetPointsResponse:
        return await self._run(context, self._get, request)

    async def Count(self, request: points_pb2.CountPointsRequest,
                    context: grpc.aio.ServicerContext) -> points_pb2.CountPointsResponse:
        return await self._run(context, self._count, request)

    async def Facet(self, request: points_pb2.FacetRequest,
                    context: grpc.aio.ServicerContext) -> points_pb2.FacetResponse:
        return await self._run(context, self._facet, request)

    def _upsert(self, request: points_pb2.UpsertPointsRequest, principal: Principal) -> points_pb2.UpsertPointsResponse:
        collection = self.database.collection(request.collection)
        if len(request.points) + len(request.delete_ids) > MAX_BATCH:  # before converting: it bounds this work
            raise ResourceExhausted(f"batch of {len(request.points)} points and {len(request.delete_ids)} deletes "
                                    f"exceeds the limit of {MAX_BATCH}")
        # A point the domain cannot even be handed (a vector of an unknown kind) fails its own
        # row only, like every other invalid point; `positions` maps the rest back to their rows.
        results: list[RowResult] = []
        docs: list[Document] = []
        positions: list[int] = []
        for i, point in enumerate(request.points):
            try:
                docs.append(convert.document_from_proto(point))
                positions.append(i)
            except InvalidArgument as exc:
                results.append(RowResult(i, point.id, str(exc)))
        written = collection.upsert(docs, wait=request.wait, tenant=principal.tenant, delete=list(request.delete_ids))
        results.extend(RowResult(positions[r.index], r.id, r.error) for r in written)
        results.sort(key=lambda r: r.index)
        if results and not any(r.ok for r in results):
            raise InvalidArgument(_first_failure_message(results))
        return points_pb2.UpsertPointsResponse(results=[convert.row_result_to_proto(r) for r in results])

    def _delete(self, request: points_pb2.DeletePointsRequest, principal: Principal) -> points_pb2.DeletePointsResponse:
        deleted = self.database.collection(request.collection).delete(
            list(request.ids), wait=request.wait, tenant=principal.tenant)
        return points_pb2.DeletePointsResponse(deleted_ids=deleted)

    def _get(self, request: points_pb2.GetPointsRequest, principal: Principal) -> points_pb2.GetPointsResponse:
        docs = self.database.collection(request.collection).get(
            list(request.ids), with_vectors=request.with_vectors, tenant=principal.tenant)
        return points_pb2.GetPointsResponse(
            points=[convert.document_to_proto(d, exact=False) for d in docs if d is not None])

    def _count(self, request: points_pb2.CountPointsRequest, principal: Principal) -> points_pb2.CountPointsResponse:
        tenant = principal.scope_tenant(request.tenant if request.HasField("tenant") else None)
        count = self.database.collection(request.collection).count(
            tenant=tenant, filter=convert.filter_from_proto(request.filter))
        return points_pb2.CountPointsResponse(count=count)

    def _facet(self, request: points_pb2.FacetRequest, principal: Principal) -> points_pb2.FacetResponse:
        options = convert.facet_request_from_proto(request)
        options["tenant"] = principal.scope_tenant(options["tenant"])  # as Count: a tenant key sees its own
        result = self.database.collection(request.collection).facet(options.pop("field"), **options)
        return convert.facet_result_to_proto(result)


class TenantsServicer(_Handler, points_pb2_grpc.TenantsServicer):
    async def List(self, request: points_pb2.ListTenantsRequest,
                   context: grpc.aio.ServicerContext) -> points_pb2.ListTenantsResponse:
        return await self._run(context, self._list, request)

    async def Delete(self, request: points_pb2.DeleteTenantRequest,
                     context: grpc.aio.ServicerContext) -> points_pb2.DeleteTenantResponse:
        return await self._run(context, self._delete, request)

    def _list(self, request: points_pb2.ListTenantsRequest, principal: Principal) -> points_pb2.ListTenantsResponse:
        tenants = self.database.collection(request.collection).tenants()
        if principal.tenant is not None:  # a tenant key sees itself only
            tenants = {t: n for t, n in tenants.items() if t == principal.tenant}
        return points_pb2.ListTenantsResponse(
            tenants=[points_pb2.TenantCount(tenant=t, count=n) for t, n in tenants.items()])

    def _delete(self, request: points_pb2.DeleteTenantRequest,
                principal: Principal) -> points_pb2.DeleteTenantResponse:
        if not request.tenant:
            raise InvalidArgument("tenant must be a non-empty string")
        tenant = principal.scope_tenant(request.tenant)
        deleted = self.database.collection(request.collection).delete_tenant(tenant, wait=request.wait)
        return points_pb2.DeleteTenantResponse(deleted=deleted)


# -------------------------------------------------------------------------------- Search
class SearchServicer(_Handler, search_pb2_grpc.SearchServicer):
    def __init__(self, database: Database, executor: Executor,
                 observer: Callable[[str, dict[str, Any] | None], None] | None = None, **options: Any) -> None:
        super().__init__(database, executor, **options)
        self.observer = observer  # e.g. metrics: gets each query's stage timings (its explain dict)

    async def Search(self, request: search_pb2.SearchRequest,
                     context: grpc.aio.ServicerContext) -> search_pb2.SearchResponse:
        return await self._run(context, self._search, request)

    def _search(self, request: search_pb2.SearchRequest, principal: Principal) -> search_pb2.SearchResponse:
        collection = self.database.collection(request.collection)
        tenant = principal.scope_tenant(request.tenant if request.HasField("tenant") else None)
        query = convert.search_request_from_proto(request, tenant=tenant)
        if self.observer is not None and not query.explain:  # the timings are measured anyway: keep them
            query = dataclasses.replace(query, explain=True)
        result = collection.query(query, deadline=request_deadline.current())
        if self.observer is not None:
            self.observer(request.collection, result.explain)
        response = search_pb2.SearchResponse(hits=[convert.hit_to_proto(h) for h in result.hits])
        if result.explain is not None and request.explain:
            response.explain.update(result.explain)
        return response


# Full names ("lamina.v1.Points"), for health and reflection.
SERVICE_NAMES: list[str] = [
    collections_pb2.DESCRIPTOR.services_by_name["Collections"].full_name,
    points_pb2.DESCRIPTOR.services_by_name["Points"].full_name,
    points_pb2.DESCRIPTOR.services_by_name["Tenants"].full_name,
    search_pb2.DESCRIPTOR.services_by_name["Search"].full_name,
    rag_pb2.DESCRIPTOR.services_by_name["Rag"].full_name,
    keys_pb2.DESCRIPTOR.services_by_name["Keys"].full_name,
]


def add_servicers(server: grpc.aio.Server, database: Database, executor: Executor,
                  generators: GeneratorPool | None = None,
                  search_observer: Callable[[str, dict[str, Any] | None], None] | None = None,
                  keys: KeyStore | None = None, counters: WorkCounters | None = None,
                  write_pool: WritePool | None = None) -> list[str]:
    """Register every Lamina servicer on `server`; returns their full service names. `search_observer`
    gets each Search's collection and stage timings (`lamina.service.metrics`); `keys` is the key store
    the Keys service manages (the auth interceptor's; default: the database's). `counters` count the
    calls' work done and abandoned; `write_pool` encodes the upserts that carry text (`lamina.service.work`)."""
    shared = {"counters": counters if counters is not None else WorkCounters()}
    collections_pb2_grpc.add_CollectionsServicer_to_server(CollectionsServicer(database, executor, **shared), server)
    points_pb2_grpc.add_PointsServicer_to_server(PointsServicer(database, executor, write_pool=write_pool, **shared),
                                                 server)
    points_pb2_grpc.add_TenantsServicer_to_server(TenantsServicer(database, executor, **shared), server)
    search_pb2_grpc.add_SearchServicer_to_server(SearchServicer(database, executor, search_observer, **shared),
                                                 server)
    rag_pb2_grpc.add_RagServicer_to_server(RagServicer(database, executor, generators or GeneratorPool()), server)
    add_keys_servicer(server, keys if keys is not None else KeyStore(database.store), executor)
    return list(SERVICE_NAMES)

