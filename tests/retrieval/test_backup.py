"""Backup and restore (issue #20, part 4): an online backup taken while a writer runs restores to a
directory that answers exactly as the original did at the backup's sequence number."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lamina.index.errors import AlreadyExists, InvalidArgument
from lamina.retrieval import collection as collection_module
from lamina.retrieval.backup import restore_backup
from lamina.retrieval.collection import Database

DIM = 8


def _writer(db: Database, history: list, stop: threading.Event) -> None:
    """Upserts and deletes with wait=True on two collections; records (seq, collection, op, ids, vectors)."""
    rng = np.random.default_rng(1)
    step = 0
    while not stop.is_set() and step < 400:
        name = ("flat", "hnsw")[step % 2]
        coll = db.collection(name)
        if step % 5 == 4:
            ids = [f"d{j}" for j in rng.choice(200, 3, replace=False)]
            coll.delete(ids, wait=True)
            history.append((db.store.last_seq, name, "delete", ids, None))
        else:
            ids = [f"d{j}" for j in rng.choice(200, 4, replace=False)]
            vecs = rng.standard_normal((4, DIM)).astype(np.float32)
            coll.upsert([{"id": i, "vector": v, "metadata": {"step": step}, "tenant": f"t{step % 3}"}
                         for i, v in zip(ids, vecs)], wait=True)
            history.append((db.store.last_seq, name, "upsert", ids, (vecs, step)))
        step += 1


def _state_at(history: list, name: str, seq: int) -> dict[str, tuple[np.ndarray, int, str]]:
    state: dict[str, tuple[np.ndarray, int, str]] = {}
    for s, coll, op, ids, payload in history:
        if s > seq or coll != name:
            continue
        for j, i in enumerate(ids):
            if op == "delete":
                state.pop(i, None)
            else:
                state[i] = (payload[0][j], payload[1], f"t{payload[1] % 3}")
    return state


@pytest.mark.slow
def test_online_backup_restores_the_state_at_its_sequence(tmp_path, monkeypatch):
    monkeypatch.setattr(collection_module, "SNAPSHOT_EVERY", 40)  # snapshots (and log trims) during the run
    src = tmp_path / "src"
    db = Database(src)
    for name, kind in (("flat", "flat"), ("hnsw", "hnsw")):
        db.create_collection(name, DIM, metric="l2", index=kind, encoder=None, sparse=False)
    history: list = []
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(db, history, stop))
    writer.start()
    while len(history) < 120:
        threading.Event().wait(0.01)
    manifest = db.backup(tmp_path / "backup")  # while the writer runs
    stop.set()
    writer.join()
    db.close()
    seq = manifest["seq"]
    assert 0 < seq < history[-1][0], "the writer went on after the backup"
    with pytest.raises(AlreadyExists):
        restore_backup(tmp_path / "backup", src)

    restore_backup(tmp_path / "backup", tmp_path / "restored")
    rng = np.random.default_rng(7)
    with Database(tmp_path / "restored") as restored:
        assert restored.store.last_seq == seq
        for name in ("flat", "hnsw"):
            expected = _state_at(history, name, seq)
            coll = restored.collection(name)
            assert coll.count() == len(expected)
            every = [f"d{j}" for j in range(200)]
            for doc_id, doc in zip(every, coll.get(every, with_vectors=True)):
                if doc_id not in expected:
                    assert doc is None, f"{name}/{doc_id} resurrected"
                    continue
                vec, step, tenant = expected[doc_id]
                np.testing.assert_array_equal(doc.vector, vec)
                assert doc.metadata == {"step": step} and doc.tenant == tenant
        expected = _state_at(history, "flat", seq)
        ids = sorted(expected)
        matrix = np.stack([expected[i][0] for i in ids])
        for q in rng.standard_normal((20, DIM)).astype(np.float32):
            hits = restored.collection("flat").search(q, k=5)
            truth = np.argsort(((matrix - q) ** 2).sum(1), kind="stable")[:5]
            assert [h.id for h in hits] == [ids[t] for t in truth]


def test_backup_refuses_a_used_destination_and_restore_a_non_backup(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "x").write_text("x")
    with Database(tmp_path / "src") as db:
        with pytest.raises(AlreadyExists):
            db.backup(tmp_path / "dest")
    with pytest.raises(InvalidArgument, match="not a Lamina backup"):
        restore_backup(tmp_path / "dest", tmp_path / "new")


def test_create_and_drop_proceed_while_a_backup_copies(tmp_path, monkeypatch):
    """The database's lock is held only to pin the collections and take the checkpoint: with the
    backup's copy of one collection held up, collections are created, dropped and opened; the
    backup then holds exactly what the store held at its checkpoint."""
    from lamina.retrieval import backup as backup_module

    rng = np.random.default_rng(3)
    db = Database(tmp_path / "src")
    vectors = {}
    for name in ("keep", "gone", "cold"):
        coll = db.create_collection(name, DIM, metric="l2", index="flat", encoder=None, sparse=False)
        vectors[name] = rng.standard_normal((5, DIM)).astype(np.float32)
        coll.upsert([{"id": f"{name}{j}", "vector": v} for j, v in enumerate(vectors[name])], wait=True)
    db.close()
    db = Database(tmp_path / "src")  # "cold" stays unopened until the backup is under way
    db.collection("keep"), db.collection("gone")
    copying, release = threading.Event(), threading.Event()
    real_copy = backup_module._copy_index_files

    def held_copy(db_, name, dest):
        if name == "keep" and not release.is_set():
            copying.set()
            assert release.wait(30), "the test never released the copy"
        real_copy(db_, name, dest)

    monkeypatch.setattr(backup_module, "_copy_index_files", held_copy)
    result = {}
    worker = threading.Thread(target=lambda: result.update(db.backup(tmp_path / "backup")))
    worker.start()
    assert copying.wait(30)
    done = threading.Event()

    def ddl():  # before this change each call waited for the whole backup
        new = db.create_collection("new", DIM, metric="l2", index="flat", encoder=None, sparse=False)
        new.upsert([{"id": "n0", "vector": vectors["keep"][0]}], wait=True)
        db.drop_collection("gone")
        db.collection("cold").upsert([{"id": "cold9", "vector": vectors["cold"][1]}], wait=True)
        done.set()

    threading.Thread(target=ddl, daemon=True).start()
    assert done.wait(30), "create/drop/open waited for the backup's copy"
    assert worker.is_alive()  # the copy is still held
    release.set()
    worker.join(30)
    assert result["collections"] == ["cold", "keep", "new"]
    db.close()
    restore_backup(tmp_path / "backup", tmp_path / "restored")
    with Database(tmp_path / "restored") as restored:
        assert sorted(c.name for c in restored.list_collections()) == ["cold", "keep", "new"]
        assert restored.collection("new").count() == 1 and restored.collection("cold").count() == 6
        hits = restored.collection("keep").search(vectors["keep"][2], k=1)
        assert hits[0].id == "keep2"
        assert restored.collection("cold").search(vectors["cold"][1], k=2)[0].id in {"cold1", "cold9"}
