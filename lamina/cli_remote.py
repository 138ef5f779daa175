"""CLI for talking to a running server: `--api-key` on every client command, and `lamina call`.

    lamina call Collections/List
    lamina call Search/Search '{"collection": "demo", "text": "sort a list", "k": 3}'
    lamina call Rag/Answer '{"search": {"collection": "demo", "text": "sort a list"}}'   # one JSON line per message
    lamina call --list

`lamina call` needs no grpcurl and no .proto files: the methods, and the JSON mapping of their
requests and responses, come from the descriptors of the stubs (`lamina.service.gateway`). It
speaks gRPC to `--target HOST:PORT`, or the HTTP/JSON API to `--target http://HOST:PORT`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from lamina import config


def _set_api_key(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:  # the Client reads $LAMINA_API_KEY when it is given no key
        os.environ["LAMINA_API_KEY"] = value


api_key_option = click.option(
    "--api-key", default=None, metavar="KEY", expose_value=False, callback=_set_api_key, is_eager=True,
    help="The API key to send with --target [default: $LAMINA_API_KEY].")


@click.command("call")
@click.argument("method", required=False)
@click.argument("body", required=False, default="")
@click.option("--target", default=None, metavar="HOST:PORT|URL",
              help="The server: HOST:PORT for gRPC, http://HOST:PORT for the HTTP/JSON API "
                   "[default: $LAMINA_TARGET or 127.0.0.1:50051].")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds before the call is abandoned.")
@click.option("--list", "list_methods", is_flag=True, help="List the methods and exit.")
@api_key_option
def call(method: str | None, body: str, target: str | None, timeout: float, list_methods: bool) -> None:
    """Call any gRPC method with a JSON request (protobuf's JSON mapping); print the JSON response.

    METHOD is Service/Method (see --list); BODY is the request as JSON, '-' to read it from stdin,
    or nothing for the default request."""
    from lamina.service import gateway

    if list_methods or method is None:
        for name, entry in sorted(gateway.METHODS.items()):
            stream = "  (server streaming: one JSON line per message)" if entry.server_streaming else ""
            click.echo(f"{name}\t{entry.request.DESCRIPTOR.full_name} -> {entry.response.DESCRIPTOR.full_name}{stream}")
        return
    entry = gateway.method(method)
    request = gateway.parse_request(entry, sys.stdin.read() if body == "-" else body)
    for message in _invoke(entry, request, target or config.default_target(), timeout):
        click.echo(json.dumps(gateway.to_json(message), indent=None if entry.server_streaming else 2))


def _invoke(entry: Any, request: Any, target: str, timeout: float) -> Any:
    import grpc

    from lamina.service.auth import with_api_key
    from lamina.service.status import from_rpc_error

    if target.startswith(("http://", "https://")):
        from lamina.service.http_channel import HttpChannel

        raw: Any = HttpChannel(target)
    else:
        raw = grpc.insecure_channel(target)
    channel = with_api_key(raw, os.environ.get("LAMINA_API_KEY"))
    try:
        if entry.server_streaming:
            rpc = channel.unary_stream(entry.grpc_path, request_serializer=entry.request.SerializeToString,
                                       response_deserializer=entry.response.FromString)
            yield from rpc(request, timeout=timeout)
        else:
            rpc = channel.unary_unary(entry.grpc_path, request_serializer=entry.request.SerializeToString,
                                      response_deserializer=entry.response.FromString)
            yield rpc(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from None
    finally:
        raw.close()
