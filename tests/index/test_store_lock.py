"""A store another process (or this one) holds is StoreLocked naming the process that holds it."""

from __future__ import annotations

import os

import pytest

from lamina.index.errors import StoreLocked
from lamina.index.store import Store


def test_a_held_store_names_who_holds_it(tmp_path):
    first = Store(tmp_path / "store")
    try:
        with pytest.raises(StoreLocked, match="is held by") as caught:
            Store(tmp_path / "store")
        message = str(caught.value)
        if os.path.isdir("/proc"):
            assert f"process {os.getpid()}" in message and "this one" in message
        assert "--target" in message and str(tmp_path) in message
    finally:
        first.close()
    Store(tmp_path / "store").close()  # released: opens again
