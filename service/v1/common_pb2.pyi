from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_IP: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]

class IndexKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_KIND_UNSPECIFIED: _ClassVar[IndexKind]
    INDEX_KIND_FLAT: _ClassVar[IndexKind]
    INDEX_KIND_IVF: _ClassVar[IndexKind]
    INDEX_KIND_HNSW: _ClassVar[IndexKind]
    INDEX_KIND_SPANN: _ClassVar[IndexKind]

class PayloadKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYLOAD_KIND_UNSPECIFIED: _ClassVar[PayloadKind]
    PAYLOAD_KIND_KEYWORD: _ClassVar[PayloadKind]
    PAYLOAD_KIND_NUMERIC: _ClassVar[PayloadKind]
METRIC_UNSPECIFIED: Metric
METRIC_IP: Metric
METRIC_L2: Metric
INDEX_KIND_UNSPECIFIED: IndexKind
INDEX_KIND_FLAT: IndexKind
INDEX_KIND_IVF: IndexKind
INDEX_KIND_HNSW: IndexKind
INDEX_KIND_SPANN: IndexKind
PAYLOAD_KIND_UNSPECIFIED: PayloadKind
PAYLOAD_KIND_KEYWORD: PayloadKind
PAYLOAD_KIND_NUMERIC: PayloadKind

class IndexConfig(_message.Message):
    __slots__ = ("kind", "nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search", "gpu", "spann", "scan_codes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NLIST_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    HNSW_M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    SPANN_FIELD_NUMBER: _ClassVar[int]
    SCAN_CODES_FIELD_NUMBER: _ClassVar[int]
    kind: IndexKind
    nlist: int
    nprobe: int
    hnsw_m: int
    ef_construction: int
    ef_search: int
    gpu: bool
    spann: _struct_pb2.Struct
    scan_codes: bool
    def __init__(self, kind: _Optional[_Union[IndexKind, str]] = ..., nlist: _Optional[int] = ..., nprobe: _Optional[int] = ..., hnsw_m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., ef_search: _Optional[int] = ..., gpu: _Optional[bool] = ..., spann: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., scan_codes: _Optional[bool] = ...) -> None: ...

class SparseConfig(_message.Message):
    __slots__ = ("encoder", "index")
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    encoder: str
    index: _struct_pb2.Struct
    def __init__(self, encoder: _Optional[str] = ..., index: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class MultivectorConfig(_message.Message):
    __slots__ = ("encoder", "codec")
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    encoder: str
    codec: str
    def __init__(self, encoder: _Optional[str] = ..., codec: _Optional[str] = ...) -> None: ...

class GraphConfig(_message.Message):
    __slots__ = ("extractor", "synonym_threshold", "max_cooc", "cooc_weight")
    EXTRACTOR_FIELD_NUMBER: _ClassVar[int]
    SYNONYM_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_COOC_FIELD_NUMBER: _ClassVar[int]
    COOC_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    extractor: str
    synonym_threshold: float
    max_cooc: int
    cooc_weight: float
    def __init__(self, extractor: _Optional[str] = ..., synonym_threshold: _Optional[float] = ..., max_cooc: _Optional[int] = ..., cooc_weight: _Optional[float] = ...) -> None: ...

class CollectionConfig(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "encoder", "sparse", "multivector", "payload", "tenant_tree", "clustering_key", "graph")
    class PayloadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PayloadKind
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PayloadKind, str]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    MULTIVECTOR_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TENANT_TREE_FIELD_NUMBER: _ClassVar[int]
    CLUSTERING_KEY_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    index: IndexConfig
    encoder: str
    sparse: SparseConfig
    multivector: MultivectorConfig
    payload: _containers.ScalarMap[str, PayloadKind]
    tenant_tree: bool
    clustering_key: str
    graph: GraphConfig
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., index: _Optional[_Union[IndexConfig, _Mapping]] = ..., encoder: _Optional[str] = ..., sparse: _Optional[_Union[SparseConfig, _Mapping]] = ..., multivector: _Optional[_Union[MultivectorConfig, _Mapping]] = ..., payload: _Optional[_Mapping[str, PayloadKind]] = ..., tenant_tree: _Optional[bool] = ..., clustering_key: _Optional[str] = ..., graph: _Optional[_Union[GraphConfig, _Mapping]] = ...) -> None: ...

class DenseVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class SparseVector(_message.Message):
    __slots__ = ("indices", "values")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    indices: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, indices: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("dense", "sparse")
    DENSE_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    dense: DenseVector
    sparse: SparseVector
    def __init__(self, dense: _Optional[_Union[DenseVector, _Mapping]] = ..., sparse: _Optional[_Union[SparseVector, _Mapping]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("must", "should", "must_not")
    MUST_FIELD_NUMBER: _ClassVar[int]
    SHOULD_FIELD_NUMBER: _ClassVar[int]
    MUST_NOT_FIELD_NUMBER: _ClassVar[int]
    must: _containers.RepeatedCompositeFieldContainer[Condition]
    should: _containers.RepeatedCompositeFieldContainer[Condition]
    must_not: _containers.RepeatedCompositeFieldContainer[Condition]
    def __init__(self, must: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., should: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., must_not: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("field", "filter")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    field: FieldCondition
    filter: Filter
    def __init__(self, field: _Optional[_Union[FieldCondition, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class FieldCondition(_message.Message):
    __slots__ = ("key", "match", "any", "range", "exists")
    KEY_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    match: Scalar
    any: ScalarList
    range: RangeCondition
    exists: bool
    def __init__(self, key: _Optional[str] = ..., match: _Optional[_Union[Scalar, _Mapping]] = ..., any: _Optional[_Union[ScalarList, _Mapping]] = ..., range: _Optional[_Union[RangeCondition, _Mapping]] = ..., exists: _Optional[bool] = ...) -> None: ...

class Scalar(_message.Message):
    __slots__ = ("text", "integer", "number", "flag")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FLAG_FIELD_NUMBER: _ClassVar[int]
    text: str
    integer: int
    number: float
    flag: bool
    def __init__(self, text: _Optional[str] = ..., integer: _Optional[int] = ..., number: _Optional[float] = ..., flag: _Optional[bool] = ...) -> None: ...

class ScalarList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Scalar]
    def __init__(self, values: _Optional[_Iterable[_Union[Scalar, _Mapping]]] = ...) -> None: ...

class RangeCondition(_message.Message):
    __slots__ = ("lt", "lte", "gt", "gte")
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    lt: Scalar
    lte: Scalar
    gt: Scalar
    gte: Scalar
    def __init__(self, lt: _Optional[_Union[Scalar, _Mapping]] = ..., lte: _Optional[_Union[Scalar, _Mapping]] = ..., gt: _Optional[_Union[Scalar, _Mapping]] = ..., gte: _Optional[_Union[Scalar, _Mapping]] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("id", "text", "vector", "metadata", "tenant")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    vector: Vector
    metadata: _struct_pb2.Struct
    tenant: str
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "text", "metadata", "tenant")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    text: str
    metadata: _struct_pb2.Struct
    tenant: str
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class RowResult(_message.Message):
    __slots__ = ("index", "id", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    error: str
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
