"""The OpenAPI 3.1 document of the HTTP/JSON API, generated from the protobuf descriptors.

One `POST /v1/{Service}/{Method}` per RPC (`lamina.service.gateway.METHODS`), its request and
response as JSON Schemas that follow protobuf's JSON mapping: 64-bit integers are strings,
enums their names, `google.protobuf.Struct` any object, `Value` any JSON value, maps objects.
Field names are the proto names (what responses use); requests also accept lowerCamelCase.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from lamina.service import gateway

_T = FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_DOUBLE: {"type": "number"}, _T.TYPE_FLOAT: {"type": "number"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"}, _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    _T.TYPE_FIXED32: {"type": "integer", "format": "int32", "minimum": 0},
    _T.TYPE_INT64: {"type": "string", "format": "int64"}, _T.TYPE_SINT64: {"type": "string", "format": "int64"},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64"}, _T.TYPE_UINT64: {"type": "string", "format": "uint64"},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    _T.TYPE_BOOL: {"type": "boolean"}, _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"},
    "google.protobuf.Empty": {"type": "object"},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _is_repeated(field: FieldDescriptor) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 6; `label` is deprecated there
    return bool(is_repeated) if is_repeated is not None else field.label == _T.LABEL_REPEATED


def _value_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == _T.TYPE_ENUM:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    if field.type in (_T.TYPE_MESSAGE, _T.TYPE_GROUP):
        return _message_ref(field.message_type, schemas)
    return dict(_SCALARS[field.type])


def _field_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        return {"type": "object", "additionalProperties": _value_schema(message.fields_by_name["value"], schemas)}
    schema = _value_schema(field, schemas)
    return {"type": "array", "items": schema} if _is_repeated(field) else schema


def _message_ref(message: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    name = message.full_name
    if name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[name])
    if name not in schemas:
        schemas[name] = {}  # placeholder first: messages may refer to themselves (Filter, Condition)
        properties = {f.name: _field_schema(f, schemas) for f in message.fields}
        schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        oneofs = [o for o in message.oneofs if not (len(o.fields) == 1 and o.name == f"_{o.fields[0].name}")]
        if oneofs:
            schema["description"] = "; ".join(
                f"at most one of {', '.join(f.name for f in o.fields)} ({o.name})" for o in oneofs)
        schemas[name] = schema
    return _ref(name)


_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string", "description": "the gRPC status code's name"},
    "http_status": {"type": "integer"}, "message": {"type": "string"}}}}}


def openapi_document(title: str = "Lamina HTTP/JSON API") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every method in `gateway.METHODS`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("lamina")
    except PackageNotFoundError:
        release = "0"
    schemas: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    for name, entry in sorted(gateway.METHODS.items()):
        request, response = _message_ref(entry.request.DESCRIPTOR, schemas), _message_ref(entry.response.DESCRIPTOR,
                                                                                          schemas)
        if entry.server_streaming:
            ok = {"description": f"a stream of {entry.response.DESCRIPTOR.name} messages, one JSON object per line",
                  "content": {"application/x-ndjson": {"schema": response}}}
        else:
            ok = {"description": entry.response.DESCRIPTOR.name, "content": {"application/json": {"schema": response}}}
        error = {"description": "the gRPC status as an HTTP code (400, 401, 403, 404, 409, 412, 429, 500, 503, 504)",
                 "content": {"application/json": {"schema": _ref("Error")}}}
        paths[f"/v1/{name}"] = {"post": {
            "operationId": name.replace("/", "_"),
            "summary": f"gRPC {entry.grpc_path}" + (" (server streaming)" if entry.server_streaming else ""),
            "tags": [entry.service.name],
            "requestBody": {"required": False, "content": {"application/json": {"schema": request}}},
            "responses": {"200": ok, "default": error},
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": release,
                 "description": "Every gRPC method of lamina.v1 as POST /v1/{Service}/{Method} with protobuf's JSON "
                                "mapping. Authenticate with 'Authorization: Bearer <API key>'."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
        "security": [{"apiKey": []}, {}],
    }
