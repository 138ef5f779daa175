"""Two tenants racing on one id (issue #23, "a race between tenants"): the ownership check runs on
the store's read of the previous versions, inside its write lock, so no write can come between a
tenant's check and its write. A hook holds one tenant's call between its start and its write (where
the check used to be done, outside the lock) while the other tenant writes, so the interleaving is
forced, not hoped for."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lamina.retrieval.collection import Database


def hold_first_write(coll, thread_name: str):
    """Make `thread_name`'s first `_graph_write` (called before the write lock) wait; returns
    (reached, release) events."""
    reached, release = threading.Event(), threading.Event()
    original = coll._graph_write

    def hooked(kept):
        if threading.current_thread().name == thread_name and not reached.is_set():
            reached.set()
            assert release.wait(10)
        return original(kept)

    coll._graph_write = hooked
    return reached, release


def run_held(coll, thread_name, call):
    reached, release = hold_first_write(coll, thread_name)
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", call()), name=thread_name)
    thread.start()
    assert reached.wait(10), "the held call never reached its write"
    return thread, release, out


@pytest.fixture
def coll(tmp_path):
    db = Database(tmp_path)
    yield db.create_collection("c", 4, encoder=None)
    db.close()


def test_a_tenant_cannot_overwrite_an_id_another_tenant_took_meanwhile(coll):
    a, b = np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32)
    thread, release, out = run_held(coll, "acme-writer",
                                    lambda: coll.upsert([{"id": "x", "vector": a}], tenant="acme"))
    # acme's call has started (x was free then); globex takes x before acme writes
    assert coll.upsert([{"id": "x", "vector": b}], tenant="globex")[0].ok
    release.set()
    thread.join(10)
    [row] = out["result"]
    assert not row.ok and "not available to tenant 'acme'" in row.error
    doc = coll.get(["x"], with_vectors=True)[0]
    assert doc.tenant == "globex" and np.allclose(doc.vector, b)
    assert coll.count() == 1 and coll.search(b, 1)[0].id == "x"


def test_a_refused_row_leaves_the_rest_of_the_batch_written(coll):
    v = np.ones(4, np.float32)
    thread, release, out = run_held(coll, "acme-writer", lambda: coll.upsert(
        [{"id": "x", "vector": v}, {"id": "y", "vector": v}], tenant="acme"))
    coll.upsert([{"id": "x", "vector": v}], tenant="globex")
    release.set()
    thread.join(10)
    assert [r.ok for r in out["result"]] == [False, True]
    assert [d.tenant for d in coll.get(["x", "y"])] == ["globex", "acme"]
    assert coll.tenants() == {"acme": 1, "globex": 1}


def test_a_tenant_cannot_delete_an_id_that_changed_hands_meanwhile(coll):
    v = np.ones(4, np.float32)
    coll.upsert([{"id": "x", "vector": v}], tenant="acme")
    thread, release, out = run_held(coll, "acme-deleter", lambda: coll.delete(["x"], tenant="acme"))
    # while acme's delete is on its way (x was acme's when it started), x is deleted and taken by globex
    assert coll.delete(["x"]) == ["x"]
    assert coll.upsert([{"id": "x", "vector": v}], tenant="globex")[0].ok
    release.set()
    thread.join(10)
    assert out["result"] == []
    assert coll.get(["x"])[0].tenant == "globex" and coll.count(tenant="globex") == 1
