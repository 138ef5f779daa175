"""Index maintenance runs in the background, not inside the write lock (issue 23).

Each test blocks a trainer on an Event (no timing: the trainer cannot finish until the test lets
it), shows that a search and a write complete meanwhile, then lets it finish and checks the
swapped-in structure against a from-scratch build of the same store and every write made
during the build against brute force.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import lamina.index.dense as dense_module
import lamina.retrieval.collection as collection_module
from lamina.index.multivector import TokenCodec
from lamina.index.scan import ScanCodes
from lamina.retrieval.collection import Database
from lamina.retrieval.indexes import TenantTree, build_dense, build_tenants, build_tokens
from tests.retrieval.test_search_pipeline import HashingTokenEncoder

DIM = 8


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def points(data: np.ndarray, start: int = 0, tenant: str | None = None) -> list[dict]:
    return [{"id": f"p{start + i}", "vector": v, "tenant": tenant} for i, v in enumerate(data)]


class Gate:
    """Wraps a trainer: a background thread that calls it signals `entered` and waits until
    `release` (the test's own thread, e.g. opening a collection, passes straight through)."""

    def __init__(self, monkeypatch, owner, name: str) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        original = getattr(owner, name)

        def gated(*args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                return original(*args, **kwargs)
            self.entered.set()
            assert self.release.wait(60), "the test never released the trainer"
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, gated)

    def __enter__(self) -> Gate:
        assert self.entered.wait(60), "the background trainer never started"
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()


def nearest(coll, queries: np.ndarray, k: int = 5, **params) -> list[list[str]]:
    return [[h.id for h in coll.search(q, k, with_payload=False, **params)] for q in queries]


def brute(live: dict[str, np.ndarray], queries: np.ndarray, k: int = 5) -> list[list[str]]:
    ids = list(live)
    base = np.stack([live[i] for i in ids])
    return [[ids[j] for j in np.argsort(((base - q) ** 2).sum(1), kind="stable")[:k]] for q in queries]


def call_in_thread(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("kind, owner, name", [
    ("flat", ScanCodes, "train"),  # the scan codes of a flat collection
    ("ivf", dense_module, "train_kmeans"),  # the IVF's coarse centroids
], ids=["scan-codes", "ivf"])
def test_dense_training_runs_while_searches_and_writes_go_on(tmp_path, monkeypatch, kind, owner, name):
    data, more = vectors(1_200), vectors(300, seed=1)
    queries = vectors(8, seed=2)
    gate = Gate(monkeypatch, owner, name)
    with Database(tmp_path) as db:
        coll = db.create_collection("c", DIM, metric="l2", encoder=None, sparse=False,
                                    index={"kind": kind, "nlist": 8, "nprobe": 8})
        coll.index.train_size = 1_000
        old = coll.index
        coll.upsert(points(data))  # crosses train_size: the write returns, the training waits
        with gate:
            assert coll.maintenance_pending == ["dense"]
            live = {f"p{i}": v for i, v in enumerate(data)}
            assert nearest(coll, queries) == brute(live, queries)  # served by the old, exact index
            coll.upsert(points(more, start=1_200))  # writes during the build: to the old and the log
            coll.delete([f"p{i}" for i in range(0, 1_200, 7)])
            coll.upsert([{"id": "p1", "vector": more[0] + 1}])  # replaced during the build
            assert coll.index is old
        assert coll.wait_for_maintenance(60)
        assert coll.maintenance_pending == []
        assert coll.index is not old
        live.update({f"p{1_200 + i}": v for i, v in enumerate(more)})
        for i in range(0, 1_200, 7):
            del live[f"p{i}"]
        live["p1"] = more[0] + 1
        assert coll.count() == len(live) == len(coll.index)
        assert nearest(coll, queries) == brute(live, queries)  # nprobe = nlist: exact
        if kind == "ivf":
            assert coll.index.trained_ivf
        assert coll.index.codes is not None
        # the same contents as a from-scratch build of the store as it is now
        scratch = build_dense(db.store, coll.config, train_size=1_000)
        assert len(scratch) == len(coll.index)
        held = np.sort(coll.index.search(queries, len(live))[1], axis=1)
        assert np.array_equal(held, np.sort(scratch.search(queries, len(live))[1], axis=1))
        coll.upsert(points(vectors(5, seed=3), start=5_000))  # later writes go to the new index
        assert coll.count() == len(live) + 5
    with Database(tmp_path) as db:  # the trained index was snapshotted at close
        coll = db.collection("c")
        assert coll.index.codes is not None and coll.maintenance_pending == []


def test_tenant_tree_retrains_in_the_background(tmp_path, monkeypatch):
    n = 10_500  # the tree re-clusters from 10,000 live vectors
    data = vectors(n)
    queries = vectors(4, seed=5)
    gate = Gate(monkeypatch, TenantTree, "retrain")
    with Database(tmp_path) as db:
        coll = db.create_collection("c", DIM, metric="l2", encoder=None, sparse=False, tenant_tree=True)
        coll.upsert(points(data[: n // 2], tenant="a"))
        coll.upsert(points(data[n // 2:], start=n // 2, tenant="b"))
        old = coll.indexes.tenants
        with gate:
            assert coll.maintenance_pending == ["tenants"]
            a = {f"p{i}": data[i] for i in range(n // 2)}
            assert nearest(coll, queries, tenant="a", params={"nprobe": 10_000}) == brute(a, queries)
            coll.upsert(points(vectors(20, seed=6), start=n, tenant="a"))
            coll.delete([f"p{i}" for i in range(0, 100)])
        assert coll.wait_for_maintenance(60)
        tree = coll.indexes.tenants
        assert tree is not old and tree.depth > 0 and not tree.retrain_due
        a.update({f"p{n + i}": v for i, v in enumerate(vectors(20, seed=6))})
        for i in range(100):
            del a[f"p{i}"]
        assert tree.tenants() == {"a": len(a), "b": n - n // 2}
        assert nearest(coll, queries, tenant="a", params={"nprobe": 10_000}) == brute(a, queries)
        owner = {d.iid: d.tenant for d in db.store.iter_documents("c")}
        scratch = build_tenants(db.store, coll.config, owner)
        assert scratch.tenants() == tree.tenants() and len(scratch) == len(tree)
        for q in queries:  # the exact search of each tree equals brute force over the tenant
            s1, i1 = tree.exact_search(q[None], 5, "a")
            s2, i2 = scratch.exact_search(q[None], 5, "a")
            assert np.array_equal(i1, i2)


def test_token_codec_trains_in_the_background(tmp_path, monkeypatch):
    tokens = HashingTokenEncoder()
    db = Database(tmp_path, encoder_loader=lambda name: _dense(), token_loader=lambda name: tokens)
    gate = Gate(monkeypatch, TokenCodec, "train")
    words = "wing lift drag heat transfer boundary layer flow shock pressure".split()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, 12)) for _ in range(60)]
    with db:
        coll = db.create_collection("c", encoder="hashing", multivector={"codec": "pq4x4"})
        coll.indexes.tokens.train_size = 400
        coll.upsert([{"id": f"d{i}", "text": t} for i, t in enumerate(texts[:40])])
        old = coll.indexes.tokens
        with gate:
            assert coll.maintenance_pending == ["tokens"]
            assert coll.search("wing lift", 3, rerank=10)  # reranked from the old float16 rows
            coll.upsert([{"id": f"d{i}", "text": t} for i, t in enumerate(texts[40:], start=40)])
            coll.delete(["d0", "d1"])
            assert not coll.indexes.tokens.encoded
        assert coll.wait_for_maintenance(60)
        new = coll.indexes.tokens
        assert new is not old and new.encoded and len(new) == 58
        scratch = build_tokens(db.store, coll.config, new.dim, train_size=400)
        assert np.array_equal(scratch.ids(), new.ids())
        got = coll.search("wing lift drag", 5, rerank=20)
        assert len(got) == 5 and all(h.id not in ("d0", "d1") for h in got)


def _dense():
    from tests.conftest import HashingEncoder

    return HashingEncoder()


def test_a_snapshot_writes_its_files_while_searches_go_on(tmp_path, monkeypatch):
    data = vectors(300)
    queries = vectors(4, seed=7)
    gate = Gate(monkeypatch, collection_module, "write_snapshot")
    with Database(tmp_path) as db:
        coll = db.create_collection("c", DIM, metric="l2", encoder=None, sparse=False)
        coll.upsert(points(data))
        thread = call_in_thread(coll.snapshot)
        with gate:  # the snapshot is writing its files now
            live = {f"p{i}": v for i, v in enumerate(data)}
            assert nearest(coll, queries) == brute(live, queries)
        thread.join(60)
        assert not thread.is_alive()
        assert len(db.store.changes_since("c", 0).added) == 0  # trimmed: the snapshot covers it all


def test_rebuild_builds_without_the_write_lock(tmp_path, monkeypatch):
    data = vectors(10_100)  # a rebuild trains at the default train_size
    queries = vectors(4, seed=8)
    with Database(tmp_path) as db:
        coll = db.create_collection("c", DIM, metric="l2", encoder=None, sparse=False,
                                    index={"kind": "ivf", "nlist": 4, "nprobe": 4})
        coll.upsert(points(data[:5_000]))
        coll.upsert(points(data[5_000:], start=5_000))
        assert coll.wait_for_maintenance(60) and coll.index.trained_ivf
        gate = Gate(monkeypatch, dense_module, "train_kmeans")
        thread = call_in_thread(coll.rebuild)
        with gate:
            live = {f"p{i}": v for i, v in enumerate(data)}
            assert nearest(coll, queries) == brute(live, queries)
            coll.upsert(points(vectors(50, seed=9), start=10_100))
            coll.delete(["p3"])
        thread.join(60)
        assert not thread.is_alive()
        live.update({f"p{10_100 + i}": v for i, v in enumerate(vectors(50, seed=9))})
        del live["p3"]
        assert coll.count() == len(live) == len(coll.index)
        assert nearest(coll, queries) == brute(live, queries)


def test_a_crash_during_a_background_build_reopens_to_the_same_answers(tmp_path, monkeypatch):
    data = vectors(10_100)  # past the default train_size, which a reopened index has
    queries = vectors(6, seed=10)
    gate = Gate(monkeypatch, ScanCodes, "train")
    db = Database(tmp_path)
    coll = db.create_collection("c", DIM, metric="l2", encoder=None, sparse=False)
    coll.upsert(points(data[:500]), wait=True)
    coll.snapshot()
    coll.upsert(points(data[500:5_000], start=500), wait=True)
    coll.upsert(points(data[5_000:], start=5_000), wait=True)
    with gate:
        coll.delete(["p0"], wait=True)
        live = {f"p{i}": v for i, v in enumerate(data) if i}
        before = nearest(coll, queries)
        assert before == brute(live, queries)
        db.store.close()  # a SIGKILL: the store's acknowledged writes, nothing closed
    coll.wait_for_maintenance(60)  # the build fails on the closed store and is dropped
    monkeypatch.undo()
    for _ in range(2):
        db = Database(tmp_path)
        coll = db.collection("c")
        assert coll.count() == len(live)
        assert nearest(coll, queries) == before
        assert coll.wait_for_maintenance(60) and coll.index.codes is not None  # due again, trained
        assert nearest(coll, queries) == before
        db.store.close()


def test_the_spann_build_runs_in_the_background_into_a_directory_of_its_own(tmp_path, monkeypatch):
    from lamina.index.spann import SpannIndex, files

    data, more = vectors(350), vectors(40, seed=11)
    queries = vectors(6, seed=12)
    exact = {"max_postings": 1000}  # every list read: the answer of any sound build
    gate = Gate(monkeypatch, SpannIndex, "build")
    db = Database(tmp_path)
    coll = db.create_collection("c", DIM, metric="l2", encoder=None, sparse=False,
                                index={"kind": "spann", "spann": {"build_size": 300, "head_ratio": 0.1}})
    coll.upsert(points(data), wait=True)  # crosses build_size
    old = coll.index
    with gate:
        assert coll.maintenance_pending == ["dense"] and not coll.index.built
        live = {f"p{i}": v for i, v in enumerate(data)}
        assert nearest(coll, queries) == brute(live, queries)  # the old index, exact from memory
        coll.upsert(points(more, start=350), wait=True)
        coll.delete(["p5", "p360"], wait=True)
    assert coll.wait_for_maintenance(60)
    live.update({f"p{350 + i}": v for i, v in enumerate(more)})
    del live["p5"], live["p360"]
    new = coll.index
    assert new is not old and new.built and new.path != old.path and old.path.is_dir()
    assert files.read_manifest(new.path)["built"]
    assert coll.count() == len(live) == len(new)
    assert nearest(coll, queries, params=exact) == brute(live, queries)
    before = nearest(coll, queries, params=exact)
    db.store.close()  # a crash before any snapshot names the new files: the old ones reopen
    monkeypatch.undo()
    db = Database(tmp_path)
    coll = db.collection("c")
    assert coll.count() == len(live)
    assert nearest(coll, queries, params=exact) == before
    assert coll.wait_for_maintenance(60) and coll.index.built  # due again after the replay
    coll.snapshot()  # names the new files: the old directory goes
    assert [p.name for p in (tmp_path / "indexes" / "c").glob("spann*")] == [coll.index.path.name]
    db.close()
    with Database(tmp_path) as db:
        coll = db.collection("c")
        assert coll.index.built and nearest(coll, queries, params=exact) == before
