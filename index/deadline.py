"""A request's deadline and cancellation, checked by long work so that abandoned requests stop.

A `Deadline` is an absolute expiry on the monotonic clock plus a cancellation flag. The service
makes one per call from the gRPC deadline (`context.time_remaining()`) and cancels it when the
client goes away; the Python API takes one as `deadline=` (default: none). Work checks it
between stages and between batches of its long loops:

    deadline.check("dense stage")      # raises DeadlineExceeded once expired or cancelled

Code deep in a kernel's loop (a SPANN query batch, a rerank) that is not handed the deadline
reads the one bound to the current request with `current()`; `bind(deadline)` binds it for a
block (a `contextvars` variable, so each thread and each request sees its own). `NO_DEADLINE`
never expires, and costs one attribute read a check.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lamina.index.errors import DeadlineExceeded


class Deadline:
    """Expires `seconds` from now (None: never), or when `cancel()` is called, whichever is first."""

    __slots__ = ("_expires", "_cancelled", "reason")

    def __init__(self, seconds: float | None = None) -> None:
        self._expires = None if seconds is None else time.monotonic() + max(0.0, float(seconds))
        self._cancelled = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "the client cancelled the request") -> None:
        """Mark the request abandoned: the next `check()` raises."""
        self.reason = reason
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def remaining(self) -> float | None:
        """Seconds left (0 once expired or cancelled); None when there is no deadline."""
        if self._cancelled.is_set():
            return 0.0
        if self._expires is None:
            return None
        return max(0.0, self._expires - time.monotonic())

    def expired(self) -> bool:
        if self._cancelled.is_set():
            return True
        return self._expires is not None and time.monotonic() >= self._expires

    def check(self, where: str = "") -> None:
        """Raise DeadlineExceeded, naming `where` the work stopped, once expired or cancelled."""
        if self._expires is None and not self._cancelled.is_set():
            return
        if self.expired():
            why = self.reason if self._cancelled.is_set() else "the request's deadline passed"
            raise DeadlineExceeded(f"{why}; stopped before {where}" if where else why)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining()!r}, cancelled={self.cancelled})"


NO_DEADLINE = Deadline()

_CURRENT: contextvars.ContextVar[Deadline] = contextvars.ContextVar("lamina_deadline", default=NO_DEADLINE)


def current() -> Deadline:
    """The deadline bound to the running request (NO_DEADLINE when none is)."""
    return _CURRENT.get()


def check(where: str = "") -> None:
    """`current().check(where)`: for loops that are not handed a deadline."""
    _CURRENT.get().check(where)


@contextmanager
def bind(deadline: Deadline | None) -> Iterator[Deadline]:
    """Make `deadline` the current one for the block (None: leave the current one)."""
    if deadline is None:
        yield _CURRENT.get()
        return
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)
