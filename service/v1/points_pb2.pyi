from lamina.service.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FacetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACET_KIND_UNSPECIFIED: _ClassVar[FacetKind]
    FACET_KIND_KEYWORD: _ClassVar[FacetKind]
    FACET_KIND_NUMERIC: _ClassVar[FacetKind]
FACET_KIND_UNSPECIFIED: FacetKind
FACET_KIND_KEYWORD: FacetKind
FACET_KIND_NUMERIC: FacetKind

class UpsertPointsRequest(_message.Message):
    __slots__ = ("collection", "points", "wait", "delete_ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    DELETE_IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point]
    wait: bool
    delete_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[_Iterable[_Union[_common_pb2.Point, _Mapping]]] = ..., wait: _Optional[bool] = ..., delete_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpsertPointsResponse(_message.Message):
    __slots__ = ("results", "time")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.RowResult]
    time: float
    def __init__(self, results: _Optional[_Iterable[_Union[_common_pb2.RowResult, _Mapping]]] = ..., time: _Optional[float] = ...) -> None: ...

class DeletePointsRequest(_message.Message):
    __slots__ = ("collection", "ids", "wait")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    wait: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., wait: _Optional[bool] = ...) -> None: ...

class DeletePointsResponse(_message.Message):
    __slots__ = ("deleted_ids", "time")
    DELETED_IDS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    deleted_ids: _containers.RepeatedScalarFieldContainer[str]
    time: float
    def __init__(self, deleted_ids: _Optional[_Iterable[str]] = ..., time: _Optional[float] = ...) -> None: ...

class GetPointsRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    with_vectors: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., with_vectors: _Optional[bool] = ...) -> None: ...

class GetPointsResponse(_message.Message):
    __slots__ = ("points", "time")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point]
    time: float
    def __init__(self, points: _Optional[_Iterable[_Union[_common_pb2.Point, _Mapping]]] = ..., time: _Optional[float] = ...) -> None: ...

class CountPointsRequest(_message.Message):
    __slots__ = ("collection", "filter", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _common_pb2.Filter
    tenant: str
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class CountPointsResponse(_message.Message):
    __slots__ = ("count", "time")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    count: int
    time: float
    def __init__(self, count: _Optional[int] = ..., time: _Optional[float] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class TenantCount(_message.Message):
    __slots__ = ("tenant", "count")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    count: int
    def __init__(self, tenant: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants", "time")
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[TenantCount]
    time: float
    def __init__(self, tenants: _Optional[_Iterable[_Union[TenantCount, _Mapping]]] = ..., time: _Optional[float] = ...) -> None: ...

class DeleteTenantRequest(_message.Message):
    __slots__ = ("collection", "tenant", "wait")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    wait: bool
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class DeleteTenantResponse(_message.Message):
    __slots__ = ("deleted", "time")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    time: float
    def __init__(self, deleted: _Optional[int] = ..., time: _Optional[float] = ...) -> None: ...

class FacetRequest(_message.Message):
    __slots__ = ("collection", "field", "kind", "limit", "bins", "edges", "filter", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BINS_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    field: str
    kind: FacetKind
    limit: int
    bins: int
    edges: _containers.RepeatedScalarFieldContainer[float]
    filter: _common_pb2.Filter
    tenant: str
    def __init__(self, collection: _Optional[str] = ..., field: _Optional[str] = ..., kind: _Optional[_Union[FacetKind, str]] = ..., limit: _Optional[int] = ..., bins: _Optional[int] = ..., edges: _Optional[_Iterable[float]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class FacetHit(_message.Message):
    __slots__ = ("value", "count")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    value: _common_pb2.Scalar
    count: int
    def __init__(self, value: _Optional[_Union[_common_pb2.Scalar, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class FacetStats(_message.Message):
    __slots__ = ("count", "min", "max", "edges", "counts")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    min: float
    max: float
    edges: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, count: _Optional[int] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., edges: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class FacetResponse(_message.Message):
    __slots__ = ("field", "kind", "documents", "hits", "distinct", "stats", "time")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    field: str
    kind: FacetKind
    documents: int
    hits: _containers.RepeatedCompositeFieldContainer[FacetHit]
    distinct: int
    stats: FacetStats
    time: float
    def __init__(self, field: _Optional[str] = ..., kind: _Optional[_Union[FacetKind, str]] = ..., documents: _Optional[int] = ..., hits: _Optional[_Iterable[_Union[FacetHit, _Mapping]]] = ..., distinct: _Optional[int] = ..., stats: _Optional[_Union[FacetStats, _Mapping]] = ..., time: _Optional[float] = ...) -> None: ...
