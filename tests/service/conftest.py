"""Fixtures for the service tests: a Lamina server on a free port, in a background thread.

The server serves a `Database` that the test also holds, so a test can compare what the
remote API answers with what the in-process `Collection` answers over the same data.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from lamina.retrieval.collection import Database
from lamina.service.client import Client
from lamina.service.server import serve_database


class ServerThread:
    """`serve_database` on its own event loop in a daemon thread."""

    def __init__(self, database: Database, **options: Any) -> None:
        self.database = database
        self.options = {"grace": 2.0, "drain": 0.0, "workers": 4, **options}
        self.port = 0
        self.http_port = 0  # with the option http_port (0: a free one): the HTTP/JSON API's port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="lamina-test-server", daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the test server did not start within 10 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Ask for a graceful stop (as SIGTERM would) and wait for it."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "the test server did not stop"

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def ready(port: int) -> None:
            self.port = port
            self._ready.set()

        def http_ready(port: int) -> None:
            self.http_port = port

        await serve_database(self.database, "127.0.0.1", 0, ready=ready, stop=self._stop, http_ready=http_ready,
                             **self.options)


@pytest.fixture
def database(tmp_path, fake_encoder_loader):
    db = Database(tmp_path / "data", encoder_loader=fake_encoder_loader)
    yield db
    db.close()


@pytest.fixture
def start_server(database):
    """Start servers over the test's database with `build_server` options; all are stopped at teardown."""
    servers: list[ServerThread] = []

    def start(**options: Any) -> ServerThread:
        server = ServerThread(database, **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server) -> ServerThread:
    return start_server()


@pytest.fixture
def client(server):
    with Client(server.target, timeout=10) as c:
        yield c
