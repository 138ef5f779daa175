"""`Store.write(owner=...)`: the tenant check on the read of the previous versions, inside the write lock."""

import pytest

from lamina.index.errors import PermissionDenied
from lamina.index.store import IdsTaken, Store, StoredDoc
from lamina.index.types import CollectionConfig


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    s.create_collection(CollectionConfig("c", 4))
    s.write("c", [StoredDoc("a1", tenant="acme"), StoredDoc("g1", tenant="globex"), StoredDoc("n1")])
    yield s
    s.close()


def test_upserts_of_foreign_ids_raise_and_write_nothing(store):
    seq = store.last_seq
    with pytest.raises(IdsTaken) as info:
        store.write("c", [StoredDoc("new", tenant="acme"), StoredDoc("g1", tenant="acme"),
                          StoredDoc("n1", tenant="acme")], ["a1"], owner="acme")
    assert isinstance(info.value, PermissionDenied) and info.value.ids == ("g1", "n1")
    assert store.last_seq == seq and store.count("c") == 3
    assert [d and d.tenant for d in store.get_documents("c", ["new", "g1", "n1", "a1"])] == \
        [None, "globex", None, "acme"]


def test_deletes_of_foreign_ids_are_skipped(store):
    written = store.write("c", [StoredDoc("a2", tenant="acme")], ["a1", "g1", "n1", "nope"], owner="acme")
    assert written.deleted_ids == ("a1",) and len(written.removed) == 1
    assert [d is not None for d in store.get_documents("c", ["a1", "g1", "n1", "a2"])] == [False, True, True, True]


def test_a_bound_write_that_changes_nothing_writes_nothing(store):
    seq = store.last_seq
    written = store.write("c", deletes=["g1", "nope"], owner="acme")
    assert written.seq == seq == store.last_seq and not len(written.removed) and written.deleted_ids == ()
    assert store.changes_since("c", seq).last_seq == seq


def test_an_unbound_write_may_replace_any_id(store):
    store.write("c", [StoredDoc("g1", tenant="acme")])
    assert store.get_documents("c", ["g1"])[0].tenant == "acme"
    assert store.count("c") == 3
