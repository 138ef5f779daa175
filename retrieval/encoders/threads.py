"""Torch's intra-op threads, from the process's core budget, set once before a model runs.

Torch starts with one intra-op thread per physical core of the machine, whatever share of it the
process has: on a machine shared with other work (or a container pinned to a few cores), a dense
query then waits on oversubscribed threads (measured in issue #24: 2.2 s per MiniLM query with
torch's default threads against 22-43 ms with one). Lamina sets the count once per process,
before its first model loads:

- `$LAMINA_TORCH_THREADS` (set by `lamina --torch-threads N`), else
- the default `min(cores this process may run on (os.sched_getaffinity), DEFAULT_TORCH_THREADS_CAP)`.

`apply_torch_threads(n)` sets it explicitly (the CLI and the server call it through
`lamina.config`); every encoder loader calls `ensure_torch_threads()`, which applies the
resolved value the first time only, so an explicit choice is never overridden.
"""

from __future__ import annotations

import os
import threading

from lamina.index.errors import InvalidArgument

TORCH_THREADS_ENV = "LAMINA_TORCH_THREADS"
DEFAULT_TORCH_THREADS_CAP = 4  # past 4 threads a batch-of-one MiniLM query gains little and contends more

_applied: int | None = None
_lock = threading.Lock()


def cores_available() -> int:
    """Cores this process may run on (its CPU affinity), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def default_torch_threads() -> int:
    return max(1, min(cores_available(), DEFAULT_TORCH_THREADS_CAP))


def resolve_torch_threads(value: int | str | None = None) -> int:
    """`value`, else $LAMINA_TORCH_THREADS, else the default; InvalidArgument unless an integer >= 1."""
    source = "torch threads"
    if value is None or value == "":
        value = os.environ.get(TORCH_THREADS_ENV) or None
        source = f"${TORCH_THREADS_ENV}"
    if value is None:
        return default_torch_threads()
    try:
        if isinstance(value, bool):
            raise ValueError
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidArgument(f"{source} must be an integer >= 1, got {value!r}") from None
    if n < 1:
        raise InvalidArgument(f"{source} must be an integer >= 1, got {value!r}")
    return n


def apply_torch_threads(value: int | str | None = None) -> int:
    """Set torch's intra-op threads to the resolved count (importing torch); returns it."""
    global _applied
    n = resolve_torch_threads(value)
    import torch

    with _lock:
        torch.set_num_threads(n)
        _applied = n
    return n


def ensure_torch_threads() -> int:
    """Apply the resolved count once per process (what every model loader calls first)."""
    if _applied is not None:
        return _applied
    return apply_torch_threads()


def applied_torch_threads() -> int | None:
    """The count Lamina set, or None before any model loaded."""
    return _applied
