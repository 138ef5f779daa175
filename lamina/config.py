"""Where Lamina keeps its data and listens, and how many threads torch runs, resolved from flags,
environment and defaults."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lamina.retrieval.encoders.threads import (
    DEFAULT_TORCH_THREADS_CAP,
    TORCH_THREADS_ENV,
    apply_torch_threads,
    default_torch_threads,
    resolve_torch_threads,
)

DEFAULT_DATA_DIR = "./lamina-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 50051


def data_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """--data-dir, else $LAMINA_DATA_DIR, else ./lamina-data."""
    return Path(flag or os.environ.get("LAMINA_DATA_DIR") or DEFAULT_DATA_DIR)


def default_target() -> str:
    return os.environ.get("LAMINA_TARGET", f"{DEFAULT_HOST}:{DEFAULT_PORT}")


# torch's intra-op threads: --torch-threads, else $LAMINA_TORCH_THREADS, else
# min(cores in the process's CPU affinity, DEFAULT_TORCH_THREADS_CAP = 4)
__all__ = ["DEFAULT_TORCH_THREADS_CAP", "TORCH_THREADS_ENV", "default_torch_threads", "torch_threads",
           "use_torch_threads", "data_dir", "default_target"]


def torch_threads(flag: int | str | None = None) -> int:
    """--torch-threads, else $LAMINA_TORCH_THREADS, else min(cores available, 4); InvalidArgument if not >= 1."""
    return resolve_torch_threads(flag)


def use_torch_threads(flag: int | str | None = None) -> int:
    """Resolve the count and make it the process's, for every model loaded afterwards (the CLI and
    `lamina serve` call this once at start). The value goes into $LAMINA_TORCH_THREADS too, so that
    worker processes started from this one inherit it; torch itself is imported only when a model
    loads (`ensure_torch_threads`), so commands without a model do not pay for the import."""
    n = resolve_torch_threads(flag)
    os.environ[TORCH_THREADS_ENV] = str(n)
    if "torch" in sys.modules:  # already imported: apply now
        apply_torch_threads(n)
    return n
