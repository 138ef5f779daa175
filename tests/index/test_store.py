import json

import numpy as np
import pytest

from lamina.index.errors import AlreadyExists, InvalidArgument, NotFound
from lamina.index.store import Store, StoredDoc
from lamina.index.types import CollectionConfig


def vec(*values: float) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    s.create_collection(CollectionConfig("docs", 2, encoder=None))
    yield s
    s.close()


def test_collections_round_trip_and_reopen(tmp_path):
    s = Store(tmp_path)
    cfg = CollectionConfig("a", 4, metric="l2", encoder=None)
    s.create_collection(cfg)
    with pytest.raises(AlreadyExists):
        s.create_collection(cfg)
    s.close()
    s = Store(tmp_path)
    assert s.get_collection("a") == cfg
    assert [c.name for c in s.list_collections()] == ["a"]
    s.drop_collection("a")
    with pytest.raises(NotFound):
        s.get_collection("a")
    with pytest.raises(InvalidArgument):
        s.get_collection("bad name!")
    s.close()


def test_write_assigns_fresh_iids_and_logs_changes(store):
    r1 = store.write("docs", [StoredDoc("x", "hello", {"n": 1}, "t1", {"dense": vec(1, 0)}),
                              StoredDoc("y", "world", {}, None, {"dense": vec(0, 1)})])
    assert r1.added.tolist() == [0, 1] and r1.removed.tolist() == []
    r2 = store.write("docs", [StoredDoc("x", "again", {}, None, {"dense": vec(2, 0)})])
    assert r2.added.tolist() == [2] and r2.removed.tolist() == [0]
    assert r2.seq == r1.seq + 1
    (x,) = store.get_documents("docs", ["x"], vectors=["dense"])
    assert (x.text, x.iid, np.frombuffer(x.vectors["dense"], np.float32).tolist()) == ("again", 2, [2.0, 0.0])
    assert store.doc_ids("docs", np.array([0, 1, 2])) == [None, "y", "x"]
    assert store.count("docs") == 2

    r3 = store.write("docs", deletes=["y", "missing"])
    assert r3.removed.tolist() == [1] and r3.deleted_ids == ("y",)
    assert store.count("docs") == 1
    assert store.get_documents("docs", ["y"]) == [None]

    changes = store.changes_since("docs", r1.seq)
    assert sorted(changes.added.tolist()) == [2] and sorted(changes.removed.tolist()) == [0, 1]
    everything = store.changes_since("docs", 0)
    assert everything.added.tolist() == [2]
    iids = np.concatenate([i for i, _ in store.iter_vectors("docs", "dense")])
    assert iids.tolist() == [2]


def test_repeated_id_in_one_batch_keeps_the_last_version(store):
    r = store.write("docs", [StoredDoc("x", "one", vectors={"dense": vec(1, 0)}),
                             StoredDoc("x", "two", vectors={"dense": vec(0, 1)})])
    assert r.added.tolist() == [1] and r.removed.tolist() == []
    assert store.count("docs") == 1
    assert [i.tolist() for i, _ in store.iter_vectors("docs", "dense")] == [[1]]
    assert store.get_documents("docs", ["x"])[0].text == "two"


def test_trim_log_and_reopen_keep_state(tmp_path):
    s = Store(tmp_path)
    s.create_collection(CollectionConfig("c", 2, encoder=None))
    for i in range(5):
        s.write("c", [StoredDoc(str(i), vectors={"dense": vec(i, i)})], sync=True)
    s.trim_log("c", 3)
    assert s.changes_since("c", 0).added.tolist() == [3, 4]
    seq = s.last_seq
    s.close()
    s = Store(tmp_path)
    assert s.last_seq == seq and s.count("c") == 5
    s.write("c", [StoredDoc("5", vectors={"dense": vec(5, 5)})])
    assert s.last_seq == seq + 1
    s.close()


def test_drop_removes_every_key_of_the_collection_only(tmp_path):
    s = Store(tmp_path)
    for name in ("a", "b"):
        s.create_collection(CollectionConfig(name, 2, encoder=None))
        s.write(name, [StoredDoc("x", "t", vectors={"dense": vec(1, 1)})])
    s.drop_collection("a")
    s.create_collection(CollectionConfig("a", 2, encoder=None))
    assert s.count("a") == 0 and s.get_documents("a", ["x"]) == [None]
    assert s.get_documents("b", ["x"])[0].text == "t"
    assert s.changes_since("a", 0).added.tolist() == []
    s.close()


def test_write_to_unknown_collection_is_not_found(store):
    with pytest.raises(NotFound):
        store.write("nope", [StoredDoc("x")])


def test_metadata_is_stored_as_json(store):
    store.write("docs", [StoredDoc("m", None, {"a": [1, 2.5, "z"], "b": {"c": True}})])
    doc = store.get_documents("docs", ["m"])[0]
    assert json.dumps(doc.metadata, sort_keys=True) == '{"a": [1, 2.5, "z"], "b": {"c": true}}'


def test_open_errors_are_named():
    from pathlib import Path

    from lamina.index.errors import FailedPrecondition, StoreCorrupted, StoreLocked
    from lamina.index.store import open_error

    path = Path("/data/store")
    locked = "IO error: While lock file: /data/store/LOCK: Resource temporarily unavailable"
    assert isinstance(open_error(path, Exception(locked)), StoreLocked)
    block = "Corruption: block checksum mismatch: stored = 1, computed = 2 in /data/store/000009.sst"
    assert isinstance(open_error(path, Exception(block)), StoreCorrupted)  # "block" is no lock
    assert type(open_error(path, Exception("IO error: Permission denied"))) is FailedPrecondition
