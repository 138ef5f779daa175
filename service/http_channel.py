"""A `grpc.Channel` that speaks the HTTP/JSON API, so that `Client("http://host:port")` works over HTTP.

The generated stubs call `channel.unary_unary(path, serializer, deserializer)` and
`channel.unary_stream(...)`; here those callables POST the request as JSON to
`/v1/{Service}/{Method}` and turn the answer back into the response message, or into a
`grpc.RpcError` with the status code the server named, so `lamina.service.status.from_rpc_error`
gives the same `lamina.index.errors` class as over gRPC. Metadata (the API key that
`with_api_key` adds) travels as HTTP headers.

It is what lets the tenant-isolation matrix run unchanged over both transports
(`tests/service/test_isolation.py`), and a way to reach a server through HTTP-only networks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
from google.protobuf import json_format

from lamina.service import gateway


class HttpRpcError(grpc.RpcError):
    """A failed call over HTTP, with the gRPC status code the server named in its error body."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    # gRPC's own errors are also the finished call: `grpc.intercept_channel` calls `result()` on them
    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> BaseException:
        return self

    def traceback(self, timeout: float | None = None) -> Any:
        return self.__traceback__

    def done(self) -> bool:
        return True

    def initial_metadata(self) -> tuple:
        return ()

    def trailing_metadata(self) -> tuple:
        return ()


def _error_of(status: int, body: bytes) -> HttpRpcError:
    try:
        error = json.loads(body)["error"]
        return HttpRpcError(gateway.CODES_BY_NAME.get(error["code"], grpc.StatusCode.UNKNOWN), error["message"])
    except (ValueError, KeyError, TypeError):
        code = next((c for c, s in gateway.HTTP_STATUS.items() if s == status), grpc.StatusCode.UNKNOWN)
        return HttpRpcError(code, f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")


def _headers(metadata: Any) -> dict[str, str]:
    return {key: value for key, value in (metadata or ()) if isinstance(value, str)}


class _Callable:
    def __init__(self, channel: HttpChannel, path: str, serializer: Callable[..., bytes] | None,
                 deserializer: Callable[[bytes], Any] | None) -> None:
        self._channel = channel
        service, _, name = path.strip("/").partition("/")
        self._name = f"{service.rpartition('.')[2]}/{name}"
        self._url = f"/v1/{self._name}"

    @property
    def _entry(self) -> gateway.Method:
        entry = gateway.METHODS.get(self._name)  # stubs make callables for every method, even health's
        if entry is None:
            raise HttpRpcError(grpc.StatusCode.UNIMPLEMENTED, f"{self._name} is not on the HTTP API")
        return entry

    def _body(self, request: Any) -> bytes:
        return json_format.MessageToJson(request, preserving_proto_field_name=True).encode()

    def _timeout(self, timeout: float | None) -> httpx.Timeout:
        return httpx.Timeout(timeout if timeout is not None else None, connect=10.0)


class _UnaryUnary(_Callable):
    def __call__(self, request: Any, timeout: float | None = None, metadata: Any = None, **_: Any) -> Any:
        entry = self._entry
        try:
            reply = self._channel.http.post(self._url, content=self._body(request), headers=_headers(metadata),
                                            timeout=self._timeout(timeout))
        except httpx.TimeoutException as exc:
            raise HttpRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)) from None
        except httpx.TransportError as exc:
            raise HttpRpcError(grpc.StatusCode.UNAVAILABLE, f"{self._channel.base_url}: {exc}") from None
        if reply.status_code != 200:
            raise _error_of(reply.status_code, reply.content)
        return json_format.Parse(reply.content, entry.response(), ignore_unknown_fields=True)

    def with_call(self, request: Any, timeout: float | None = None, metadata: Any = None, **_: Any) -> Any:
        """(response, call): what `grpc.intercept_channel` (the API-key interceptor) calls."""
        return self(request, timeout=timeout, metadata=metadata), _Done()

    def future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("futures over HTTP: call the method")


class _Done:
    """The `grpc.Call` of a finished HTTP call (what interceptors may ask of it)."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK

    def details(self) -> str:
        return ""

    def initial_metadata(self) -> tuple:
        return ()

    def trailing_metadata(self) -> tuple:
        return ()

    def is_active(self) -> bool:
        return False


class _UnaryStream(_Callable):
    def __call__(self, request: Any, timeout: float | None = None, metadata: Any = None, **_: Any) -> Iterator[Any]:
        entry = self._entry
        try:
            with self._channel.http.stream("POST", self._url, content=self._body(request), headers=_headers(metadata),
                                           timeout=self._timeout(timeout)) as reply:
                if reply.status_code != 200:
                    raise _error_of(reply.status_code, reply.read())
                for line in reply.iter_lines():
                    if not line.strip():
                        continue
                    data = json.loads(line)
                    if "error" in data and len(data) == 1:
                        raise _error_of(500, line.encode())
                    yield json_format.ParseDict(data, entry.response(), ignore_unknown_fields=True)
        except httpx.TimeoutException as exc:
            raise HttpRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)) from None
        except httpx.TransportError as exc:
            raise HttpRpcError(grpc.StatusCode.UNAVAILABLE, f"{self._channel.base_url}: {exc}") from None


class HttpChannel(grpc.Channel):
    """The stubs' view of a Lamina HTTP/JSON API at `base_url` (`http://host:port`)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers={"content-type": "application/json"})

    def unary_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                    *args: Any, **kwargs: Any) -> _UnaryUnary:
        return _UnaryUnary(self, method, request_serializer, response_deserializer)

    def unary_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     *args: Any, **kwargs: Any) -> _UnaryStream:
        return _UnaryStream(self, method, request_serializer, response_deserializer)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("client-streaming methods are not on the HTTP API")

    stream_stream = stream_unary

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        raise NotImplementedError("an HTTP channel has no connectivity state")

    def unsubscribe(self, callback: Any) -> None:
        pass

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HttpChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
