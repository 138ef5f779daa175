"""API keys, principals, and the access rule of every RPC (issue 5, "Isolation (service)").

An API key is `lk_<id>_<secret>`: a public id and 256 random bits. Only a salted SHA-256 of the
whole key is kept (in the store under the system namespace `api_keys`, or in a keys file), so
nothing on disk lets anyone call the service. A fast hash is enough because the key is random,
not chosen by a person: there is no dictionary to try, and a slow hash (scrypt) would cost
milliseconds on every call. The id picks the record, `hmac.compare_digest` compares digests.

A key authenticates as a `Principal`: its tenant (None: not restricted to one), an admin flag, and
rights per collection (`{"docs": {"read", "write"}, "*": {"read"}}`). Admin keys manage collections
and keys and hold every right; they are never tenant-restricted.

Every RPC path has one `Rule` in `ACCESS_RULES`: public (health, reflection), authenticated (any
valid key), admin, or read/write of the collection named by a field of the request. A method
without a rule is refused (fail closed), and a test lists every RPC through reflection and fails on
one without a rule. `AuthInterceptor` enforces them. In grpc.aio an interceptor sees the method and
the metadata but not the request, so it *wraps the handler*: the wrapper reads the request's
collection field, checks the right, then runs the servicer with the principal in a context
variable. Every check happens before any servicer code runs, and the servicer needs no auth code
except tenant scoping, which reads `current_principal()`. Denials say nothing about whether the
collection exists.

With auth off (`auth="off"`, or `"auto"` with no key ever created) the interceptor still runs and
every call gets `UNRESTRICTED`, so the servicer code is the same. A revoked key stays in the
store as a record marked revoked, so revoking the last key does not turn auth off.

Keys file (`lamina serve --api-keys-file FILE`, JSON, or YAML if the name ends in .yaml/.yml;
`lamina keys create --file FILE` appends to it):

    {"keys": [{"id": "3f9a0c1b2d4e", "hash": "sha256$<salt hex>$<digest hex>",
               "tenant": "acme", "admin": false, "rights": {"docs": ["read", "write"]},
               "created": 1764500000.0, "revoked": null}]}

`tenant`, `admin`, `rights`, `created` and `revoked` are optional. File keys are read-only: revoke one
by deleting its entry (or setting "revoked") and restarting the server.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import grpc

from lamina.index.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from lamina.index.store import Store
from lamina.index.types import check_name
from lamina.service.decoding import guard_decoding

log = logging.getLogger(__name__)

RIGHTS = ("read", "write")
ANY_COLLECTION = "*"
KEY_PREFIX = "lk"
NAMESPACE = "api_keys"  # the Store system-record namespace of key records
AUTH_MODES = ("auto", "on", "off")
_SECRET_BYTES = 32  # 256 bits
_SALT_BYTES = 16


# ----------------------------------------------------------------------------- principals
@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id, tenant restriction, admin flag and rights per collection."""

    key_id: str
    tenant: str | None = None
    admin: bool = False
    rights: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def can(self, right: str, collection: str) -> bool:
        """Whether this principal may `right` ("read" or "write") `collection`."""
        if self.admin:
            return True
        return right in self.rights.get(collection, ()) or right in self.rights.get(ANY_COLLECTION, ())

    def check(self, right: str, collection: str) -> None:
        """Raise PermissionDenied unless `can(right, collection)`."""
        if not self.can(right, collection):
            raise PermissionDenied(f"API key {self.key_id!r} has no {right} right on collection {collection!r}")

    def scope_tenant(self, requested: str | None) -> str | None:
        """The tenant a request runs as: the key's, whatever the client asked for.

        An unrestricted principal runs as `requested` (None or "": every tenant). A tenant key runs
        as its own tenant; asking for another one is PermissionDenied (which says nothing of it).
        """
        if self.tenant is None:
            return requested or None
        if requested and requested != self.tenant:
            raise PermissionDenied(f"API key {self.key_id!r} is restricted to its own tenant")
        return self.tenant


UNRESTRICTED = Principal("<auth off>", admin=True)  # every call's principal while auth is off

_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("lamina_principal", default=None)


def current_principal() -> Principal:
    """The principal of the RPC being served (UNRESTRICTED when auth is off).

    Set by `AuthInterceptor` for the task that runs the servicer. `loop.run_in_executor` does not
    carry context variables into the worker thread: read it in the async handler, or run the
    worker with `contextvars.copy_context().run`. Outside a served call this raises, rather than
    returning anything that could grant access.
    """
    principal = _PRINCIPAL.get()
    if principal is None:
        raise RuntimeError("no principal: current_principal() called outside a served RPC, or in a "
                           "thread the RPC's context was not copied to (see its docstring)")
    return principal


# ----------------------------------------------------------------------------- key records
def hash_secret(secret: str, salt: bytes) -> bytes:
    """SHA-256 of salt + key (the key is 256 random bits: see the module docstring)."""
    return hashlib.sha256(salt + secret.encode()).digest()


def _check_rights(rights: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for collection, granted in rights.items():
        if collection != ANY_COLLECTION:
            check_name(collection)
        granted = frozenset([granted] if isinstance(granted, str) else granted)
        unknown = granted - set(RIGHTS)
        if unknown:
            raise InvalidArgument(f"unknown right {sorted(unknown)[0]!r} on {collection!r}: use {' or '.join(RIGHTS)}")
        if granted:
            out[collection] = out.get(collection, frozenset()) | granted
    return out


def _check_tenant(tenant: Any) -> str | None:
    if tenant is None:
        return None
    if not isinstance(tenant, str) or not tenant or "\x00" in tenant:
        raise InvalidArgument(f"tenant must be a non-empty string without NUL, got {tenant!r}")
    return tenant


@dataclass(frozen=True)
class KeyRecord:
    """What is kept of a key: never the key itself, only a salted digest of it."""

    id: str
    salt: bytes
    digest: bytes
    tenant: str | None = None
    admin: bool = False
    rights: Mapping[str, frozenset[str]] = field(default_factory=dict)
    created: float = 0.0
    revoked: float | None = None

    @property
    def principal(self) -> Principal:
        return Principal(self.id, self.tenant, self.admin, self.rights)

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret, self.salt), self.digest)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "hash": f"sha256${self.salt.hex()}${self.digest.hex()}",
                "tenant": self.tenant, "admin": self.admin,
                "rights": {c: sorted(r) for c, r in sorted(self.rights.items())},
                "created": self.created, "revoked": self.revoked}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyRecord:
        """A record from its JSON form; InvalidArgument naming the bad field otherwise."""
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"a key record must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {"id", "hash", "tenant", "admin", "rights", "created", "revoked"}
        if unknown:
            raise InvalidArgument(f"unknown field {sorted(unknown)[0]!r} in key record {data.get('id')!r}")
        key_id = data.get("id")
        if not isinstance(key_id, str) or not key_id.isalnum():
            raise InvalidArgument(f"key record id must be alphanumeric, got {key_id!r}")
        scheme, _, rest = str(data.get("hash", "")).partition("$")
        salt_hex, _, digest_hex = rest.partition("$")
        try:
            salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
        except ValueError:
            salt = digest = b""
        if scheme != "sha256" or not salt or len(digest) != hashlib.sha256().digest_size:
            raise InvalidArgument(f"key {key_id!r}: hash must be 'sha256$<salt hex>$<64 hex digits>'")
        admin = data.get("admin", False)
        if not isinstance(admin, bool):
            raise InvalidArgument(f"key {key_id!r}: admin must be true or false, got {admin!r}")
        rights = data.get("rights") or {}
        if not isinstance(rights, Mapping):
            raise InvalidArgument(f"key {key_id!r}: rights must map collections to lists of rights")
        tenant = _check_tenant(data.get("tenant"))
        if admin and tenant is not None:
            raise InvalidArgument(f"key {key_id!r}: an admin key cannot be restricted to a tenant")
        revoked = data.get("revoked")
        return cls(key_id, salt, digest, tenant, admin, _check_rights(rights),
                   float(data.get("created") or 0.0), None if revoked is None else float(revoked))


def new_key(*, tenant: str | None = None, admin: bool = False,
            rights: Mapping[str, Iterable[str]] | None = None,
            taken: Iterable[str] = ()) -> tuple[KeyRecord, str]:
    """A fresh key: its record (to keep) and the key itself (to hand out once, then forget)."""
    tenant = _check_tenant(tenant)
    checked = _check_rights(rights or {})
    if admin and tenant is not None:
        raise InvalidArgument("an admin key cannot be restricted to a tenant")
    if not admin and not checked:
        raise InvalidArgument("a key needs admin or at least one read/write right on a collection")
    taken = set(taken)
    key_id = secrets.token_hex(6)
    while key_id in taken:
        key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    salt = secrets.token_bytes(_SALT_BYTES)
    record = KeyRecord(key_id, salt, hash_secret(secret, salt), tenant, admin, checked, time.time())
    return record, secret


def key_id_of(secret: str) -> str | None:
    """The id part of `lk_<id>_<random>`, or None if `secret` does not have that shape."""
    prefix, sep, rest = secret.partition("_")
    key_id, sep2, random_part = rest.partition("_")
    if prefix != KEY_PREFIX or not sep or not sep2 or not key_id or not random_part:
        return None
    return key_id


# ----------------------------------------------------------------------------- keys files
def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def load_keys_file(path: str | Path) -> list[KeyRecord]:
    """The key records of a keys file (format in the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the keys file {path}: {exc.strerror}") from None
    if _is_yaml(path):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"keys file {path} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise InvalidArgument(f"keys file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("keys", []), list):
        raise InvalidArgument(f"keys file {path} must hold {{\"keys\": [records]}}")
    records = [KeyRecord.from_dict(item) for item in data.get("keys", [])]
    ids = [r.id for r in records]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate is not None:
        raise InvalidArgument(f"keys file {path} has key id {duplicate!r} twice")
    return records


def append_to_keys_file(path: str | Path, record: KeyRecord) -> None:
    """Add `record` to a keys file, creating it; written to a temporary name, then renamed."""
    path = Path(path)
    records = load_keys_file(path) if path.exists() else []
    if any(r.id == record.id for r in records):
        raise InvalidArgument(f"keys file {path} already has key id {record.id!r}")
    data = {"keys": [r.to_dict() for r in (*records, record)]}
    if _is_yaml(path):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


# ----------------------------------------------------------------------------- key store
class KeyStore:
    """The API keys a server accepts: records in the Store (read-write) plus a keys file's (read-only).

    Records are cached in memory (RocksDB admits one process, so nothing else changes them while
    this runs); `create` and `revoke` write through to the store before they return. Thread-safe.
    """

    def __init__(self, store: Store | None = None, *, file_records: Sequence[KeyRecord] = ()) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._records: dict[str, KeyRecord] = {}
        if store is not None:
            for key_id, raw in store.scan_system(NAMESPACE):
                self._records[key_id] = KeyRecord.from_dict(json.loads(raw))
        self._file_ids = {r.id for r in file_records}
        for record in file_records:
            if record.id in self._records:
                raise InvalidArgument(f"key id {record.id!r} is both in the store and in the keys file")
            self._records[record.id] = record

    @property
    def configured(self) -> bool:
        """Whether any key was ever created here (revoked ones count: revoking never disables auth)."""
        return bool(self._records)

    def create(self, *, tenant: str | None = None, admin: bool = False,
               rights: Mapping[str, Iterable[str]] | None = None) -> tuple[KeyRecord, str]:
        """Create and persist a key; returns its record and the key, which is never shown again."""
        if self._store is None:
            raise FailedPrecondition("this key store has no Store to write to: append to the keys file instead")
        with self._lock:
            record, secret = new_key(tenant=tenant, admin=admin, rights=rights, taken=self._records)
            self._store.put_system(NAMESPACE, record.id, json.dumps(record.to_dict()).encode())
            self._records[record.id] = record
        return record, secret

    def revoke(self, key_id: str) -> KeyRecord:
        """Mark a key revoked (kept, so that `list` shows it); NotFound if there is no such key."""
        with self._lock:
            record = self._records.get(key_id)
            if record is None:
                raise NotFound(f"no API key with id {key_id!r}")
            if key_id in self._file_ids:
                raise FailedPrecondition(f"API key {key_id!r} comes from the keys file: remove it there")
            if record.revoked is None:
                record = replace(record, revoked=time.time())
                self._store.put_system(NAMESPACE, key_id, json.dumps(record.to_dict()).encode())
                self._records[key_id] = record
            return record

    def list(self) -> list[KeyRecord]:
        """Every record, oldest first (records hold no key, only digests)."""
        return sorted(self._records.values(), key=lambda r: (r.created, r.id))

    def authenticate(self, secret: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None for anything else."""
        key_id = key_id_of(secret)
        record = self._records.get(key_id) if key_id is not None else None
        if record is None or record.revoked is not None or not record.matches(secret):
            return None
        return record.principal


# ----------------------------------------------------------------------------- access rules
@dataclass(frozen=True)
class Rule:
    """What a method needs: `kind`, and for read/write the request field naming the collection."""

    kind: Literal["public", "authenticated", "admin", "read", "write"]
    field: str | None = None


PUBLIC = Rule("public")
AUTHENTICATED = Rule("authenticated")  # any valid key; the servicer narrows the answer (List)
ADMIN = Rule("admin")


def read(field: str = "collection") -> Rule:
    return Rule("read", field)


def write(field: str = "collection") -> Rule:
    return Rule("write", field)


ACCESS_RULES: dict[str, Rule] = {
    "/lamina.v1.Collections/Create": ADMIN,
    "/lamina.v1.Collections/Get": read("name"),
    "/lamina.v1.Collections/List": AUTHENTICATED,  # the servicer lists what principal.can("read", ...)
    "/lamina.v1.Collections/Drop": ADMIN,
    "/lamina.v1.Collections/Snapshot": ADMIN,  # a copy of every tenant's data
    "/lamina.v1.Points/Upsert": write(),
    "/lamina.v1.Points/Delete": write(),
    "/lamina.v1.Points/Get": read(),
    "/lamina.v1.Points/Count": read(),
    "/lamina.v1.Points/Facet": read(),  # tenant-scoped in the servicer, as Count
    "/lamina.v1.Tenants/List": read(),  # a tenant key sees its own tenant only (servicer)
    "/lamina.v1.Tenants/Delete": write(),  # a tenant key may delete its own tenant only (servicer)
    "/lamina.v1.Search/Search": read(),
    "/lamina.v1.Rag/Answer": read("search.collection"),
    "/grpc.health.v1.Health/Check": PUBLIC,
    "/grpc.health.v1.Health/Watch": PUBLIC,
    "/grpc.health.v1.Health/List": PUBLIC,  # service names and statuses: what reflection shows anyway
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": PUBLIC,
}


def bearer_key(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The key of `authorization: Bearer <key>` or `x-api-key: <key>`; None if neither is sent."""
    found: dict[str, str] = {}
    for key, value in metadata or ():
        if key in ("authorization", "x-api-key") and isinstance(value, str):
            found.setdefault(key, value)
    if "authorization" in found:
        scheme, _, token = found["authorization"].strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return found.get("x-api-key")


Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _denying(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    """`handler` with every behaviour replaced by one that answers `code` (any of the 4 kinds)."""

    async def deny(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, details)

    kind = ("stream_" if handler.request_streaming else "unary_") + ("stream" if handler.response_streaming
                                                                     else "unary")
    behaviors = dict.fromkeys(("unary_unary", "unary_stream", "stream_unary", "stream_stream"))
    return handler._replace(**{**behaviors, kind: deny})


def _collection_of(request: Any, field: str) -> str:
    """The collection a request names: `field` is a field of the request or a dotted path into it."""
    value = request
    for name in field.split("."):
        value = getattr(value, name)
    return value


def _guarded(handler: grpc.RpcMethodHandler, rule: Rule, principal: Principal) -> grpc.RpcMethodHandler:
    """`handler` that checks the request's collection right, then serves with `principal` set. Unary
    and server-streaming methods (one request, the right checked before the first response)."""

    async def check(request: Any, context: grpc.aio.ServicerContext) -> None:
        if rule.field is not None:
            collection = _collection_of(request, rule.field)
            if not principal.can(rule.kind, collection):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                    f"API key {principal.key_id!r} has no {rule.kind} right on "
                                    f"collection {collection!r}")

    if handler.response_streaming:
        stream: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]] = handler.unary_stream

        async def guarded_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await check(request, context)
            token = _PRINCIPAL.set(principal)
            try:
                async for response in stream(request, context):
                    yield response
            finally:
                _PRINCIPAL.reset(token)

        return handler._replace(unary_stream=guarded_stream)

    behavior: Behavior = handler.unary_unary

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(request, context)
        token = _PRINCIPAL.set(principal)
        try:
            return await behavior(request, context)
        finally:
            _PRINCIPAL.reset(token)

    return handler._replace(unary_unary=guarded)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Enforces `rules` with the keys of `keys`; `keys=None` turns auth off (every call UNRESTRICTED)."""

    def __init__(self, keys: KeyStore | None, rules: Mapping[str, Rule] = ACCESS_RULES) -> None:
        self.keys = keys
        self.rules = dict(rules)

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def _authenticate(self, metadata: Any) -> Principal | tuple[grpc.StatusCode, str]:
        if self.keys is None:
            return UNRESTRICTED
        secret = bearer_key(metadata)
        if not secret:
            return grpc.StatusCode.UNAUTHENTICATED, "missing API key: send metadata 'authorization: Bearer <key>'"
        principal = self.keys.authenticate(secret)
        if principal is None:
            return grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked API key"
        return principal

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED
            return None
        checked = self._checked(handler, details)
        # outermost: a request that does not decode is answered before any check reads it
        return guard_decoding(checked, details.method) if details.method.startswith("/lamina.") else checked

    def _checked(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        rule = self.rules.get(details.method)
        if rule is None:  # fail closed; tests/service/test_auth.py catches this before it ships
            return _denying(handler, grpc.StatusCode.PERMISSION_DENIED, f"{details.method} has no access rule")
        if rule.kind == "public":
            return handler
        verdict = self._authenticate(details.invocation_metadata)
        if not isinstance(verdict, Principal):
            return _denying(handler, *verdict)
        if rule.kind == "admin" and not verdict.admin:
            return _denying(handler, grpc.StatusCode.PERMISSION_DENIED,
                            f"{details.method} needs an admin key; API key {verdict.key_id!r} is not one")
        if handler.request_streaming:
            # no Lamina method streams its requests; checking each request is left for when one does
            return _denying(handler, grpc.StatusCode.UNIMPLEMENTED,
                            f"{details.method}: access checks on client-streaming methods are not implemented")
        return _guarded(handler, rule, verdict)


def make_interceptor(store: Store | None, *, auth: str = "auto", api_keys_file: str | Path | None = None,
                     keys: KeyStore | None = None) -> AuthInterceptor:
    """The interceptor a server installs: keys from `store` and `api_keys_file` (or `keys` as given).

    auth="on" enforces keys even if there are none yet (only public methods answer), "off" never
    does, "auto" (the default) enforces them once any key exists in the store or the file.
    """
    if auth not in AUTH_MODES:
        raise InvalidArgument(f"auth must be one of {', '.join(AUTH_MODES)}, got {auth!r}")
    if auth == "off":
        log.warning("API-key auth is off: every caller has every right")
        return AuthInterceptor(None)
    if keys is None:
        file_records = load_keys_file(api_keys_file) if api_keys_file is not None else ()
        keys = KeyStore(store, file_records=file_records)
    if auth == "auto" and not keys.configured:
        log.warning("API-key auth is off: no key configured (create one with `lamina keys create`)")
        return AuthInterceptor(None)
    log.info("API-key auth is on: %d keys", len(keys.list()))
    return AuthInterceptor(keys)


# ----------------------------------------------------------------------------- client side
@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _ApiKeyClientInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                               grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <key>` to the metadata of every call of any kind."""

    def __init__(self, api_key: str) -> None:
        self._metadata = (("authorization", f"Bearer {api_key}"),)

    def _call(self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any) -> Any:
        metadata = (*(details.metadata or ()), *self._metadata)
        return continuation(_CallDetails(details.method, details.timeout, metadata, details.credentials,
                                         details.wait_for_ready, details.compression), request)

    intercept_unary_unary = intercept_unary_stream = _call
    intercept_stream_unary = intercept_stream_stream = _call


def with_api_key(channel: grpc.Channel, api_key: str | None) -> grpc.Channel:
    """`channel` sending `authorization: Bearer <api_key>` on every call (unchanged if api_key is None)."""
    if not api_key:
        return channel
    return grpc.intercept_channel(channel, _ApiKeyClientInterceptor(api_key))
