"""Replay is idempotent for every index kind (issue 20): adding an id the index holds with the
same content is a no-op, with other content an InvalidArgument, and the answers do not change."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.index.dense import DenseIndex
from lamina.index.errors import InvalidArgument
from lamina.index.multivector import TokenStore
from lamina.index.payload import PayloadIndex
from lamina.index.spann import SpannConfig, SpannIndex
from lamina.index.sparse import SparseBatch, SparseIndex
from lamina.index.tenants import TenantIndex
from lamina.index.types import IndexConfig

DIM = 8


def data(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_dense_replay_skips_held_ids(kind):
    vectors, queries = data(400), data(5, seed=1)
    index = DenseIndex(DIM, "l2", IndexConfig(kind=kind, nlist=4, nprobe=4), train_size=300)
    ids = np.arange(400, dtype=np.int64)
    index.add(ids, vectors)
    index.delete(ids[:10])
    before = index.search(queries, 10)
    index.add(ids[100:], vectors[100:], skip_held=True)  # a replayed window the index holds
    assert len(index) == 390
    np.testing.assert_array_equal(index.search(queries, 10)[1], before[1])
    with pytest.raises(InvalidArgument, match="id 150 is already in the index with another vector"):
        index.add(ids[150:151], vectors[:1], skip_held=True)
    index.add(np.array([500]), vectors[:1], skip_held=True)  # new ids still go in
    assert len(index) == 391


@pytest.mark.parametrize("dtype, built", [("float32", False), ("float32", True), ("int8", True)])
def test_spann_add_skips_held_ids(tmp_path, dtype, built):
    vectors, queries = data(600), data(5, seed=1)
    config = SpannConfig(build_size=500 if built else 10_000, head_ratio=0.1, dtype=dtype, max_postings=64)
    index = SpannIndex(DIM, "l2", config, path=tmp_path)
    ids = np.arange(600, dtype=np.int64)
    index.add(ids[:550], vectors[:550], seq=5)
    index.add(ids[550:], vectors[550:], seq=6)
    assert index.built == built
    if built:
        index.compact()  # the first 550 now live in the posting file, quantised for int8
    before = index.search(queries, 10)
    index.add(ids[200:], vectors[200:], seq=7)  # held (file, heads and deltas): a no-op
    assert len(index) == 600 and index.seq == 7
    np.testing.assert_array_equal(index.search(queries, 10)[1], before[1])
    with pytest.raises(InvalidArgument, match="id 300 is already in the index with another vector"):
        index.add(ids[300:301], vectors[301:302])
    index.close()


def test_sparse_readd_is_a_replacement_and_a_no_op_when_equal():
    batch = SparseBatch(np.array([0, 2, 3, 5]), np.array([1, 4, 2, 1, 7]), np.array([1.0, 0.5, 2.0, 0.3, 0.9]))
    index = SparseIndex(16)
    index.add(np.array([10, 11, 12]), batch)
    query = SparseBatch(np.array([0, 2]), np.array([1, 7]), np.array([1.0, 1.0]))
    before = index.search(query, 3)
    index.add(np.array([10, 11, 12]), batch)
    assert len(index) == 3
    np.testing.assert_array_equal(index.search(query, 3)[1], before[1])
    np.testing.assert_array_equal(index.search(query, 3)[0], before[0])


@pytest.mark.parametrize("codec", ["float16", "pq4x4"])
def test_token_store_skips_held_ids(codec):
    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((int(n), 16)).astype(np.float32) for n in rng.integers(1, 6, 80)]
    store = TokenStore(16, codec, train_size=100)
    store.add(np.arange(80), docs)
    tokens, offsets = store.get_packed(np.arange(80))
    store.add(np.arange(40, 80), docs[40:])  # the codec may have been trained since: same forms
    assert len(store) == 80
    again, again_offsets = store.get_packed(np.arange(80))
    np.testing.assert_array_equal(again, tokens)
    np.testing.assert_array_equal(again_offsets, offsets)
    with pytest.raises(InvalidArgument, match="other tokens"):
        store.add(np.array([3]), [docs[4]])


def test_tenant_index_skips_held_ids():
    vectors = data(50)
    index = TenantIndex(DIM, "l2")
    owners = [f"t{i % 3}" for i in range(50)]
    index.add(np.arange(50), vectors, owners)
    before = {t: index.tenant_ids(t).tolist() for t in ("t0", "t1", "t2")}
    index.add(np.arange(20, 50), vectors[20:], owners[20:])
    assert len(index) == 50
    assert {t: index.tenant_ids(t).tolist() for t in ("t0", "t1", "t2")} == before
    with pytest.raises(InvalidArgument, match="already used"):
        index.add([30], vectors[:1], "t0")  # another vector
    with pytest.raises(InvalidArgument, match="already used"):
        index.add([31], vectors[31:32], "t2")  # another owner
    index.verify()


def test_payload_readd_is_a_no_op():
    index = PayloadIndex({"n": "numeric", "k": "keyword"})
    meta = [{"n": i, "k": "odd" if i % 2 else "even"} for i in range(20)]
    index.add_many(np.arange(20), meta)
    index.delete([3])
    order = [a.copy() for a in index.value_order("n") or ()]
    index.add_many(np.arange(10, 20), meta[10:])
    index.add_many(np.arange(0, 5), meta[:5])  # the deleted 3 stays deleted
    assert index.keyword_counts("k") == {"odd": 9, "even": 10}
    assert index.count(None) == 19
    index.compact()
    values, iids = index.value_order("n")
    assert len(iids) == 19 and len(np.unique(iids)) == 19
    assert not order or len(order[1]) == 20
