"""The `Keys` admin service: create, list and revoke API keys on a running server.

It works on the server's own `KeyStore` (the one its auth interceptor checks), so a key created
here is accepted on the next call and a revoked one refused on the next call, with no restart.
RocksDB admits one process, which is why `lamina keys --target` goes through here while a server
holds the data directory. Every change is written to the audit log (logger `lamina.audit`): who
(the calling key's id) did what to which key; never the key itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import grpc

from lamina.service.auth import KeyRecord, KeyStore, current_principal
from lamina.service.status import to_status
from lamina.service.v1 import keys_pb2, keys_pb2_grpc

audit = logging.getLogger("lamina.audit")


@dataclass(frozen=True)
class ApiKey:
    """What `Client.list_keys` and friends return: a key's record, never the key itself."""

    id: str
    tenant: str | None
    admin: bool
    rights: Mapping[str, frozenset[str]]
    created: float
    revoked: float | None
    source: str

    @classmethod
    def from_proto(cls, info: keys_pb2.KeyInfo) -> ApiKey:
        return cls(info.id, info.tenant if info.HasField("tenant") else None, info.admin,
                   {c: frozenset(r.rights) for c, r in info.rights.items()}, info.created,
                   info.revoked if info.HasField("revoked") else None, info.source)


def key_info(record: KeyRecord, source: str = "store") -> keys_pb2.KeyInfo:
    info = keys_pb2.KeyInfo(id=record.id, admin=record.admin, created=record.created, source=source)
    if record.tenant is not None:
        info.tenant = record.tenant
    if record.revoked is not None:
        info.revoked = record.revoked
    for collection, rights in sorted(record.rights.items()):
        info.rights[collection].rights.extend(sorted(rights))
    return info


class KeysServicer(keys_pb2_grpc.KeysServicer):
    def __init__(self, keys: KeyStore, executor: Executor) -> None:
        self.keys = keys
        self.executor = executor

    async def _run(self, context: grpc.aio.ServicerContext, work: Any, request: Any) -> Any:
        started = time.perf_counter()
        caller = current_principal().key_id
        run = contextvars.copy_context().run
        try:
            response = await asyncio.get_running_loop().run_in_executor(self.executor, run, work, request, caller)
        except Exception as exc:  # noqa: BLE001 - LaminaError -> its code, anything else INTERNAL
            code, details = to_status(exc)
            await context.abort(code, details)
        response.time = time.perf_counter() - started
        return response

    def _source(self, key_id: str) -> str:
        return "file" if key_id in getattr(self.keys, "_file_ids", ()) else "store"

    async def Create(self, request: keys_pb2.CreateKeyRequest,
                     context: grpc.aio.ServicerContext) -> keys_pb2.CreateKeyResponse:
        return await self._run(context, self._create, request)

    async def List(self, request: keys_pb2.ListKeysRequest,
                   context: grpc.aio.ServicerContext) -> keys_pb2.ListKeysResponse:
        return await self._run(context, self._list, request)

    async def Revoke(self, request: keys_pb2.RevokeKeyRequest,
                     context: grpc.aio.ServicerContext) -> keys_pb2.RevokeKeyResponse:
        return await self._run(context, self._revoke, request)

    def _create(self, request: keys_pb2.CreateKeyRequest, caller: str) -> keys_pb2.CreateKeyResponse:
        rights = {collection: list(granted.rights) for collection, granted in request.rights.items()}
        record, secret = self.keys.create(tenant=request.tenant if request.HasField("tenant") else None,
                                          admin=request.admin, rights=rights)
        audit.info("key created: id=%s admin=%s tenant=%s rights=%s by=%s", record.id, record.admin,
                   record.tenant, {c: sorted(r) for c, r in record.rights.items()}, caller)
        return keys_pb2.CreateKeyResponse(key=key_info(record), secret=secret)

    def _list(self, request: keys_pb2.ListKeysRequest, caller: str) -> keys_pb2.ListKeysResponse:
        return keys_pb2.ListKeysResponse(keys=[key_info(r, self._source(r.id)) for r in self.keys.list()])

    def _revoke(self, request: keys_pb2.RevokeKeyRequest, caller: str) -> keys_pb2.RevokeKeyResponse:
        record = self.keys.revoke(request.id)
        audit.info("key revoked: id=%s by=%s", record.id, caller)
        return keys_pb2.RevokeKeyResponse(key=key_info(record))


SERVICE_NAME = keys_pb2.DESCRIPTOR.services_by_name["Keys"].full_name


def add_keys_servicer(server: grpc.aio.Server, keys: KeyStore, executor: Executor) -> str:
    keys_pb2_grpc.add_KeysServicer_to_server(KeysServicer(keys, executor), server)
    return SERVICE_NAME
