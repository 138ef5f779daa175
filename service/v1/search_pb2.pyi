from google.protobuf import struct_pb2 as _struct_pb2
from lamina.service.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GraphFusion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRAPH_FUSION_UNSPECIFIED: _ClassVar[GraphFusion]
    GRAPH_FUSION_PPR: _ClassVar[GraphFusion]
    GRAPH_FUSION_RRF: _ClassVar[GraphFusion]

class GraphMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRAPH_METHOD_UNSPECIFIED: _ClassVar[GraphMethod]
    GRAPH_METHOD_EXACT: _ClassVar[GraphMethod]
    GRAPH_METHOD_PUSH: _ClassVar[GraphMethod]

class StageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_KIND_UNSPECIFIED: _ClassVar[StageKind]
    STAGE_KIND_DENSE: _ClassVar[StageKind]
    STAGE_KIND_SPARSE: _ClassVar[StageKind]

class FusionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_METHOD_UNSPECIFIED: _ClassVar[FusionMethod]
    FUSION_METHOD_RRF: _ClassVar[FusionMethod]
    FUSION_METHOD_WEIGHTED: _ClassVar[FusionMethod]
    FUSION_METHOD_ZSCORE: _ClassVar[FusionMethod]
    FUSION_METHOD_ADAPTIVE: _ClassVar[FusionMethod]
GRAPH_FUSION_UNSPECIFIED: GraphFusion
GRAPH_FUSION_PPR: GraphFusion
GRAPH_FUSION_RRF: GraphFusion
GRAPH_METHOD_UNSPECIFIED: GraphMethod
GRAPH_METHOD_EXACT: GraphMethod
GRAPH_METHOD_PUSH: GraphMethod
STAGE_KIND_UNSPECIFIED: StageKind
STAGE_KIND_DENSE: StageKind
STAGE_KIND_SPARSE: StageKind
FUSION_METHOD_UNSPECIFIED: FusionMethod
FUSION_METHOD_RRF: FusionMethod
FUSION_METHOD_WEIGHTED: FusionMethod
FUSION_METHOD_ZSCORE: FusionMethod
FUSION_METHOD_ADAPTIVE: FusionMethod

class SearchRequest(_message.Message):
    __slots__ = ("collection", "text", "vector", "k", "params", "with_payload", "prefetch", "fusion", "rerank", "filter", "tenant", "explain", "graph")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PREFETCH_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    collection: str
    text: str
    vector: _common_pb2.Vector
    k: int
    params: _containers.ScalarMap[str, float]
    with_payload: bool
    prefetch: _containers.RepeatedCompositeFieldContainer[Prefetch]
    fusion: Fusion
    rerank: Rerank
    filter: _common_pb2.Filter
    tenant: str
    explain: bool
    graph: GraphStage
    def __init__(self, collection: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., k: _Optional[int] = ..., params: _Optional[_Mapping[str, float]] = ..., with_payload: _Optional[bool] = ..., prefetch: _Optional[_Iterable[_Union[Prefetch, _Mapping]]] = ..., fusion: _Optional[_Union[Fusion, _Mapping]] = ..., rerank: _Optional[_Union[Rerank, _Mapping]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., tenant: _Optional[str] = ..., explain: _Optional[bool] = ..., graph: _Optional[_Union[GraphStage, _Mapping]] = ...) -> None: ...

class GraphStage(_message.Message):
    __slots__ = ("limit", "damping", "passage_weight", "seed_top", "seed_threshold", "fusion", "weight", "method", "eps")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DAMPING_FIELD_NUMBER: _ClassVar[int]
    PASSAGE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_TOP_FIELD_NUMBER: _ClassVar[int]
    SEED_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    EPS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    damping: float
    passage_weight: float
    seed_top: int
    seed_threshold: float
    fusion: GraphFusion
    weight: float
    method: GraphMethod
    eps: float
    def __init__(self, limit: _Optional[int] = ..., damping: _Optional[float] = ..., passage_weight: _Optional[float] = ..., seed_top: _Optional[int] = ..., seed_threshold: _Optional[float] = ..., fusion: _Optional[_Union[GraphFusion, str]] = ..., weight: _Optional[float] = ..., method: _Optional[_Union[GraphMethod, str]] = ..., eps: _Optional[float] = ...) -> None: ...

class Prefetch(_message.Message):
    __slots__ = ("kind", "text", "vector", "limit", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    kind: StageKind
    text: str
    vector: _common_pb2.Vector
    limit: int
    params: _containers.ScalarMap[str, float]
    def __init__(self, kind: _Optional[_Union[StageKind, str]] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., limit: _Optional[int] = ..., params: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Fusion(_message.Message):
    __slots__ = ("method", "weights", "rrf_k", "feedback", "feedback_weight")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    method: FusionMethod
    weights: _containers.RepeatedScalarFieldContainer[float]
    rrf_k: float
    feedback: int
    feedback_weight: float
    def __init__(self, method: _Optional[_Union[FusionMethod, str]] = ..., weights: _Optional[_Iterable[float]] = ..., rrf_k: _Optional[float] = ..., feedback: _Optional[int] = ..., feedback_weight: _Optional[float] = ...) -> None: ...

class Rerank(_message.Message):
    __slots__ = ("kappa", "alpha", "beta")
    KAPPA_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    kappa: int
    alpha: float
    beta: int
    def __init__(self, kappa: _Optional[int] = ..., alpha: _Optional[float] = ..., beta: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "time", "explain")
    HITS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_common_pb2.Hit]
    time: float
    explain: _struct_pb2.Struct
    def __init__(self, hits: _Optional[_Iterable[_Union[_common_pb2.Hit, _Mapping]]] = ..., time: _Optional[float] = ..., explain: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
