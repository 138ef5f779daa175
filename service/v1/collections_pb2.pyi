from lamina.service.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "encoder", "sparse", "no_sparse", "multivector", "payload", "tenant_tree", "clustering_key", "graph")
    class PayloadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.PayloadKind
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.PayloadKind, str]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    NO_SPARSE_FIELD_NUMBER: _ClassVar[int]
    MULTIVECTOR_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TENANT_TREE_FIELD_NUMBER: _ClassVar[int]
    CLUSTERING_KEY_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: _common_pb2.Metric
    index: _common_pb2.IndexConfig
    encoder: str
    sparse: _common_pb2.SparseConfig
    no_sparse: bool
    multivector: _common_pb2.MultivectorConfig
    payload: _containers.ScalarMap[str, _common_pb2.PayloadKind]
    tenant_tree: bool
    clustering_key: str
    graph: _common_pb2.GraphConfig
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[_common_pb2.Metric, str]] = ..., index: _Optional[_Union[_common_pb2.IndexConfig, _Mapping]] = ..., encoder: _Optional[str] = ..., sparse: _Optional[_Union[_common_pb2.SparseConfig, _Mapping]] = ..., no_sparse: _Optional[bool] = ..., multivector: _Optional[_Union[_common_pb2.MultivectorConfig, _Mapping]] = ..., payload: _Optional[_Mapping[str, _common_pb2.PayloadKind]] = ..., tenant_tree: _Optional[bool] = ..., clustering_key: _Optional[str] = ..., graph: _Optional[_Union[_common_pb2.GraphConfig, _Mapping]] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("config", "time")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    config: _common_pb2.CollectionConfig
    time: float
    def __init__(self, config: _Optional[_Union[_common_pb2.CollectionConfig, _Mapping]] = ..., time: _Optional[float] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCollectionResponse(_message.Message):
    __slots__ = ("config", "count", "time")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    config: _common_pb2.CollectionConfig
    count: int
    time: float
    def __init__(self, config: _Optional[_Union[_common_pb2.CollectionConfig, _Mapping]] = ..., count: _Optional[int] = ..., time: _Optional[float] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections", "time")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[_common_pb2.CollectionConfig]
    time: float
    def __init__(self, collections: _Optional[_Iterable[_Union[_common_pb2.CollectionConfig, _Mapping]]] = ..., time: _Optional[float] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ("time",)
    TIME_FIELD_NUMBER: _ClassVar[int]
    time: float
    def __init__(self, time: _Optional[float] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("path", "seq", "collections", "time")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    path: str
    seq: int
    collections: _containers.RepeatedScalarFieldContainer[str]
    time: float
    def __init__(self, path: _Optional[str] = ..., seq: _Optional[int] = ..., collections: _Optional[_Iterable[str]] = ..., time: _Optional[float] = ...) -> None: ...
