"""The entity graph's records: incremental writes equal a rebuild, and the store holds what memory holds."""

from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.index.graph import ChunkEntities, EntityGraph
from lamina.index.graph.graph import PREFIX
from lamina.index.store import Store, StoredDoc

KEYS = ["paris", "france", "alice", "bob", "eiffel tower", "seine", "london", "thames"]


def encode(keys):
    """Unit vectors; "paris"/"seine" and "london"/"thames" are near (synonym edges at 0.8)."""
    out = []
    for key in keys:
        base = {"seine": "paris", "thames": "london"}.get(key, key)
        rng = np.random.default_rng(int(hashlib.md5(base.encode()).hexdigest()[:8], 16))
        v = rng.standard_normal(8)
        if base != key:
            v += 0.2 * np.random.default_rng(7).standard_normal(8)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, np.float32)


def chunk(iid, tenant, keys, weights):
    return ChunkEntities(iid, tenant, tuple(keys), tuple(k.title() for k in keys), tuple(weights))


def rebuild(live: dict[int, ChunkEntities]) -> EntityGraph:
    fresh = EntityGraph(8, max_cooc=3)
    fresh.commit(fresh.plan([live[i] for i in sorted(live)], [], encode))
    return fresh


def apply(records: dict[bytes, bytes], ops) -> None:
    for key, value in ops:
        if value is None:
            records.pop(key, None)
        else:
            records[key] = value


chunk_strategy = st.tuples(st.sampled_from([None, "t1"]),
                           st.lists(st.sampled_from(KEYS), min_size=0, max_size=5, unique=True),
                           st.integers(1, 3))
step = st.one_of(st.tuples(st.just("add"), st.lists(chunk_strategy, min_size=1, max_size=3)),
                 st.tuples(st.just("delete"), st.lists(st.integers(0, 30), min_size=1, max_size=3)),
                 st.tuples(st.just("replace"), st.tuples(st.integers(0, 30), chunk_strategy)))


@settings(max_examples=60, deadline=None)
@given(st.lists(step, min_size=1, max_size=12))
def test_incremental_writes_equal_a_rebuild(steps):
    graph = EntityGraph(8, max_cooc=3)
    records: dict[bytes, bytes] = {}
    live: dict[int, ChunkEntities] = {}
    next_iid = 0
    for kind, arg in steps:
        added, removed = [], []
        if kind == "add":
            for tenant, keys, w in arg:
                added.append(chunk(next_iid, tenant, keys, [float(w + j % 2) for j in range(len(keys))]))
                next_iid += 1
        elif kind == "delete":
            removed = sorted({i for i in arg if i in live})  # a write removes an iid once (the store dedupes)
        else:
            old, (tenant, keys, w) = arg
            removed = [old] if old in live else []
            added = [chunk(next_iid, tenant, keys, [float(w)] * len(keys))]
            next_iid += 1
        delta = graph.plan(added, removed, encode)
        apply(records, delta.ops)
        graph.commit(delta)
        for i in removed:
            del live[i]
        live.update({c.iid: c for c in added})
    assert graph.canonical() == rebuild(live).canonical()
    # what the records say is what memory holds, and dead entities left no record behind
    loaded = EntityGraph.load(sorted(records.items()), dim=8, max_cooc=3)
    assert loaded.canonical() == graph.canonical()
    assert dict(graph.records()) == records


def test_crafted_graph_nodes_edges_and_weights():
    graph = EntityGraph(8, max_cooc=8, cooc_weight=0.5)
    graph.commit(graph.plan([chunk(0, None, ["paris", "france"], [2.0, 1.0]),
                             chunk(1, None, ["paris", "seine"], [1.0, 1.0]),
                             chunk(2, "t1", ["paris"], [1.0])], [], encode))
    canon = graph.canonical()
    assert canon["entities"] == {("", "paris"): 2, ("", "france"): 1, ("", "seine"): 1, ("t1", "paris"): 1}
    assert canon["cooc"] == {(("", "france"), ("", "paris")): 1, (("", "paris"), ("", "seine")): 1}
    assert set(canon["synonyms"]) == {(("", "paris"), ("", "seine"))}  # not across tenants
    eids, iids, matrix = graph.layout()
    dense = matrix.toarray()
    paris = int(np.searchsorted(eids, graph.keys[("", "paris")]))
    france = int(np.searchsorted(eids, graph.keys[("", "france")]))
    chunk0 = len(eids) + 0
    assert dense[chunk0, paris] == 2.0 and dense[chunk0, france] == 1.0
    assert dense[paris, france] == 0.5  # one shared chunk x cooc_weight
    t1_paris = int(np.searchsorted(eids, graph.keys[("t1", "paris")]))
    nodes, sub = graph.subgraph("t1")
    assert set(nodes.tolist()) == {t1_paris, len(eids) + 2}
    assert sub.nnz == 2


def test_records_ride_in_the_chunks_write_batch(tmp_path):
    from lamina.index.types import CollectionConfig

    store = Store(tmp_path / "s")
    store.create_collection(CollectionConfig(name="c", dim=2, encoder=None))
    graph = EntityGraph(8)
    pending = []

    def extra(added, removed):
        delta = graph.plan([chunk(int(i), None, ["alice", "bob"], [1.0, 1.0]) for i in added], removed, encode)
        pending.append(delta)
        return delta.ops

    vec = np.zeros(2, np.float32).tobytes()
    store.write("c", [StoredDoc("a", "Alice and Bob", vectors={"dense": vec})], extra=extra)
    graph.commit(pending.pop())
    store.write("c", [StoredDoc("a", "Alice and Bob again", vectors={"dense": vec})], extra=extra)  # replaces iid 0
    graph.commit(pending.pop())
    loaded = EntityGraph.load(store.iter_graph("c"), dim=8)
    assert loaded.canonical() == graph.canonical() and list(loaded.chunks) == [1]
    store.write("c", deletes=["a"], extra=lambda added, removed: (pending.append(graph.plan([], removed)),
                                                                  pending[-1].ops)[1])
    graph.commit(pending.pop())
    assert [k for k, _ in store.iter_graph("c") if k.startswith(PREFIX) and not k.endswith(b"next")] == []
    store.drop_collection("c")
    assert list(store.iter_graph("c")) == []
    store.close()
