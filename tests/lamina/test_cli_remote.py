"""`lamina call`, `lamina keys --target` and `--api-key` against a running server (gRPC and HTTP)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lamina.cli import main
from lamina.service.rag import GeneratorPool

from tests.service.conftest import database, start_server  # noqa: F401 - the server fixtures

TEXTS = ["the wing stalls at high angle of attack", "shock waves in supersonic flow", "heat transfer in laminar flow"]


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"LAMINA_API_KEY": "", **(env or {})})


def test_call_any_method_over_grpc_and_http(start_server, database):  # noqa: F811
    database.create_collection("docs", encoder="hashing").upsert(
        [{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS)], wait=True)
    server = start_server(http_port=0, generators=GeneratorPool({"none": None}, default="none"))
    for target in (server.target, server.url):
        listed = run("call", "--target", target, "Collections/List")
        assert listed.exit_code == 0, listed.output
        assert [c["name"] for c in json.loads(listed.output)["collections"]] == ["docs"]
        body = json.dumps({"collection": "docs", "text": "supersonic shock", "k": 1})
        hits = json.loads(run("call", "--target", target, "lamina.v1.Search/Search", body).output)["hits"]
        assert [h["id"] for h in hits] == ["d1"]
        answer = run("call", "--target", target, "Rag/Answer", json.dumps({"search": {"collection": "docs",
                                                                                       "text": "supersonic shock"}}))
        events = [json.loads(line) for line in answer.output.splitlines()]
        assert "citations" in events[0] and "done" in events[-1]
        bad = run("call", "--target", target, "Search/Search", '{"collection": "docs", "k": "many"}')
        assert bad.exit_code == 1 and "InvalidArgument" in bad.output and "k" in bad.output
        missing = run("call", "--target", target, "Collections/Get", '{"name": "nope"}')
        assert missing.exit_code == 1 and "NotFound" in missing.output
    assert "Keys/Revoke" in run("call", "--list").output
    assert "no method" in run("call", "Nope/Nothing").output


def test_keys_on_a_running_server(start_server, database):  # noqa: F811
    database.create_collection("docs", 8, encoder=None)
    server = start_server()
    created = run("keys", "create", "--target", server.target, "--admin", "--json")
    assert created.exit_code == 0, created.output
    admin = json.loads(created.output)["key"]
    # the first key turned auth on: the next call without it is refused
    refused = run("keys", "list", "--target", server.target)
    assert refused.exit_code == 1 and "Unauthenticated" in refused.output
    reader = run("keys", "create", "--target", server.target, "--tenant", "acme", "--read", "docs", "--api-key", admin)
    assert reader.exit_code == 0, reader.output
    reader_id = reader.output.split("\t")[0]
    listed = run("keys", "list", "--target", server.target, env={"LAMINA_API_KEY": admin}).output
    assert reader_id in listed and "tenant=acme" in listed and "rights=docs:read" in listed
    assert run("keys", "revoke", reader_id, "--target", server.target, "--api-key", admin).exit_code == 0
    assert f"{reader_id}\trevoked" in run("keys", "list", "--target", server.target, "--api-key", admin).output
    listed = run("collections", "list", "--target", server.target, "--api-key", admin)
    assert listed.exit_code == 0 and listed.output.split()[0] == "docs"
    assert run("collections", "list", "--target", server.target).exit_code == 1  # --api-key is what let it in
