"""The JSON face of the gRPC methods: which methods exist, how JSON becomes a request, how a status
becomes an HTTP code. Shared by the HTTP server (`lamina.service.http`), its OpenAPI document
(`lamina.service.openapi`), the HTTP channel of the Python client (`lamina.service.http_channel`)
and `lamina call`.

Every method of every service in `lamina.service.v1` is found through its descriptors, so a new
RPC (or a new .proto) is on the HTTP API, in the OpenAPI document and behind `lamina call` with
no code here. JSON is protobuf's JSON mapping (`google.protobuf.json_format`): requests accept
the proto field names (`with_vectors`) and their lowerCamelCase JSON names (`withVectors`);
responses use the proto field names and print fields left at their defaults (`"count": "0"`, not
`{}`). 64-bit integers are JSON strings, as the mapping says.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from lamina.index.errors import InvalidArgument

# The HTTP status of each gRPC status (grpc-gateway's table, except FAILED_PRECONDITION: 412 here,
# since Lamina's failed preconditions are about the server's state, e.g. "no keys file to write to").
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
CODES_BY_NAME: dict[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}


@dataclass(frozen=True)
class Method:
    """One RPC: `Service/Method` on the HTTP API, `/package.Service/Method` on gRPC."""

    service: ServiceDescriptor
    descriptor: MethodDescriptor
    request: type[Message]
    response: type[Message]

    @property
    def name(self) -> str:
        """`Collections/List`: the HTTP path after /v1/ and `lamina call`'s argument."""
        return f"{self.service.name}/{self.descriptor.name}"

    @property
    def grpc_path(self) -> str:
        return f"/{self.service.full_name}/{self.descriptor.name}"

    @property
    def server_streaming(self) -> bool:
        return bool(self.descriptor.server_streaming)

    @property
    def client_streaming(self) -> bool:
        return bool(self.descriptor.client_streaming)


def _stub_modules() -> list[Any]:
    import lamina.service.v1 as v1

    names = sorted(m.name for m in pkgutil.iter_modules(v1.__path__) if m.name.endswith("_pb2"))
    return [importlib.import_module(f"{v1.__name__}.{name}") for name in names]


def _discover() -> dict[str, Method]:
    methods: dict[str, Method] = {}
    for module in _stub_modules():
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                entry = Method(service, method, message_factory.GetMessageClass(method.input_type),
                               message_factory.GetMessageClass(method.output_type))
                methods[entry.name] = entry
    return methods


METHODS: dict[str, Method] = _discover()


def method(name: str) -> Method:
    """The method `Service/Method` (also accepted: `lamina.v1.Service/Method`, `/lamina.v1.Service/Method`)."""
    service, _, rpc = name.strip("/").partition("/")
    entry = METHODS.get(f"{service.rpartition('.')[2]}/{rpc}")
    if entry is None:
        raise InvalidArgument(f"no method {name!r}; methods: {', '.join(sorted(METHODS))}")
    return entry


def parse_request(entry: Method, body: bytes | str) -> Message:
    """The request message of `entry` from a JSON body (empty: the default request); InvalidArgument
    naming what is wrong (not JSON, an unknown field, a value of the wrong type)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    request = entry.request()
    if not text.strip():
        return request
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"the body of {entry.name} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"the body of {entry.name} must be a JSON object ({entry.request.DESCRIPTOR.name}), "
                              f"got {type(data).__name__}")
    try:
        json_format.ParseDict(data, request)
    except json_format.ParseError as exc:
        raise InvalidArgument(f"{entry.name}: {exc}") from None
    return request


def to_json(message: Message) -> dict[str, Any]:
    """A response as the JSON mapping's dict: proto field names, defaults printed."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def error_body(code: grpc.StatusCode, message: str) -> dict[str, Any]:
    """The JSON of a failed call: `{"error": {"code": "NOT_FOUND", "http_status": 404, "message": ...}}`."""
    return {"error": {"code": code.name, "http_status": HTTP_STATUS.get(code, 500), "message": message}}
