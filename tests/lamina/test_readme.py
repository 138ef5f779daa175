"""README's commands, as written, against a server like `make run`'s (issue 26: a newcomer runs them).

Every shell command of README.md that talks to the demo server (127.0.0.1:50051 over gRPC, :8080 over
HTTP; `tests/lamina/readme_commands.py` picks them) runs against a real server that serves the demo
collection (`lamina.demo`, with its payload fields and token vectors) on free ports. `lamina ...`
commands run in-process through click with the README's own arguments (shlex-split as bash would);
`curl` ones run in bash. The encoders are the tests' hashing ones, so no model loads: what is checked
is that each command is accepted and answers, not the ranking.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from lamina.cli import main
from lamina.demo import DEMO_COLLECTION, DEMO_OPTIONS, demo_documents
from lamina.service.rag import GeneratorPool

from tests.lamina.readme_commands import GRPC, HTTP, server_commands
from tests.retrieval.test_search_pipeline import HashingTokenEncoder
from tests.service.conftest import database, start_server  # noqa: F401 - the server fixtures

COMMANDS = server_commands()


@pytest.fixture
def demo_server(start_server, database):  # noqa: F811
    database._token_loader = lambda name: HashingTokenEncoder()
    database.create_collection(DEMO_COLLECTION, **DEMO_OPTIONS).upsert(list(demo_documents()), wait=True)
    return start_server(http_port=0, generators=GeneratorPool())


def test_readme_has_server_commands():
    kinds = {c.split()[0] for c in COMMANDS}
    assert len(COMMANDS) >= 10 and kinds == {".venv/bin/lamina", "curl"}
    assert any("--filter" in c and "--rerank" in c for c in COMMANDS)


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(demo_server, command):
    if " ask " in command and "--generator none" not in command and \
            importlib.util.find_spec("lamina.rag.generators") is None:
        pytest.xfail("the server's default generator 'local' needs lamina.rag.generators, not in the tree yet")
    text = command.replace(GRPC, demo_server.target).replace(HTTP, f"127.0.0.1:{demo_server.http_port}")
    if text.startswith("curl "):
        if shutil.which("curl") is None:
            pytest.skip("no curl on this machine")
        done = subprocess.run(["bash", "-c", f"set -o pipefail; {text}"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip(), done.stderr
        assert '"error"' not in done.stdout[:200], done.stdout[:500]
        return
    args = shlex.split(text.replace("\\\n", " "), comments=True)  # bash joins a backslash-newline
    result = CliRunner().invoke(main, args[1:], env={"LAMINA_API_KEY": ""})
    assert result.exit_code == 0, result.output
    assert result.output.strip()
