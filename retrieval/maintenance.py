"""Index maintenance off the write lock: build in the background, swap in under a short lock.

Training an IVF or the scan codes, training a token codec, re-clustering the tenant tree and
rebuilding every index used to run inside the write that crossed a threshold, holding the
collection's write lock for seconds to minutes while every search waited. Now:

1. under the write lock (the write that makes a job due): `Rebuild` starts a *delta log* of
   every write the collection applies from then on;
2. on the collection's `MaintenanceWorker` (one thread): the new structure is built from a scan
   of the store, which holds at least everything before the log started. Searches and writes
   go on against the old structure meanwhile;
3. under the write lock again: the delta log is applied to the new structure, which is then
   swapped in. Replaying a write the scan saw already is a no-op (every part skips a version it
   holds with the same content, and iids are never reused), so the swapped-in structure equals
   a from-scratch build of the store as it is at the swap.

Nothing here touches files: a swapped-in structure is persisted by the next snapshot, and a
crash before it reopens from the previous snapshot and replays the store's log as before.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from lamina.index.store import StoredDoc

log = logging.getLogger(__name__)
# OpenMP threads of a background build (faiss k-means, PQ training): half the cores, so that the
# other half keeps serving searches (OpenMP keeps the setting per calling thread). The worker also
# runs at a lower scheduling priority (Linux nice is per thread; the OpenMP threads it starts inherit it).
BUILD_THREADS = max(1, (os.cpu_count() or 2) // 2)
BUILD_NICE = 10


def _limit_build_threads() -> None:
    import faiss

    faiss.omp_set_num_threads(BUILD_THREADS)
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: the build runs at normal priority
        pass


@dataclass
class Rebuild:
    """One part being rebuilt in the background, and the writes applied since its build began.

    part: "dense", "tokens", "tenants" or "all". log: ("add", docs) and ("remove", iids) in the
    order the collection applied them (an id added then removed during the build must end removed).
    """

    part: str
    log: list[tuple[str, Any]] = field(default_factory=list)

    def added(self, docs: list[StoredDoc]) -> None:
        self.log.append(("add", list(docs)))

    def removed(self, iids: np.ndarray) -> None:
        if len(iids):
            self.log.append(("remove", np.array(iids, dtype=np.int64)))

    def replay(self, add: Callable[[list[StoredDoc]], None], remove: Callable[[np.ndarray], None]) -> None:
        """Apply the log, in order, through the new structure's `add` and `remove`."""
        for kind, item in self.log:
            if kind == "add":
                add(item)
            else:
                remove(item)
        self.log.clear()


class MaintenanceWorker:
    """A collection's background thread: runs its maintenance jobs one at a time, in order.

    One thread per collection keeps jobs of one collection from racing each other (two rebuilds
    of one part); its k-means and PQ training use faiss's own threads. A job that fails is
    logged and dropped: the old structure stays in service and the job is due again later.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []
        self._closed = False

    def submit(self, job: Callable[[], None], what: str) -> Future | None:
        with self._lock:
            if self._closed:
                return None
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lamina-maint-{self.name}",
                                                    initializer=_limit_build_threads)
            future = self._executor.submit(self._run, job, what)
            self._futures = [f for f in self._futures if not f.done()] + [future]
            return future

    def _run(self, job: Callable[[], None], what: str) -> None:
        try:
            job()
        except Exception:  # the old structure keeps serving; the job is due again at a later write
            log.exception("collection %s: background %s failed", self.name, what)

    @property
    def busy(self) -> bool:
        with self._lock:
            return any(not f.done() for f in self._futures)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every job, including jobs submitted meanwhile, has finished; False on timeout."""
        while True:
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
            if not pending:
                return True
            for future in pending:
                try:
                    future.result(timeout)
                except TimeoutError:
                    return False

    def close(self, *, wait: bool = True) -> None:
        """Let the running and queued jobs finish (`wait`; else drop the queued ones and let the
        running one end on its own), then stop the thread; later submits are ignored."""
        if wait:
            self.wait()
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=not wait)
