"""Where Lamina keeps its data and listens, resolved from flags, environment and defaults."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = "./lamina-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 50051


def data_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """--data-dir, else $LAMINA_DATA_DIR, else ./lamina-data."""
    return Path(flag or os.environ.get("LAMINA_DATA_DIR") or DEFAULT_DATA_DIR)


def default_target() -> str:
    return os.environ.get("LAMINA_TARGET", f"{DEFAULT_HOST}:{DEFAULT_PORT}")
