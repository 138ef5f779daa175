"""Requests that do not decode are INVALID_ARGUMENT, not UNKNOWN.

grpc answers a request whose bytes fail to parse (bad UTF-8 in a string field, a corrupt wire
format, nesting beyond the parser's depth limit) with UNKNOWN "Unexpected DecodeError". To a
caller that is a malformed request like any other, so each Lamina method's deserializer is wrapped:
a failure becomes a marker, and the method answers INVALID_ARGUMENT naming the message type and
the parser's reason before any handler code runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

_BEHAVIORS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class Undecodable:
    """What a guarded deserializer returns for bytes that do not parse."""

    def __init__(self, what: str, error: Exception) -> None:
        self.details = f"the request does not decode as {what}: {str(error)[:200] or type(error).__name__}"


def _guarded_deserializer(deserialize: Callable[[bytes], Any], what: str) -> Callable[[bytes], Any]:
    def guarded(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as exc:  # DecodeError, RecursionError, UnicodeDecodeError: all malformed input
            return Undecodable(what, exc)

    return guarded


def guard_decoding(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` whose undecodable requests are answered INVALID_ARGUMENT (unary-request methods)."""
    if handler.request_streaming or handler.request_deserializer is None:
        return handler
    kind = "unary_stream" if handler.response_streaming else "unary_unary"
    behavior = getattr(handler, kind)
    what = method.rsplit("/", 1)[-1] + " request"

    if handler.response_streaming:
        async def checked_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
            async for response in behavior(request, context):
                yield response

        checked: Any = checked_stream
    else:
        async def checked_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details)
            return await behavior(request, context)

        checked = checked_unary
    return handler._replace(request_deserializer=_guarded_deserializer(handler.request_deserializer, what),
                            **{kind: checked})
