"""How the servicers run a call's work: its deadline, the counters of work done and abandoned, and the
bounded pool that encodes writes.

Every call gets a `Deadline` (`lamina.index.deadline`) from its gRPC deadline, cancelled when the
client goes away (grpc.aio cancels the handler's task). The work checks it before it starts (a call
abandoned while queued never runs) and between stages and batches (`Collection.query`), so an
abandoned search frees its worker at the next check instead of running to the end.

Upserts that encode text run on a `WritePool` of their own: a few threads and a bounded queue, so
that big writes never occupy the RPC threads searches need; past the queue, RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lamina.index import deadline as request_deadline
from lamina.index.deadline import Deadline
from lamina.index.errors import DeadlineExceeded, ResourceExhausted

DEFAULT_WRITE_WORKERS = 2
DEFAULT_WRITE_QUEUE = 16
DEFAULT_DRAIN_S = 5.0  # at SIGTERM: NOT_SERVING this long, still serving, before the port closes


@dataclass
class WorkCounters:
    """Calls received, and of them those whose work ran to the end, stopped at a deadline check, or was
    abandoned before a worker took it (`skipped`; a call whose task grpc cancelled while it queued is
    dropped from the queue and counted in none of these). Thread-safe."""

    received: int = 0
    done: int = 0
    stopped: int = 0  # stopped by a deadline check part-way
    skipped: int = 0  # abandoned before a worker picked them up
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def to_dict(self) -> dict[str, int]:
        with self._lock:
            return {"received": self.received, "done": self.done, "stopped": self.stopped, "skipped": self.skipped}


def call_deadline(time_remaining: float | None) -> Deadline:
    """The deadline of a call with `time_remaining` seconds left (None: the client set none)."""
    return Deadline(time_remaining)


def run_checked(counters: WorkCounters, deadline: Deadline, work: Callable[..., Any], *args: Any) -> Any:
    """`work(*args)` on a worker thread, unless `deadline` passed while it queued, with the deadline
    bound for the code below (`lamina.index.deadline.current()`); counts what happened."""
    if deadline.expired():
        counters.add("skipped")
        deadline.check("it started")
    try:
        with request_deadline.bind(deadline):
            result = work(*args)
    except DeadlineExceeded:
        counters.add("stopped")
        raise
    counters.add("done")
    return result


class WritePool:
    """`workers` threads that encode and write upserts, with at most `queue` more waiting."""

    def __init__(self, workers: int = DEFAULT_WRITE_WORKERS, queue: int = DEFAULT_WRITE_QUEUE) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"a write pool needs workers >= 1 and queue >= 0, got {workers} and {queue}")
        self.workers, self.queue = workers, queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lamina-write")
        self._slots = threading.BoundedSemaphore(workers + queue)
        self.rejected = 0

    def submit(self, work: Callable[..., Any], *args: Any) -> Future:
        """Run `work(*args)` on the pool; ResourceExhausted at once when it is full."""
        if not self._slots.acquire(blocking=False):
            self.rejected += 1
            raise ResourceExhausted(
                f"the write encoding pool is full: {self.workers} writes encoding and {self.queue} queued "
                "(lamina serve --write-workers / --write-queue); retry later")
        try:
            future = self._executor.submit(work, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
