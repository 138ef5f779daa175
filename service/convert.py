"""Conversions between the wire messages (`lamina.service.v1`) and the domain types (`lamina.index.types`).

Every function is `<thing>_to_proto` or `<thing>_from_proto`; the servicer and the client use
the same pair, so one place decides how each field travels. Validation stays in the domain
(`Collection`, the dataclasses' `__post_init__`): these functions only reject what the wire
cannot carry, with InvalidArgument naming the value.

Metadata travels as `google.protobuf.Struct`, whose numbers are all doubles. Integers are
therefore sent as doubles and every integral double is read back as an `int` (JSON has one
number type, and a metadata field written as `{"n": 2}` should read back as `2`, not `2.0`);
the price is that `1.0` also reads back as `1`. Integers beyond 2**53 are rejected on the way
out because a double cannot hold them exactly. NaN and infinities are carried as they are, so
that the server judges them (and reports them per row) exactly as the in-process API does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf import struct_pb2
from lamina.index.errors import InvalidArgument
from lamina.index.facets import FacetCount, FacetResult, NumericStats
from lamina.index.filters import Filter, Match, MatchAny, Range, as_filter
from lamina.index.sparse import SparseBatch
from lamina.index.types import (
    CollectionConfig,
    Document,
    Hit,
    IndexConfig,
    GraphConfig,
    MultivectorConfig,
    RowResult,
    SparseConfig,
    as_document,
)
from lamina.retrieval.query import DEFAULT_FUSION, Fusion, GraphExpansion, Rerank, SearchRequest, Stage
from lamina.service.v1 import common_pb2 as pb
from lamina.service.v1 import points_pb2, search_pb2

MAX_EXACT_INT = 2**53  # the largest magnitude a double holds exactly, with every integer below it

METRIC_TO_PROTO: dict[str, int] = {"ip": pb.METRIC_IP, "l2": pb.METRIC_L2}
METRIC_FROM_PROTO: dict[int, str] = {v: k for k, v in METRIC_TO_PROTO.items()}
INDEX_KIND_TO_PROTO: dict[str, int] = {"flat": pb.INDEX_KIND_FLAT, "ivf": pb.INDEX_KIND_IVF, "hnsw": pb.INDEX_KIND_HNSW,
                                       "spann": pb.INDEX_KIND_SPANN}
INDEX_KIND_FROM_PROTO: dict[int, str] = {v: k for k, v in INDEX_KIND_TO_PROTO.items()}
PAYLOAD_KIND_TO_PROTO: dict[str, int] = {"keyword": pb.PAYLOAD_KIND_KEYWORD, "numeric": pb.PAYLOAD_KIND_NUMERIC}
PAYLOAD_KIND_FROM_PROTO: dict[int, str] = {v: k for k, v in PAYLOAD_KIND_TO_PROTO.items()}
_INDEX_PARAMS = ("nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search", "gpu", "scan_codes")


# ---------------------------------------------------------------------------- configs
def metric_to_proto(metric: str) -> int:
    try:
        return METRIC_TO_PROTO[metric]
    except KeyError:
        raise InvalidArgument(f"unknown metric {metric!r}; expected one of {', '.join(METRIC_TO_PROTO)}") from None


def metric_from_proto(value: int) -> str:
    """The metric name; METRIC_UNSPECIFIED means the default, inner product."""
    if value == pb.METRIC_UNSPECIFIED:
        return "ip"
    try:
        return METRIC_FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument(f"unknown metric enum value {value}") from None


def index_config_to_proto(config: IndexConfig) -> pb.IndexConfig:
    try:
        kind = INDEX_KIND_TO_PROTO[config.kind]
    except KeyError:
        raise InvalidArgument(f"index kind {config.kind!r} cannot be sent over gRPC") from None
    return pb.IndexConfig(kind=kind, **{name: getattr(config, name) for name in _INDEX_PARAMS},
                          spann=metadata_to_proto(config.spann, exact=False))


def index_config_from_proto(message: pb.IndexConfig) -> IndexConfig:
    """An IndexConfig; the kind and parameters left unset take IndexConfig's defaults."""
    params: dict[str, Any] = {name: getattr(message, name) for name in _INDEX_PARAMS if message.HasField(name)}
    if message.spann.fields:
        params["spann"] = metadata_from_proto(message.spann)
    if message.kind != pb.INDEX_KIND_UNSPECIFIED:
        try:
            params["kind"] = INDEX_KIND_FROM_PROTO[message.kind]
        except KeyError:
            raise InvalidArgument(f"unknown index kind enum value {message.kind}") from None
    return IndexConfig(**params)


def sparse_config_to_proto(config: SparseConfig) -> pb.SparseConfig:
    return pb.SparseConfig(encoder=config.encoder, index=metadata_to_proto(config.index, exact=False))


def sparse_config_from_proto(message: pb.SparseConfig) -> SparseConfig:
    return SparseConfig(encoder=message.encoder or "bm25", index=metadata_from_proto(message.index))


def multivector_config_to_proto(config: MultivectorConfig) -> pb.MultivectorConfig:
    return pb.MultivectorConfig(encoder=config.encoder, codec=config.codec)


def multivector_config_from_proto(message: pb.MultivectorConfig) -> MultivectorConfig:
    defaults = MultivectorConfig()
    return MultivectorConfig(encoder=message.encoder or defaults.encoder, codec=message.codec or defaults.codec)


def graph_config_to_proto(config: GraphConfig) -> pb.GraphConfig:
    return pb.GraphConfig(extractor=config.extractor, synonym_threshold=config.synonym_threshold,
                          max_cooc=config.max_cooc, cooc_weight=config.cooc_weight)


def graph_config_from_proto(message: pb.GraphConfig) -> GraphConfig:
    """Absent fields take `GraphConfig`'s defaults; the dataclass names a bad value."""
    options: dict[str, Any] = {name: getattr(message, name)
                               for name in ("synonym_threshold", "max_cooc", "cooc_weight") if message.HasField(name)}
    if message.extractor:
        options["extractor"] = message.extractor
    return GraphConfig(**options)


def payload_to_proto(payload: Mapping[str, str]) -> dict[str, int]:
    return {key: PAYLOAD_KIND_TO_PROTO[kind] for key, kind in payload.items()}


def payload_from_proto(payload: Mapping[str, int]) -> dict[str, str]:
    out = {}
    for key, kind in payload.items():
        if kind not in PAYLOAD_KIND_FROM_PROTO:
            raise InvalidArgument(f"payload field {key!r}: unknown or unspecified payload kind {kind}")
        out[key] = PAYLOAD_KIND_FROM_PROTO[kind]
    return out


def collection_config_to_proto(config: CollectionConfig) -> pb.CollectionConfig:
    message = pb.CollectionConfig(
        name=config.name, dim=config.dim, metric=metric_to_proto(config.metric),
        index=index_config_to_proto(config.index), payload=payload_to_proto(config.payload),
        tenant_tree=config.tenant_tree,
    )
    if config.encoder is not None:
        message.encoder = config.encoder
    if config.sparse is not None:
        message.sparse.CopyFrom(sparse_config_to_proto(config.sparse))
    if config.multivector is not None:
        message.multivector.CopyFrom(multivector_config_to_proto(config.multivector))
    if config.clustering_key is not None:
        message.clustering_key = config.clustering_key
    if config.graph is not None:
        message.graph.CopyFrom(graph_config_to_proto(config.graph))
    return message


def collection_config_from_proto(message: pb.CollectionConfig) -> CollectionConfig:
    return CollectionConfig(
        name=message.name,
        dim=message.dim,
        metric=metric_from_proto(message.metric),
        index=index_config_from_proto(message.index),
        encoder=message.encoder if message.HasField("encoder") else None,
        sparse=sparse_config_from_proto(message.sparse) if message.HasField("sparse") else None,
        multivector=multivector_config_from_proto(message.multivector) if message.HasField("multivector") else None,
        payload=payload_from_proto(message.payload),
        tenant_tree=message.tenant_tree,
        clustering_key=message.clustering_key if message.HasField("clustering_key") else None,
        graph=graph_config_from_proto(message.graph) if message.HasField("graph") else None,
    )


# ---------------------------------------------------------------------------- metadata
def _json_value(value: Any, path: str, exact: bool) -> Any:
    """`value` as plain JSON types that Struct accepts (numpy scalars unwrapped, tuples as lists)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.generic):  # np.float32(1.5), np.int64(3), np.bool_(True)
        return _json_value(value.item(), path, exact)
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            if not exact:
                return float(value)
            raise InvalidArgument(
                f"metadata field {path!r}: integer {value} exceeds 2**53 and cannot travel exactly as a JSON number"
            )
        return value
    if isinstance(value, float):
        return value  # NaN and infinities included: the server rejects them like the in-process API
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{path}[{i}]", exact) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return _json_object(value, path, exact)
    raise InvalidArgument(f"metadata field {path!r} has unsupported type {type(value).__name__}")


def _json_object(value: Mapping[Any, Any], path: str | None, exact: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            where = f" under {path!r}" if path else ""
            raise InvalidArgument(f"metadata key {key!r}{where} is not a string")
        out[key] = _json_value(item, f"{path}.{key}" if path else key, exact)
    return out


def metadata_to_proto(metadata: Mapping[str, Any] | None, *, exact: bool = True) -> struct_pb2.Struct:
    """A Struct holding `metadata` (a JSON object); InvalidArgument for what JSON cannot hold.

    `exact=False` sends integers beyond 2**53 rounded instead of rejecting them: the server
    uses it for stored metadata, which a read must return even if the in-process API wrote it.
    """
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a JSON object, got {type(metadata).__name__}")
    struct = struct_pb2.Struct()
    struct.update(_json_object(metadata, None, exact))
    return struct


def _value_from_proto(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if math.isfinite(number) and number.is_integer() and abs(number) <= MAX_EXACT_INT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return metadata_from_proto(value.struct_value)
    if kind == "list_value":
        return [_value_from_proto(item) for item in value.list_value.values]
    return None  # null_value, or a Value with no kind set


def metadata_from_proto(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A plain dict; integral numbers become ints (see the module docstring)."""
    return {key: _value_from_proto(value) for key, value in struct.fields.items()}


# ---------------------------------------------------------------------------- vectors
def vector_to_proto(values: np.ndarray | Sequence[float], what: str = "vector",
                    out: pb.Vector | None = None) -> pb.Vector:
    """A dense Vector (filled into `out` when given, saving a copy); the server checks dimension and finiteness."""
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not numeric: {exc}") from None
    if array.ndim != 1:
        raise InvalidArgument(f"{what} must be one-dimensional, got shape {array.shape}")
    if out is None:
        out = pb.Vector()
    out.dense.SetInParent()  # an empty vector still says "dense", so the server reports its dimension
    out.dense.values.extend(array.tolist())
    return out


def vector_from_proto(message: pb.Vector, what: str = "vector") -> np.ndarray:
    kind = message.WhichOneof("kind")
    if kind == "dense":
        return np.array(message.dense.values, dtype=np.float32)
    raise InvalidArgument(f"{what} has no kind this server supports here (expected dense)")


def sparse_to_proto(weights: SparseBatch | Mapping[int, float], out: pb.Vector | None = None) -> pb.Vector:
    """One sparse vector ({term: weight} or a one-row SparseBatch) as a Vector."""
    if isinstance(weights, SparseBatch):
        if len(weights) != 1:
            raise InvalidArgument(f"a sparse query is one vector, got {len(weights)}")
        terms, values = weights.row(0)
    else:
        terms, values = list(weights.keys()), list(weights.values())
    if out is None:
        out = pb.Vector()
    out.sparse.SetInParent()
    try:
        out.sparse.indices.extend(int(t) for t in terms)
        out.sparse.values.extend(float(v) for v in values)
    except (TypeError, ValueError) as exc:  # a negative term id does not fit a uint32
        raise InvalidArgument(f"sparse vector has a term id or weight the wire cannot carry: {exc}") from None
    return out


def query_from_proto(message: Any, what: str = "query") -> str | np.ndarray | SparseBatch | None:
    """The text, dense vector or sparse weights of a message with a `query` oneof (None: absent)."""
    which = message.WhichOneof("query")
    if which == "text":
        return message.text
    if which != "vector":
        return None
    if message.vector.WhichOneof("kind") == "sparse":
        sparse = message.vector.sparse
        if len(sparse.indices) != len(sparse.values):
            raise InvalidArgument(f"{what}: sparse vector has {len(sparse.indices)} indices "
                                  f"but {len(sparse.values)} values")
        return SparseBatch(np.array([0, len(sparse.indices)]), np.array(sparse.indices, dtype=np.int64),
                           np.array(sparse.values, dtype=np.float32))
    return vector_from_proto(message.vector, f"{what} vector")


# ---------------------------------------------------------------------------- filters
def _scalar_to_proto(value: Any, out: pb.Scalar) -> pb.Scalar:
    if isinstance(value, bool):
        out.flag = value
    elif isinstance(value, (int, np.integer)):
        out.integer = int(value)
    elif isinstance(value, (float, np.floating)):
        out.number = float(value)
    elif isinstance(value, str):
        out.text = value
    else:
        raise InvalidArgument(f"filter value {value!r} is not a string, number or bool")
    return out


def _scalar_from_proto(message: pb.Scalar, where: str) -> Any:
    which = message.WhichOneof("value")
    if which is None:
        raise InvalidArgument(f"{where}: a filter value must be set")
    return {"text": message.text, "integer": message.integer, "number": message.number, "flag": message.flag}[which]


def filter_to_proto(flt: Filter | Mapping[str, Any] | None, out: pb.Filter | None = None) -> pb.Filter:
    """A Filter (or its JSON form) as a protobuf Filter."""
    if out is None:
        out = pb.Filter()
    flt = as_filter(flt)
    if flt is None:
        return out
    for clause in ("must", "should", "must_not"):
        for condition in getattr(flt, clause):
            item = getattr(out, clause).add()
            if isinstance(condition, Filter):
                filter_to_proto(condition, item.filter)
                continue
            field = item.field
            field.key = condition.key
            if isinstance(condition, Match):
                _scalar_to_proto(condition.value, field.match)
            elif isinstance(condition, MatchAny):
                for value in condition.values:
                    _scalar_to_proto(value, field.any.values.add())
            elif isinstance(condition, Range):
                for bound in ("lt", "lte", "gt", "gte"):
                    value = getattr(condition, bound)
                    if value is not None:
                        _scalar_to_proto(value, getattr(field.range, bound))
            else:
                field.exists = True
    return out


def filter_from_proto(message: pb.Filter, where: str = "filter") -> Filter | None:
    """The Filter of a protobuf Filter (None when it has no condition), validated with its JSON form."""
    def as_dict(msg: pb.Filter, path: str) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for clause in ("must", "should", "must_not"):
            items = []
            for i, condition in enumerate(getattr(msg, clause)):
                at = f"{path}.{clause}[{i}]"
                which = condition.WhichOneof("kind")
                if which == "filter":
                    items.append(as_dict(condition.filter, at))
                    continue
                if which is None:
                    raise InvalidArgument(f"{at}: a condition needs a field condition or a nested filter")
                field = condition.field
                kind = field.WhichOneof("condition")
                if kind == "match":
                    items.append({"key": field.key, "match": {"value": _scalar_from_proto(field.match, at)}})
                elif kind == "any":
                    items.append({"key": field.key,
                                  "match": {"any": [_scalar_from_proto(v, at) for v in field.any.values]}})
                elif kind == "range":
                    bounds = {b: _scalar_from_proto(getattr(field.range, b), at)
                              for b in ("lt", "lte", "gt", "gte") if field.range.HasField(b)}
                    items.append({"key": field.key, "range": bounds})
                elif kind == "exists":
                    items.append({"key": field.key, "exists": field.exists})
                else:
                    raise InvalidArgument(f"{at} (field {field.key!r}): a condition needs match, any, range or exists")
            if items:
                data[clause] = items
        return data

    return as_filter(Filter.from_dict(as_dict(message, where)))


# ---------------------------------------------------------------------------- points
def _optional_str(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidArgument(f"{what} must be a string, got {type(value).__name__}")


def document_to_proto(row: Document | Mapping[str, Any], *, exact: bool = True) -> pb.Point:
    """A Point; InvalidArgument for values of a type the wire cannot carry (`exact`: see metadata_to_proto)."""
    doc = as_document(row)
    if not isinstance(doc.id, str):
        raise InvalidArgument(f"document id must be a non-empty string, got {doc.id!r}")
    message = pb.Point(id=doc.id, metadata=metadata_to_proto(doc.metadata, exact=exact))
    text = _optional_str(doc.text, "text")
    if text is not None:
        message.text = text
    tenant = _optional_str(doc.tenant, "tenant")
    if tenant is not None:
        message.tenant = tenant
    if doc.vector is not None:
        vector_to_proto(doc.vector, f"vector of point {doc.id!r}", out=message.vector)
    return message


def document_from_proto(message: pb.Point) -> Document:
    return Document(
        id=message.id,
        text=message.text if message.HasField("text") else None,
        vector=vector_from_proto(message.vector, f"vector of point {message.id!r}")
        if message.HasField("vector") else None,
        metadata=metadata_from_proto(message.metadata),
        tenant=message.tenant if message.HasField("tenant") else None,
    )


# ---------------------------------------------------------------------------- results
def hit_to_proto(hit: Hit) -> pb.Hit:
    message = pb.Hit(id=hit.id, score=hit.score)
    if hit.text is not None:
        message.text = hit.text
    if hit.metadata is not None:  # present, even when empty, iff the payload was asked for
        message.metadata.CopyFrom(metadata_to_proto(hit.metadata, exact=False))
    if hit.tenant is not None:
        message.tenant = hit.tenant
    return message


def hit_from_proto(message: pb.Hit) -> Hit:
    return Hit(
        id=message.id,
        score=message.score,
        text=message.text if message.HasField("text") else None,
        metadata=metadata_from_proto(message.metadata) if message.HasField("metadata") else None,
        tenant=message.tenant if message.HasField("tenant") else None,
    )


def row_result_to_proto(result: RowResult) -> pb.RowResult:
    message = pb.RowResult(index=result.index)
    if isinstance(result.id, str):  # a row rejected for its id may carry a non-string one
        message.id = result.id
    if result.error is not None:
        message.error = result.error
    return message


def row_result_from_proto(message: pb.RowResult) -> RowResult:
    return RowResult(
        index=message.index,
        id=message.id if message.HasField("id") else None,
        error=message.error if message.HasField("error") else None,
    )


# ---------------------------------------------------------------------------- facets
FACET_KIND_TO_PROTO: dict[str, int] = {"keyword": points_pb2.FACET_KIND_KEYWORD, "numeric": points_pb2.FACET_KIND_NUMERIC}
FACET_KIND_FROM_PROTO: dict[int, str] = {v: k for k, v in FACET_KIND_TO_PROTO.items()}
_UINT32_MAX = 2**32 - 1


def facet_request_to_proto(collection: str, key: str, *, kind: str | None = None, limit: int = 10,
                           bins: int | Sequence[float] | None = None, filter: Filter | Mapping[str, Any] | None = None,
                           tenant: str | None = None) -> points_pb2.FacetRequest:
    """The arguments of `Collection.facet` as a FacetRequest; the server judges the values."""
    if not isinstance(key, str):
        raise InvalidArgument(f"field must be a string, got {key!r}")
    message = points_pb2.FacetRequest(collection=collection, field=key)
    if kind is not None:
        if kind not in FACET_KIND_TO_PROTO:
            raise InvalidArgument(f"facet kind {kind!r} is not one of {', '.join(FACET_KIND_TO_PROTO)}")
        message.kind = FACET_KIND_TO_PROTO[kind]
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 0 <= limit <= _UINT32_MAX:
        raise InvalidArgument(f"limit must be an integer in [1, {_UINT32_MAX}], got {limit!r}")
    message.limit = int(limit)
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if not 0 <= bins <= _UINT32_MAX:
            raise InvalidArgument(f"bins={bins} must be a positive count")
        message.bins = int(bins)
    elif bins is not None:
        try:
            message.edges.extend(float(e) for e in bins)
        except (TypeError, ValueError):
            raise InvalidArgument(f"bins must be a count or a list of numbers, got {bins!r}") from None
    filter_to_proto(filter, message.filter)
    if tenant is not None:
        message.tenant = tenant
    return message


def facet_request_from_proto(message: points_pb2.FacetRequest) -> dict[str, Any]:
    """The keyword arguments of `Collection.facet` (`field` included, `tenant` as the message asks)."""
    if message.HasField("bins") and message.edges:
        raise InvalidArgument("a facet request sets both bins and edges: give one")
    bins: int | list[float] | None = None
    if message.HasField("bins"):
        bins = message.bins
    elif message.edges:
        bins = list(message.edges)
    return {"field": message.field,
            "kind": None if message.kind == points_pb2.FACET_KIND_UNSPECIFIED
            else _enum(FACET_KIND_FROM_PROTO, message.kind, "facet kind"),
            "limit": message.limit if message.HasField("limit") else 10, "bins": bins,
            "filter": filter_from_proto(message.filter),
            "tenant": message.tenant if message.HasField("tenant") else None}


def _facet_value_to_proto(value: Any, out: pb.Scalar) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        out.number = float(value)  # beyond int64: the nearest double, as a Range compares it
    else:
        _scalar_to_proto(value, out)


def facet_result_to_proto(result: FacetResult) -> points_pb2.FacetResponse:
    message = points_pb2.FacetResponse(field=result.field, kind=FACET_KIND_TO_PROTO[result.kind],
                                       documents=result.documents, distinct=result.distinct)
    for c in result.counts:
        _facet_value_to_proto(c.value, message.hits.add(count=c.count).value)
    if result.stats is not None:
        s = result.stats
        message.stats.count = s.count
        if s.min is not None:
            message.stats.min, message.stats.max = s.min, s.max
        message.stats.edges.extend(s.edges)
        message.stats.counts.extend(s.counts)
    return message


def facet_result_from_proto(message: points_pb2.FacetResponse) -> FacetResult:
    kind = _enum(FACET_KIND_FROM_PROTO, message.kind, "facet kind")
    stats = None
    if kind == "numeric":
        s = message.stats
        stats = NumericStats(s.count, s.min if s.HasField("min") else None, s.max if s.HasField("max") else None,
                             tuple(s.edges), tuple(int(c) for c in s.counts))
    counts = tuple(FacetCount(_scalar_from_proto(h.value, "facet value"), int(h.count)) for h in message.hits)
    return FacetResult(message.field, kind, int(message.documents), counts, int(message.distinct), stats,
                       round(1e3 * message.time, 3))


# ---------------------------------------------------------------------------- search requests
STAGE_KIND_TO_PROTO: dict[str, int] = {"dense": search_pb2.STAGE_KIND_DENSE, "sparse": search_pb2.STAGE_KIND_SPARSE}
STAGE_KIND_FROM_PROTO: dict[int, str] = {search_pb2.STAGE_KIND_UNSPECIFIED: "dense",
                                         **{v: k for k, v in STAGE_KIND_TO_PROTO.items()}}
FUSION_TO_PROTO: dict[str, int] = {"rrf": search_pb2.FUSION_METHOD_RRF, "weighted": search_pb2.FUSION_METHOD_WEIGHTED,
                                   "zscore": search_pb2.FUSION_METHOD_ZSCORE,
                                   "adaptive": search_pb2.FUSION_METHOD_ADAPTIVE}
FUSION_FROM_PROTO: dict[int, str] = {search_pb2.FUSION_METHOD_UNSPECIFIED: DEFAULT_FUSION,
                                     **{v: k for k, v in FUSION_TO_PROTO.items()}}
DEFAULT_K = 10


def _enum(table: Mapping[int, str], value: int, what: str) -> str:
    if value not in table:
        raise InvalidArgument(f"unknown {what} enum value {value}")
    return table[value]


def _set_query(message: Any, query: Any, what: str) -> None:
    if query is None:
        return
    if isinstance(query, str):
        message.text = query
    elif isinstance(query, (SparseBatch, Mapping)):
        sparse_to_proto(query, out=message.vector)
    else:
        vector_to_proto(query, what, out=message.vector)


def search_request_to_proto(collection: str, request: SearchRequest) -> search_pb2.SearchRequest:
    message = search_pb2.SearchRequest(collection=collection, k=request.k, with_payload=request.with_payload,
                                       explain=request.explain)
    _set_query(message, request.query, "query vector")
    default = len(request.stages) == 1 and request.stages[0].kind == "dense" and request.stages[0].query is None \
        and request.stages[0].limit is None
    if default:
        message.params.update({k: float(v) for k, v in request.stages[0].params.items()})
    else:
        for stage in request.stages:
            prefetch = message.prefetch.add(kind=STAGE_KIND_TO_PROTO[stage.kind])
            _set_query(prefetch, stage.query, "prefetch vector")
            if stage.limit is not None:
                prefetch.limit = stage.limit
            prefetch.params.update({k: float(v) for k, v in stage.params.items()})
    message.fusion.method = FUSION_TO_PROTO[request.fusion.method]
    if request.fusion.weights is not None:
        message.fusion.weights.extend(request.fusion.weights)
    message.fusion.rrf_k = request.fusion.rrf_k
    if request.fusion.feedback is not None:
        message.fusion.feedback = request.fusion.feedback
    message.fusion.feedback_weight = request.fusion.feedback_weight
    if request.rerank is not None:
        message.rerank.kappa = request.rerank.kappa
        if request.rerank.alpha is not None:
            message.rerank.alpha = request.rerank.alpha
        if request.rerank.beta is not None:
            message.rerank.beta = request.rerank.beta
    filter_to_proto(request.filter, message.filter)
    if request.tenant is not None:
        message.tenant = request.tenant
    if request.graph is not None:
        graph_to_proto(request.graph, message.graph)
    return message


_GRAPH_SCALARS = ("limit", "damping", "passage_weight", "seed_top", "seed_threshold", "weight", "eps")
GRAPH_FUSION_FROM_PROTO = {search_pb2.GRAPH_FUSION_UNSPECIFIED: "rrf", search_pb2.GRAPH_FUSION_PPR: "ppr",
                           search_pb2.GRAPH_FUSION_RRF: "rrf"}
GRAPH_METHOD_FROM_PROTO = {search_pb2.GRAPH_METHOD_UNSPECIFIED: "exact", search_pb2.GRAPH_METHOD_EXACT: "exact",
                           search_pb2.GRAPH_METHOD_PUSH: "push"}


def graph_to_proto(graph: GraphExpansion, out: search_pb2.GraphStage) -> None:
    for name in _GRAPH_SCALARS:
        setattr(out, name, getattr(graph, name))
    out.fusion = {"ppr": search_pb2.GRAPH_FUSION_PPR, "rrf": search_pb2.GRAPH_FUSION_RRF}[graph.fusion]
    out.method = {"exact": search_pb2.GRAPH_METHOD_EXACT, "push": search_pb2.GRAPH_METHOD_PUSH}[graph.method]


def graph_from_proto(message: search_pb2.GraphStage) -> GraphExpansion:
    given = {name: getattr(message, name) for name in _GRAPH_SCALARS if message.HasField(name)}
    return GraphExpansion(**given, fusion=_enum(GRAPH_FUSION_FROM_PROTO, message.fusion, "graph fusion"),
                          method=_enum(GRAPH_METHOD_FROM_PROTO, message.method, "graph method"))


def search_request_from_proto(message: search_pb2.SearchRequest, *, tenant: str | None = None) -> SearchRequest:
    """The domain request; `tenant`, when given (from the caller's API key), overrides the message's."""
    query = query_from_proto(message)
    if query is None:
        raise InvalidArgument("the search request has neither a text nor a vector query")
    if message.prefetch:
        stages = tuple(
            Stage(_enum(STAGE_KIND_FROM_PROTO, p.kind, "stage kind"), query_from_proto(p, f"prefetch {i}"),
                  p.limit if p.HasField("limit") else None, dict(p.params))
            for i, p in enumerate(message.prefetch))
    else:
        kind = "sparse" if isinstance(query, SparseBatch) else "dense"
        stages = (Stage(kind, params=dict(message.params)),)
    fusion = Fusion(_enum(FUSION_FROM_PROTO, message.fusion.method, "fusion method"),
                    tuple(message.fusion.weights) or None,
                    message.fusion.rrf_k if message.fusion.HasField("rrf_k") else 60.0,
                    message.fusion.feedback if message.fusion.HasField("feedback") else None,
                    message.fusion.feedback_weight if message.fusion.HasField("feedback_weight") else 0.5)
    rerank = None
    if message.HasField("rerank"):
        r = message.rerank
        rerank = Rerank(r.kappa, r.alpha if r.HasField("alpha") else None, r.beta if r.HasField("beta") else None)
    return SearchRequest(
        query, message.k if message.HasField("k") else DEFAULT_K, stages, fusion, rerank,
        filter_from_proto(message.filter),
        tenant if tenant is not None else (message.tenant if message.HasField("tenant") else None),
        message.with_payload if message.HasField("with_payload") else True, message.explain,
        graph_from_proto(message.graph) if message.HasField("graph") else None)
