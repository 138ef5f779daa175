"""The synchronous Python client of the Lamina gRPC service.

`Client` speaks the `lamina.v1` services over one channel and returns the domain types
(`CollectionConfig`, `Document`, `Hit`, `RowResult`) that the in-process API returns. A failed
call raises the `lamina.index.errors` class of its status code (`lamina.service.status`), so
code written against the in-process `Collection` handles errors the same way.
`Client.collection(name)` returns a `RemoteCollection` whose `upsert`, `delete`, `get`, `search`,
`count` and `facet` have the signatures of `lamina.retrieval.collection.Collection`'s: the benchmark
harness takes either.

Differences from the in-process API, each forced by the wire:
- a point whose values the wire cannot carry (an id that is not a string, a non-numeric vector,
  metadata that is not JSON) fails the whole `upsert` call before anything is sent, instead
  of its row; every other invalid point is reported in its RowResult as in-process;
- an upsert in which no point is valid raises InvalidArgument (in-process returns the errors);
- metadata numbers travel as doubles: see `lamina.service.convert`.

The client is thread-safe: gRPC channels multiplex concurrent calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lamina.index.errors import InvalidArgument, NotFound
from lamina.index.facets import FacetResult
from lamina.index.filters import Filter
from lamina.index.types import (
    DEFAULT_ENCODER,
    CollectionConfig,
    Document,
    GraphConfig,
    Hit,
    IndexConfig,
    MultivectorConfig,
    RowResult,
    SparseConfig,
)
from lamina.rag.assemble import Citation
from lamina.rag.pipeline import CitationsEvent, DoneEvent, Pipeline, RagEvent, RagResult, TokenEvent
from lamina.retrieval.query import GraphExpansion, Rerank, SearchRequest, SearchResult
from lamina.service import convert
from lamina.service.auth import with_api_key
from lamina.service.keys import ApiKey
from lamina.service.rag import answer_request_to_proto
from lamina.service.status import ServiceError, from_rpc_error
from lamina.service.v1 import (
    collections_pb2,
    collections_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    points_pb2,
    points_pb2_grpc,
    rag_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

MiB = 1 << 20
DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_MESSAGE_BYTES = 64 * MiB
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1

Response = TypeVar("Response")


@dataclass(frozen=True)
class CollectionInfo:
    """What `Client.get_collection` returns: the schema and the number of live points."""

    config: CollectionConfig
    count: int


def _as_index_config(index: IndexConfig | Mapping[str, Any] | str | None) -> IndexConfig:
    if index is None:
        return IndexConfig()
    if isinstance(index, IndexConfig):
        return index
    if isinstance(index, str):
        return IndexConfig(kind=index)
    if isinstance(index, Mapping):
        return IndexConfig.from_dict(dict(index))
    raise InvalidArgument(f"index must be a kind, a mapping or an IndexConfig, got {type(index).__name__}")


def _check_int(value: Any, what: str, low: int, high: int) -> int:
    """`value` as an int that fits its wire field; whether the value makes sense is the server's call."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{what} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(f"{what}={value} is out of range [{low}, {high}]")
    return int(value)


class Client:
    """A connection to a Lamina server. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        api_key: str | None = None,
    ) -> None:
        """`api_key` (default: $LAMINA_API_KEY) is sent as `authorization: Bearer <key>` on every call.
        A target `http://host:port` speaks the HTTP/JSON API (`lamina serve --http PORT`) instead of gRPC."""
        self.target = target
        self.timeout = timeout
        if target.startswith(("http://", "https://")):
            from lamina.service.http_channel import HttpChannel

            self._raw_channel: Any = HttpChannel(target)
        else:
            self._raw_channel = grpc.insecure_channel(target, options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
            ])
        self._channel = with_api_key(self._raw_channel, api_key or os.environ.get("LAMINA_API_KEY"))
        self._collections = collections_pb2_grpc.CollectionsStub(self._channel)
        self._points = points_pb2_grpc.PointsStub(self._channel)
        self._tenants = points_pb2_grpc.TenantsStub(self._channel)
        self._search = search_pb2_grpc.SearchStub(self._channel)
        self._rag = rag_pb2_grpc.RagStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._keys = keys_pb2_grpc.KeysStub(self._channel)

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._raw_channel.close()

    def _call(self, method: Callable[..., Response], request: Any) -> Response:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    # ------------------------------------------------------------------ server
    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the channel connects (e.g. right after starting a server); TimeoutError otherwise."""
        try:
            grpc.channel_ready_future(self._raw_channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise TimeoutError(f"no Lamina server answered at {self.target} within {timeout} s") from None

    def health(self, service: str = "") -> str:
        """The serving status of the server ("") or of one service ("lamina.v1.Search"): "SERVING", ..."""
        try:
            response = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        except NotFound:  # the health service answers an unknown name without details
            raise NotFound(f"the server reports no health status for service {service!r}") from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    # ------------------------------------------------------------------ collections
    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        *,
        metric: str = "ip",
        index: IndexConfig | Mapping[str, Any] | str | None = "flat",
        encoder: str | None = DEFAULT_ENCODER,
        sparse: SparseConfig | str | bool = True,
        multivector: MultivectorConfig | str | bool | None = None,
        payload: Mapping[str, str] | None = None,
        tenant_tree: bool = False,
        clustering_key: str | None = None,
        graph: GraphConfig | Mapping[str, Any] | bool | None = None,
    ) -> CollectionConfig:
        """Create a collection; `dim` defaults to the encoder's. Returns the config the server stored.

        sparse, multivector, payload, clustering_key and graph as `Database.create_collection`.
        """
        request = collections_pb2.CreateCollectionRequest(
            name=name, metric=convert.metric_to_proto(metric),
            index=convert.index_config_to_proto(_as_index_config(index)),
            payload=convert.payload_to_proto(payload or {}), tenant_tree=tenant_tree,
        )
        if sparse is False or sparse is None:
            request.no_sparse = True
        elif sparse is not True:
            config = SparseConfig(encoder=sparse) if isinstance(sparse, str) else sparse
            request.sparse.CopyFrom(convert.sparse_config_to_proto(config))
        if multivector:
            if multivector is True:
                config = MultivectorConfig(encoder=encoder or DEFAULT_ENCODER)
            elif isinstance(multivector, str):
                config = MultivectorConfig(encoder=multivector)
            else:
                config = multivector
            request.multivector.CopyFrom(convert.multivector_config_to_proto(config))
        if dim is not None:
            request.dim = _check_int(dim, "dimension", 0, 2**32 - 1)  # the server judges 0
        if encoder is not None:
            request.encoder = encoder
        if clustering_key is not None:
            request.clustering_key = clustering_key
        graph_config = GraphConfig.coerce(graph)
        if graph_config is not None:
            request.graph.CopyFrom(convert.graph_config_to_proto(graph_config))
        response = self._call(self._collections.Create, request)
        return convert.collection_config_from_proto(response.config)

    def get_collection(self, name: str) -> CollectionInfo:
        response = self._call(self._collections.Get, collections_pb2.GetCollectionRequest(name=name))
        return CollectionInfo(convert.collection_config_from_proto(response.config), response.count)

    def list_collections(self) -> list[CollectionConfig]:
        response = self._call(self._collections.List, collections_pb2.ListCollectionsRequest())
        return [convert.collection_config_from_proto(c) for c in response.collections]

    def drop_collection(self, name: str) -> None:
        self._call(self._collections.Drop, collections_pb2.DropCollectionRequest(name=name))

    def snapshot(self, name: str | None = None) -> tuple[str, int]:
        """Ask the server for a backup of its data directory (under <data_dir>/backups/<name> on the
        server); returns (its path there, the sequence number it holds)."""
        request = collections_pb2.SnapshotRequest(name=name) if name else collections_pb2.SnapshotRequest()
        response = self._call(self._collections.Snapshot, request)
        return response.path, response.seq

    def collection(self, name: str) -> RemoteCollection:
        """A handle with the in-process Collection's methods (NotFound if it does not exist)."""
        return RemoteCollection(self, self.get_collection(name).config)

    # ------------------------------------------------------------------ points
    def upsert(self, collection: str, points: Iterable[Document | Mapping[str, Any]], *,
               wait: bool = False, delete: Sequence[str] = ()) -> list[RowResult]:
        """Insert or replace points; one RowResult per point, in order (see the module docstring).
        `delete`: ids removed in the same atomic write (see `Collection.upsert`)."""
        messages = []
        for i, row in enumerate(points):
            try:
                messages.append(convert.document_to_proto(row))
            except InvalidArgument as exc:
                raise InvalidArgument(f"point {i}: {exc}") from None
        request = points_pb2.UpsertPointsRequest(collection=collection, points=messages, wait=wait,
                                                 delete_ids=self._ids(delete))
        response = self._call(self._points.Upsert, request)
        return [convert.row_result_from_proto(r) for r in response.results]

    def delete(self, collection: str, ids: Sequence[str], *, wait: bool = False) -> list[str]:
        """Delete points by id; returns the ids that existed."""
        request = points_pb2.DeletePointsRequest(collection=collection, ids=self._ids(ids), wait=wait)
        return list(self._call(self._points.Delete, request).deleted_ids)

    def get(self, collection: str, ids: Sequence[str], *, with_vectors: bool = False) -> list[Document | None]:
        """The stored documents for `ids`, in order, None where an id does not exist."""
        ids = self._ids(ids)
        request = points_pb2.GetPointsRequest(collection=collection, ids=ids, with_vectors=with_vectors)
        found = {p.id: p for p in self._call(self._points.Get, request).points}
        # a fresh Document per position: callers may mutate what they get, as in-process
        return [convert.document_from_proto(found[i]) if i in found else None for i in ids]

    @staticmethod
    def _ids(ids: Sequence[str]) -> list[str]:
        if isinstance(ids, str):  # a lone id would otherwise be split into characters
            raise InvalidArgument(f"ids must be a sequence of strings, got the string {ids!r}")
        ids = list(ids)
        for doc_id in ids:
            if not isinstance(doc_id, str):
                raise InvalidArgument(f"document id must be a non-empty string, got {doc_id!r}")
        return ids

    def count(self, collection: str, *, tenant: str | None = None,
              filter: Filter | Mapping[str, Any] | None = None) -> int:
        """Points of `collection` (of `tenant`, matching `filter`)."""
        request = points_pb2.CountPointsRequest(collection=collection)
        convert.filter_to_proto(filter, request.filter)
        if tenant is not None:
            request.tenant = tenant
        return int(self._call(self._points.Count, request).count)

    def facet(self, collection: str, field: str, *, kind: str | None = None, limit: int = 10,
              bins: int | Sequence[float] | None = None, filter: Filter | Mapping[str, Any] | None = None,
              tenant: str | None = None) -> FacetResult:
        """Exact aggregates of a payload field (of `tenant`, matching `filter`): `Collection.facet`.
        `time_ms` is the server's time."""
        request = convert.facet_request_to_proto(collection, field, kind=kind, limit=limit, bins=bins,
                                                 filter=filter, tenant=tenant)
        return convert.facet_result_from_proto(self._call(self._points.Facet, request))

    def tenants(self, collection: str) -> dict[str, int]:
        """Every tenant of `collection` with its number of points (a tenant key sees itself only)."""
        response = self._call(self._tenants.List, points_pb2.ListTenantsRequest(collection=collection))
        return {t.tenant: int(t.count) for t in response.tenants}

    def delete_tenant(self, collection: str, tenant: str, *, wait: bool = False) -> int:
        """Delete every point of `tenant`; returns how many there were."""
        request = points_pb2.DeleteTenantRequest(collection=collection, tenant=tenant, wait=wait)
        return int(self._call(self._tenants.Delete, request).deleted)

    # ------------------------------------------------------------------ search
    def search(
        self,
        collection: str,
        query: str | np.ndarray | Sequence[float],
        k: int = 10,
        *,
        mode: str = "dense",
        params: Mapping[str, float] | None = None,
        fusion: str | None = None,
        rerank: Rerank | int | None = None,
        filter: Filter | Mapping[str, Any] | None = None,
        tenant: str | None = None,
        with_payload: bool = True,
    ) -> list[Hit]:
        """The k best points for a text (encoded by the server) or a vector, best first.

        The options are those of the in-process `Collection.search`; `query` takes every option.
        """
        _check_int(k, "k", -_INT32_MAX - 1, _INT32_MAX)
        request = SearchRequest.simple(query, k if k > 0 else 1, mode=mode, params=params, fusion=fusion,
                                       rerank=rerank, filter=filter, tenant=tenant, with_payload=with_payload)
        message = convert.search_request_to_proto(collection, request)
        message.k = k  # k <= 0 is the server's to reject, with its own message
        return self._search_message(message).hits

    def query(self, collection: str, request: SearchRequest) -> SearchResult:
        """Run a full SearchRequest (first stages, fusion, rerank, filter, tenant, explain)."""
        return self._search_message(convert.search_request_to_proto(collection, request))

    def _search_message(self, message: search_pb2.SearchRequest) -> SearchResult:
        response = self._call(self._search.Search, message)
        # metadata_from_proto reads integral doubles back as ints ("candidates": 100, not 100.0)
        explain = convert.metadata_from_proto(response.explain) if response.HasField("explain") else None
        return SearchResult([convert.hit_from_proto(h) for h in response.hits], explain)


    # ------------------------------------------------------------------ keys (admin)
    def create_key(self, *, tenant: str | None = None, admin: bool = False,
                   rights: Mapping[str, Iterable[str]] | None = None) -> tuple[ApiKey, str]:
        """Create an API key on the server: its record and the key itself (shown this once)."""
        request = keys_pb2.CreateKeyRequest(admin=admin, tenant=tenant)
        for collection, granted in (rights or {}).items():
            request.rights[collection].rights.extend([granted] if isinstance(granted, str) else sorted(granted))
        response = self._call(self._keys.Create, request)
        return ApiKey.from_proto(response.key), response.secret

    def list_keys(self) -> list[ApiKey]:
        return [ApiKey.from_proto(k) for k in self._call(self._keys.List, keys_pb2.ListKeysRequest()).keys]

    def revoke_key(self, key_id: str) -> ApiKey:
        return ApiKey.from_proto(self._call(self._keys.Revoke, keys_pb2.RevokeKeyRequest(id=key_id)).key)

    # ------------------------------------------------------------------ rag
    def answer_events(self, collection: str, question: str, *, k: int | None = None, mode: str = "hybrid",
                      filter: Filter | Mapping[str, Any] | None = None, tenant: str | None = None,
                      generator: str = "", context_tokens: int | None = None, max_new_tokens: int | None = None,
                      rerank: Rerank | int | None = None, explain: bool = False,
                      graph: GraphExpansion | Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> Iterator[RagEvent]:
        """The server's answer as it streams (`lamina.rag.pipeline` events): the citations, each piece of
        the answer, then the whole result. `generator` names one the server offers ("" = its default);
        `timeout` (default: the client's) bounds the whole stream."""
        message = answer_request_to_proto(collection, question, k=k, mode=mode, filter=filter, tenant=tenant,
                                          generator=generator, context_tokens=context_tokens,
                                          max_new_tokens=max_new_tokens, rerank=rerank, explain=explain,
                                          graph=graph)
        citations: list[Citation] = []
        context = ""
        pieces: list[str] = []
        try:
            for response in self._rag.Answer(message, timeout=self.timeout if timeout is None else timeout):
                kind = response.WhichOneof("event")
                if kind == "citations":
                    citations = [citation_from_proto(c) for c in response.citations.citations]
                    context = response.citations.context
                    yield CitationsEvent(citations, context)
                elif kind == "token":
                    pieces.append(response.token)
                    yield TokenEvent(response.token)
                elif kind == "done":
                    done = response.done
                    yield DoneEvent(RagResult(
                        question, done.answer, citations, context, [], dict(done.timings),
                        done.error if done.HasField("error") else None,
                        stats=convert.metadata_from_proto(done.stats),
                        explain=convert.metadata_from_proto(done.explain) if done.HasField("explain") else None))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def answer(self, collection: str, question: str, **options: Any) -> RagResult:
        """The server's whole answer (options as `answer_events`)."""
        for event in self.answer_events(collection, question, **options):
            if isinstance(event, DoneEvent):
                return event.result
        raise ServiceError(grpc.StatusCode.INTERNAL, "the answer stream ended without its final message")


def citation_from_proto(message: Any) -> Citation:
    return Citation(message.number, message.chunk_id, message.parent, message.start, message.end, message.score,
                    message.source if message.HasField("source") else None,
                    message.page if message.HasField("page") else None,
                    message.section if message.HasField("section") else None)


class RemoteCollection:
    """One collection of a server, with the methods of the in-process `Collection`."""

    def __init__(self, client: Client, config: CollectionConfig) -> None:
        self.client = client
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r} at {self.client.target!r})"

    def upsert(self, points: Iterable[Document | Mapping[str, Any]], *, wait: bool = False,
               delete: Sequence[str] = ()) -> list[RowResult]:
        return self.client.upsert(self.name, points, wait=wait, delete=delete)

    def delete(self, ids: Sequence[str], *, wait: bool = False) -> list[str]:
        return self.client.delete(self.name, ids, wait=wait)

    def get(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Document | None]:
        return self.client.get(self.name, ids, with_vectors=with_vectors)

    def search(self, query: str | np.ndarray | Sequence[float], k: int = 10, **options: Any) -> list[Hit]:
        return self.client.search(self.name, query, k, **options)

    def query(self, request: SearchRequest) -> SearchResult:
        return self.client.query(self.name, request)

    def count(self, *, tenant: str | None = None, filter: Filter | Mapping[str, Any] | None = None) -> int:
        return self.client.count(self.name, tenant=tenant, filter=filter)

    def facet(self, field: str, *, kind: str | None = None, limit: int = 10,
              bins: int | Sequence[float] | None = None, filter: Filter | Mapping[str, Any] | None = None,
              tenant: str | None = None) -> FacetResult:
        return self.client.facet(self.name, field, kind=kind, limit=limit, bins=bins, filter=filter, tenant=tenant)

    def tenants(self) -> dict[str, int]:
        return self.client.tenants(self.name)

    def delete_tenant(self, tenant: str, *, wait: bool = False) -> int:
        return self.client.delete_tenant(self.name, tenant, wait=wait)

    def answer(self, question: str, **options: Any) -> RagResult:
        """The server's RAG answer (generated on the server; options as `Client.answer_events`)."""
        return self.client.answer(self.name, question, **options)

    def as_pipeline(self, **options: Any) -> Pipeline:
        """A RAG pipeline in this process over the server's retrieval (generation runs here)."""
        return Pipeline(self, **options)
