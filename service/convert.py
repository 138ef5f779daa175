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
from lamina.index.types import CollectionConfig, Document, Hit, IndexConfig, RowResult, as_document
from lamina.service.v1 import common_pb2 as pb

MAX_EXACT_INT = 2**53  # the largest magnitude a double holds exactly, with every integer below it

METRIC_TO_PROTO: dict[str, int] = {"ip": pb.METRIC_IP, "l2": pb.METRIC_L2}
METRIC_FROM_PROTO: dict[int, str] = {v: k for k, v in METRIC_TO_PROTO.items()}
INDEX_KIND_TO_PROTO: dict[str, int] = {"flat": pb.INDEX_KIND_FLAT, "ivf": pb.INDEX_KIND_IVF, "hnsw": pb.INDEX_KIND_HNSW}
INDEX_KIND_FROM_PROTO: dict[int, str] = {v: k for k, v in INDEX_KIND_TO_PROTO.items()}
_INDEX_PARAMS = ("nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search", "gpu")


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
    return pb.IndexConfig(kind=kind, **{name: getattr(config, name) for name in _INDEX_PARAMS})


def index_config_from_proto(message: pb.IndexConfig) -> IndexConfig:
    """An IndexConfig; the kind and parameters left unset take IndexConfig's defaults."""
    params: dict[str, Any] = {name: getattr(message, name) for name in _INDEX_PARAMS if message.HasField(name)}
    if message.kind != pb.INDEX_KIND_UNSPECIFIED:
        try:
            params["kind"] = INDEX_KIND_FROM_PROTO[message.kind]
        except KeyError:
            raise InvalidArgument(f"unknown index kind enum value {message.kind}") from None
    return IndexConfig(**params)


def collection_config_to_proto(config: CollectionConfig) -> pb.CollectionConfig:
    message = pb.CollectionConfig(
        name=config.name, dim=config.dim, metric=metric_to_proto(config.metric),
        index=index_config_to_proto(config.index),
    )
    if config.encoder is not None:
        message.encoder = config.encoder
    return message


def collection_config_from_proto(message: pb.CollectionConfig) -> CollectionConfig:
    return CollectionConfig(
        name=message.name,
        dim=message.dim,
        metric=metric_from_proto(message.metric),
        index=index_config_from_proto(message.index),
        encoder=message.encoder if message.HasField("encoder") else None,
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
    raise InvalidArgument(f"{what} has no kind this server supports (expected dense)")


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
