"""API keys and access rules: hashing at rest, authenticate/revoke, persistence, keys files, the
interceptor's status codes on a real grpc.aio server, the rule table against reflection, the CLI."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lamina.cli import main
from lamina.index.errors import FailedPrecondition, InvalidArgument, NotFound
from lamina.index.store import Store
from lamina.service import auth
from lamina.service.auth import (
    ACCESS_RULES,
    UNRESTRICTED,
    AuthInterceptor,
    KeyRecord,
    KeyStore,
    PermissionDenied,
    Principal,
    Rule,
    append_to_keys_file,
    bearer_key,
    current_principal,
    load_keys_file,
    make_interceptor,
    new_key,
    with_api_key,
)
from lamina.service.v1 import (
    collections_pb2,
    collections_pb2_grpc,
    points_pb2,
    points_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    yield s
    s.close()


# ----------------------------------------------------------------------------- keys at rest
def test_no_key_is_kept_only_its_salted_digest(tmp_path):
    path = tmp_path / "store"
    store = Store(path)
    record, secret = KeyStore(store).create(tenant="acme", rights={"docs": ["read"]})
    raw = store.get_system(auth.NAMESPACE, record.id)
    store.close()
    random_part = secret.split("_", 2)[2]
    assert secret.startswith(f"lk_{record.id}_") and len(random_part) >= 43  # 256 bits, urlsafe base64
    assert random_part.encode() not in raw and secret.encode() not in raw
    # nowhere in the database's files either (WAL, SST, manifest)
    for file in path.rglob("*"):
        if file.is_file():
            assert random_part.encode() not in file.read_bytes(), file
    stored = json.loads(raw)
    scheme, salt_hex, digest_hex = stored["hash"].split("$")
    assert scheme == "sha256" and len(bytes.fromhex(salt_hex)) == 16
    assert bytes.fromhex(digest_hex) == auth.hash_secret(secret, bytes.fromhex(salt_hex))


def test_salts_differ_so_equal_rights_give_unrelated_records(store):
    keys = KeyStore(store)
    a, _ = keys.create(rights={"docs": ["read"]})
    b, _ = keys.create(rights={"docs": ["read"]})
    assert a.id != b.id and a.salt != b.salt and a.digest != b.digest


def test_authenticate_accepts_only_the_exact_live_key(store):
    keys = KeyStore(store)
    record, secret = keys.create(tenant="acme", rights={"docs": ["read", "write"], "*": "read"})
    principal = keys.authenticate(secret)
    assert principal == Principal(record.id, "acme", False,
                                  {"docs": frozenset({"read", "write"}), "*": frozenset({"read"})})
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    other, other_secret = keys.create(admin=True)
    swapped = f"lk_{other.id}_{secret.split('_', 2)[2]}"  # a valid id with another key's random part
    for bad in (tampered, swapped, "", "lk_", "lk__x", "Bearer " + secret, secret + "x", "lk_nope_abc"):
        assert keys.authenticate(bad) is None, bad
    assert keys.authenticate(other_secret).admin

    assert keys.revoke(record.id).revoked is not None
    assert keys.authenticate(secret) is None
    assert keys.authenticate(other_secret) is not None
    with pytest.raises(NotFound, match="zzz"):
        keys.revoke("zzz")


def test_keys_and_revocations_survive_reopening_the_store(tmp_path):
    store = Store(tmp_path / "store")
    keys = KeyStore(store)
    kept, kept_secret = keys.create(tenant="t1", rights={"docs": ["write"]})
    gone, gone_secret = keys.create(admin=True)
    keys.revoke(gone.id)
    store.close()

    store = Store(tmp_path / "store")
    reopened = KeyStore(store)
    assert [r.id for r in reopened.list()] == [kept.id, gone.id]
    assert reopened.authenticate(kept_secret) == kept.principal
    assert reopened.authenticate(gone_secret) is None
    assert reopened.configured  # a store whose keys are all revoked still enforces auth
    store.close()


def test_store_system_records_stay_apart_from_collections(store):
    store.put_system("api_keys", "a", b"1")
    store.put_system("api_keys_other", "b", b"2")
    assert list(store.scan_system("api_keys")) == [("a", b"1")]
    assert store.list_collections() == []
    store.delete_system("api_keys", "a")
    assert store.get_system("api_keys", "a") is None
    with pytest.raises(InvalidArgument):
        store.put_system("", "a", b"")


@pytest.mark.parametrize("kwargs, message", [
    ({"admin": True, "tenant": "acme"}, "admin key cannot be restricted"),
    ({"tenant": "acme"}, "needs admin or at least one"),
    ({"rights": {"docs": ["delete"]}}, "unknown right 'delete'"),
    ({"rights": {"bad name": ["read"]}}, "invalid collection name"),
    ({"tenant": "", "rights": {"docs": ["read"]}}, "tenant must be"),
])
def test_new_key_rejects_bad_principals(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        new_key(**kwargs)


# ----------------------------------------------------------------------------- principals
def test_principal_rights_and_tenant_scope():
    reader = Principal("k", "acme", rights={"docs": frozenset({"read"}), "*": frozenset({"write"})})
    assert reader.can("read", "docs") and not reader.can("read", "faq")
    assert reader.can("write", "faq")  # from "*"
    with pytest.raises(PermissionDenied, match="no read right on collection 'faq'"):
        reader.check("read", "faq")
    assert reader.scope_tenant(None) == "acme" and reader.scope_tenant("acme") == "acme"
    with pytest.raises(PermissionDenied):
        reader.scope_tenant("globex")
    admin = Principal("a", admin=True)
    assert admin.can("write", "anything") and admin.scope_tenant("globex") == "globex"
    assert admin.scope_tenant("") is None and UNRESTRICTED.scope_tenant(None) is None


def test_current_principal_outside_a_call_refuses():
    with pytest.raises(RuntimeError, match="outside a served RPC"):
        current_principal()


@pytest.mark.parametrize("metadata, expected", [
    ((("authorization", "Bearer lk_a_b"),), "lk_a_b"),
    ((("authorization", "bearer  lk_a_b "),), "lk_a_b"),
    ((("x-api-key", "lk_a_b"),), "lk_a_b"),
    ((("authorization", "Basic xyz"), ("x-api-key", "lk_a_b")), ""),  # a wrong scheme is not ignored
    ((("authorization", "Bearer"),), ""),
    ((("user-agent", "x"),), None),
    (None, None),
])
def test_bearer_key(metadata, expected):
    assert bearer_key(metadata) == expected


# ----------------------------------------------------------------------------- keys files
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_keys_file_round_trip_and_serving_from_it(tmp_path, store, suffix):
    path = tmp_path / f"keys{suffix}"
    record, secret = new_key(tenant="acme", rights={"docs": ["read"]})
    admin, admin_secret = new_key(admin=True)
    append_to_keys_file(path, record)
    append_to_keys_file(path, admin)
    assert secret.split("_", 2)[2] not in path.read_text()
    assert path.stat().st_mode & 0o077 == 0  # the digests are not secrets, but nobody else needs them
    loaded = load_keys_file(path)
    assert loaded == [record, admin]
    keys = KeyStore(store, file_records=loaded)
    assert keys.authenticate(secret) == record.principal and keys.authenticate(admin_secret).admin
    with pytest.raises(FailedPrecondition, match="keys file"):
        keys.revoke(record.id)
    with pytest.raises(InvalidArgument, match="already has key id"):
        append_to_keys_file(path, record)


def test_keys_file_documented_example_loads(tmp_path):
    record, secret = new_key(rights={"docs": ["read", "write"]})
    hand_written = {"keys": [{"id": record.id, "hash": record.to_dict()["hash"], "tenant": "acme",
                              "rights": {"docs": ["read", "write"]}}]}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(hand_written))
    (loaded,) = load_keys_file(path)
    assert loaded.tenant == "acme" and not loaded.admin and loaded.revoked is None and loaded.matches(secret)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"keys": {}}', "must hold"),
    ('{"keys": [{"id": "a1", "hash": "md5$00$00"}]}', "hash must be"),
    ('{"keys": [{"id": "a1", "hash": "sha256$00$' + "0" * 64 + '", "colour": 1}]}', "unknown field 'colour'"),
    ('{"keys": [{"id": "a-1", "hash": "x"}]}', "alphanumeric"),
    ('{"keys": [{"id": "a1", "hash": "sha256$00$' + "0" * 64 + '", "admin": "yes"}]}', "admin must be"),
    ('{"keys": [{"id": "a1", "hash": "sha256$00$' + "0" * 64 + '"}, {"id": "a1", "hash": "sha256$00$'
     + "0" * 64 + '"}]}', "twice"),
])
def test_bad_keys_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(InvalidArgument, match=message):
        load_keys_file(path)


def test_a_key_id_in_both_store_and_file_is_refused(tmp_path, store):
    record, _ = KeyStore(store).create(admin=True)
    with pytest.raises(InvalidArgument, match="both in the store and in the keys file"):
        KeyStore(store, file_records=[record])


def test_auth_modes(tmp_path, store):
    assert not make_interceptor(store).enabled  # auto, no key: as before auth existed
    assert make_interceptor(store, auth="on").enabled
    keys = KeyStore(store)
    record, _ = keys.create(admin=True)
    keys.revoke(record.id)
    assert make_interceptor(store).enabled  # revoking the last key does not open the server
    assert not make_interceptor(store, auth="off").enabled
    with pytest.raises(InvalidArgument, match="auth must be"):
        make_interceptor(store, auth="maybe")


# ----------------------------------------------------------------------------- the rule table
def _served_methods(target: str) -> set[str]:
    """Every "/package.Service/Method" the server at `target` serves, as reflection tells."""
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        def ask(**request):
            return next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]),
                                                  timeout=10))

        services = [s.name for s in ask(list_services="").list_services_response.service]
        methods = set()
        for service in services:
            for raw in ask(file_containing_symbol=service).file_descriptor_response.file_descriptor_proto:
                file = descriptor_pb2.FileDescriptorProto.FromString(raw)
                for svc in file.service:
                    if f"{file.package}.{svc.name}" == service:
                        methods.update(f"/{service}/{m.name}" for m in svc.method)
    return methods


def test_every_served_rpc_has_an_access_rule_and_every_rule_an_rpc(start_server, database):
    server = start_server(keys=KeyStore(database.store), auth="on")  # reflection is public: no key needed
    methods = _served_methods(server.target)
    assert "/lamina.v1.Search/Search" in methods and "/grpc.health.v1.Health/Check" in methods
    missing = sorted(methods - set(ACCESS_RULES))
    assert not missing, f"RPCs without an access rule in lamina.service.auth.ACCESS_RULES: {missing}"
    stale = sorted(set(ACCESS_RULES) - methods)
    assert not stale, f"access rules for RPCs the server does not serve: {stale}"


def test_collection_rules_name_a_string_field_of_the_request():
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    for method, rule in ACCESS_RULES.items():
        if rule.kind in ("read", "write"):
            service, name = method.strip("/").rsplit("/", 1)
            message = pool.FindServiceByName(service).methods_by_name[name].input_type
            *path, last = rule.field.split(".")  # a dotted path names a field of a nested message
            for part in path:
                message = message.fields_by_name[part].message_type
            field = message.fields_by_name.get(last)
            assert field is not None and field.type == field.TYPE_STRING, (method, rule.field)


# ----------------------------------------------------------------------------- on a real server
def _rpc(target: str, key: str | None, call, header: str = "authorization"):
    """Run `call(channel)` with `key`; returns the status code."""
    with grpc.insecure_channel(target) as channel:
        if key is not None and header == "authorization":
            channel = with_api_key(channel, key)
        metadata = (("x-api-key", key),) if key is not None and header == "x-api-key" else None
        try:
            call(channel, metadata)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _list(channel, md):
    return collections_pb2_grpc.CollectionsStub(channel).List(collections_pb2.ListCollectionsRequest(),
                                                              metadata=md, timeout=10)


def _create(name):
    return lambda ch, md: collections_pb2_grpc.CollectionsStub(ch).Create(
        collections_pb2.CreateCollectionRequest(name=name, dim=4, metric=0), metadata=md, timeout=10)


def _drop(name):
    return lambda ch, md: collections_pb2_grpc.CollectionsStub(ch).Drop(
        collections_pb2.DropCollectionRequest(name=name), metadata=md, timeout=10)


def _get_collection(name):
    return lambda ch, md: collections_pb2_grpc.CollectionsStub(ch).Get(
        collections_pb2.GetCollectionRequest(name=name), metadata=md, timeout=10)


def _upsert(name):
    point = {"id": "p1", "vector": {"dense": {"values": [1.0, 0.0, 0.0, 0.0]}}}
    return lambda ch, md: points_pb2_grpc.PointsStub(ch).Upsert(
        points_pb2.UpsertPointsRequest(collection=name, points=[point], wait=True), metadata=md, timeout=10)


def _get_points(name):
    return lambda ch, md: points_pb2_grpc.PointsStub(ch).Get(
        points_pb2.GetPointsRequest(collection=name, ids=["p1"]), metadata=md, timeout=10)


def _search(name):
    return lambda ch, md: search_pb2_grpc.SearchStub(ch).Search(
        search_pb2.SearchRequest(collection=name, vector={"dense": {"values": [1.0, 0.0, 0.0, 0.0]}}, k=1),
        metadata=md, timeout=10)


def _health(ch, md):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)


def test_status_codes_of_the_lamina_services(start_server, database):
    keys = KeyStore(database.store)
    _, admin = keys.create(admin=True)
    _, reader = keys.create(tenant="acme", rights={"docs": ["read"]})
    _, writer = keys.create(tenant="acme", rights={"docs": ["read", "write"]})
    revoked_record, revoked = keys.create(rights={"*": ["read", "write"]})
    keys.revoke(revoked_record.id)
    target = start_server(keys=keys).target
    ok = grpc.StatusCode.OK

    assert _rpc(target, None, _health) == ok  # public
    for key in (None, "lk_nope_nope", revoked, admin + "x", ""):
        assert _rpc(target, key, _list) == UNAUTHENTICATED, key
        assert _rpc(target, key, _search("docs")) == UNAUTHENTICATED, key

    # admin-only methods
    assert _rpc(target, writer, _create("docs")) == PERMISSION_DENIED
    assert _rpc(target, admin, _create("docs")) == ok
    assert _rpc(target, admin, _create("other")) == ok
    assert _rpc(target, writer, _drop("other")) == PERMISSION_DENIED

    # per-collection rights, checked before the servicer runs
    assert _rpc(target, reader, _upsert("docs")) == PERMISSION_DENIED
    assert _rpc(target, writer, _upsert("docs")) == ok
    assert _rpc(target, writer, _upsert("docs"), header="x-api-key") == ok
    for call in (_search, _get_points, _get_collection):
        assert _rpc(target, reader, call("docs")) == ok
        assert _rpc(target, reader, call("other")) == PERMISSION_DENIED
        # a collection that does not exist is denied the same way: no existence is revealed
        assert _rpc(target, reader, call("missing")) == PERMISSION_DENIED
        assert _rpc(target, admin, call("missing")) == grpc.StatusCode.NOT_FOUND
    assert _rpc(target, reader, _list) == ok

    # a key revoked while serving stops working at once
    keys.revoke(auth.key_id_of(reader))
    assert _rpc(target, reader, _search("docs")) == UNAUTHENTICATED
    assert _rpc(target, admin, _drop("other")) == ok


def test_without_keys_the_service_stays_open(start_server):
    target = start_server().target
    assert _rpc(target, None, _create("docs")) == grpc.StatusCode.OK
    assert _rpc(target, None, _search("docs")) == grpc.StatusCode.OK


# ---- the interceptor on its own, with a test service whose handler reports the principal
class EchoServer:
    """A grpc.aio server with `/test.Echo/*` methods behind an AuthInterceptor, in a thread."""

    RULES = {"/test.Echo/Whoami": Rule("read", "collection"), "/test.Echo/Admin": auth.ADMIN,
             "/test.Echo/Open": auth.PUBLIC, "/test.Echo/Stream": Rule("read", "collection"),
             "/test.Echo/Worker": Rule("write", "collection")}

    def __init__(self, keys: KeyStore | None) -> None:
        self.keys = keys
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        async def whoami(request, context):
            principal = current_principal()
            return f"{principal.key_id}|{principal.tenant}|{principal.admin}"

        async def open_(request, context):
            try:
                return current_principal().key_id
            except RuntimeError:
                return "no principal"

        async def worker(request, context):
            """The servicer's pattern: the work runs on a thread pool, with the RPC's context copied."""
            loop = asyncio.get_running_loop()
            copied = await loop.run_in_executor(None, contextvars.copy_context().run,
                                                lambda: current_principal().key_id)
            try:
                await loop.run_in_executor(None, current_principal)
                uncopied = "visible"
            except RuntimeError:
                uncopied = "refused"
            return f"{copied}|{uncopied}"

        async def stream(request, context):
            principal = current_principal()  # set for the whole stream, after the right was checked
            yield f"{principal.key_id}|"
            yield f"{principal.tenant}"

        decode = lambda raw: SimpleNamespace(collection=raw.decode())  # noqa: E731
        handlers = {name: grpc.unary_unary_rpc_method_handler(whoami, decode)  # str answers: encoded by grpc
                    for name in ("Whoami", "Admin", "NoRule")}
        handlers["Open"] = grpc.unary_unary_rpc_method_handler(open_, decode)
        handlers["Worker"] = grpc.unary_unary_rpc_method_handler(worker, decode)
        handlers["Stream"] = grpc.unary_stream_rpc_method_handler(stream, decode)
        server = grpc.aio.server(interceptors=[AuthInterceptor(self.keys, self.RULES)])
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Echo", handlers)])
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await server.stop(1)

    def __enter__(self) -> EchoServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, method: str, collection: str = "docs", key: str | None = None) -> tuple[str, str]:
        """(status name, response or details)."""
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            if method == "Stream":
                fn = channel.unary_stream(f"/test.Echo/{method}", request_serializer=str.encode,
                                          response_deserializer=bytes.decode)
            else:
                fn = channel.unary_unary(f"/test.Echo/{method}", request_serializer=str.encode,
                                         response_deserializer=bytes.decode)
            metadata = (("authorization", f"Bearer {key}"),) if key else None
            try:
                answer = fn(collection, metadata=metadata, timeout=10)
                return "OK", "".join(answer) if method == "Stream" else answer
            except grpc.RpcError as exc:
                return exc.code().name, exc.details()


def test_interceptor_hands_the_principal_to_the_handler(store):
    keys = KeyStore(store)
    reader_record, reader = keys.create(tenant="acme", rights={"docs": ["read"]})
    admin_record, admin = keys.create(admin=True)
    with EchoServer(keys) as echo:
        assert echo.call("Whoami", key=reader) == ("OK", f"{reader_record.id}|acme|False")
        assert echo.call("Whoami", key=admin) == ("OK", f"{admin_record.id}|None|True")
        code, details = echo.call("Whoami", "faq", key=reader)
        assert code == "PERMISSION_DENIED" and "no read right on collection 'faq'" in details
        assert echo.call("Whoami", key=None)[0] == "UNAUTHENTICATED"
        assert echo.call("Admin", key=reader)[0] == "PERMISSION_DENIED"
        assert echo.call("Admin", key=admin)[0] == "OK"
        assert echo.call("Open") == ("OK", "no principal")  # public: no key needed, none is set
        assert echo.call("Open", key=admin) == ("OK", "no principal")
        assert echo.call("NoRule", key=admin)[0] == "PERMISSION_DENIED"  # fail closed
        assert echo.call("Stream", key=admin) == ("OK", f"{admin_record.id}|None")
        assert echo.call("Stream", key=reader) == ("OK", f"{reader_record.id}|acme")
        code, details = echo.call("Stream", "faq", key=reader)
        assert code == "PERMISSION_DENIED" and "no read right on collection 'faq'" in details
        assert echo.call("Stream", key=None)[0] == "UNAUTHENTICATED"
        assert echo.call("Nope", key=admin)[0] == "UNIMPLEMENTED"
        # in a worker thread the principal is there only if the context was copied; else it refuses
        assert echo.call("Worker", key=admin) == ("OK", f"{admin_record.id}|refused")
        assert echo.call("Worker", key=reader)[0] == "PERMISSION_DENIED"  # no write right on docs


def test_interceptor_with_auth_off_gives_every_call_the_unrestricted_principal():
    with EchoServer(None) as echo:
        assert echo.call("Whoami", "anything") == ("OK", f"{UNRESTRICTED.key_id}|None|True")
        assert echo.call("NoRule")[0] == "PERMISSION_DENIED"  # a missing rule is a bug either way


# ----------------------------------------------------------------------------- CLI
def _cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_keys_create_list_revoke(tmp_path):
    data = tmp_path / "data"
    created = _cli("keys", "create", "--tenant", "acme", "--read", "docs,faq", "--write", "docs", "--json",
                   "--data-dir", data)
    assert created.exit_code == 0, created.output
    answer = json.loads(created.output)
    key_id, secret = answer["id"], answer["key"]

    listed = _cli("keys", "list", "--data-dir", data)
    assert listed.exit_code == 0
    assert f"{key_id}\tactive\ttenant=acme\trights=docs:read+write,faq:read\tstore" in listed.output
    assert secret.split("_", 2)[2] not in listed.output

    admin = _cli("keys", "create", "--admin", "--data-dir", data)
    assert admin.exit_code == 0 and "cannot be shown again" in admin.output  # CliRunner mixes stderr in
    assert _cli("keys", "revoke", key_id, "--data-dir", data).exit_code == 0
    assert f"{key_id}\trevoked" in _cli("keys", "list", "--data-dir", data).output

    store = Store(data / "store")
    try:
        keys = KeyStore(store)
        assert keys.authenticate(secret) is None
        assert len(keys.list()) == 2
    finally:
        store.close()

    bad = CliRunner().invoke(main, ["keys", "create", "--admin", "--tenant", "acme", "--data-dir", str(data)])
    assert bad.exit_code != 0 and "cannot be restricted to a tenant" in bad.output
    missing = CliRunner().invoke(main, ["keys", "revoke", "nope", "--data-dir", str(data)])
    assert missing.exit_code != 0 and "no API key with id 'nope'" in missing.output


def test_cli_keys_file_and_serve_options(tmp_path, monkeypatch):
    path = tmp_path / "keys.json"
    created = _cli("keys", "create", "--write", "*", "--file", path, "--json")
    assert created.exit_code == 0
    answer = json.loads(created.output)
    (record,) = load_keys_file(path)
    assert record.id == answer["id"] and record.matches(answer["key"])
    assert f"{record.id}\tactive\ttenant=*\trights=*:write\t{path}" in _cli("keys", "list", "--file", path).output

    seen = {}
    monkeypatch.setattr("lamina.service.server.run", lambda directory, **kw: seen.update(kw))
    assert _cli("serve", "--data-dir", tmp_path / "d", "--api-keys-file", path, "--auth", "on").exit_code == 0
    assert seen["auth"] == "on" and Path(seen["api_keys_file"]) == path


def test_key_record_dict_round_trip():
    record, _ = new_key(tenant="acme", rights={"docs": ["write", "read"], "*": ["read"]})
    assert KeyRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
