import numpy as np
import pytest
from lamina.index.errors import CorruptIndex, InvalidArgument, NotFound
from lamina.index.tenants import (
    TenantIndex,
    TenantIndexConfig,
    bloom_bits,
    brute_force_topk,
    score_topk,
)

DIM = 32


def make_corpus(n=20_000, d=DIM, n_tenants=100, n_shared=1_000, seed=3):
    """Gaussian mixture; Zipfian tenant sizes; each tenant draws from a few of the components
    (Curator's setting: tenants have their own distributions); some vectors shared."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((64, d)).astype(np.float32) * 2.5
    weights = 1.0 / np.arange(1, n_tenants + 1)
    weights /= weights.sum()
    owner = rng.choice(n_tenants, n, p=weights)
    preferred = rng.integers(0, len(centers), (n_tenants, 4))
    component = preferred[owner, rng.integers(0, 4, n)]
    vectors = (centers[component] + rng.standard_normal((n, d))).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) * 7 + 100  # iids are sparse, as the store's are
    access = {t: set(ids[owner == t].tolist()) for t in range(n_tenants)}
    shared_rows = rng.choice(n, n_shared, replace=False)
    grants = [(int(ids[i]), int(rng.integers(n_tenants))) for i in shared_rows]
    return dict(rng=rng, centers=centers, vectors=vectors, ids=ids, owner=owner, access=access,
                grants=grants, weights=weights, preferred=preferred)


def exact(corpus, queries, k, ids_allowed, metric="l2"):
    ids_allowed = np.array(sorted(ids_allowed), dtype=np.int64)
    rows = np.searchsorted(corpus["ids"], ids_allowed)
    return brute_force_topk(queries, corpus["vectors"][rows], ids_allowed, k, metric)


def recall(found, truth):
    hits, total = 0, 0
    for f, t in zip(found, truth):
        t = set(t[t >= 0].tolist())
        hits += len(t & set(f[f >= 0].tolist()))
        total += len(t)
    return hits / max(total, 1)


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def built(corpus):
    index = TenantIndex(DIM, "l2")
    index.add(corpus["ids"], corpus["vectors"], [f"t{o}" for o in corpus["owner"]])
    for iid, tenant in corpus["grants"]:
        if index.grant(iid, f"t{tenant}"):
            corpus["access"][tenant].add(iid)
    return index


def test_tree_is_built_and_consistent(built, corpus):
    assert len(built) == len(corpus["ids"])
    assert built.depth >= 2 and built.n_nodes > 100
    built.verify()
    assert built.tenants() == {f"t{t}": len(a) for t, a in corpus["access"].items() if a}


def test_recall_at_10_against_exact_per_tenant_search(built, corpus):
    rng = np.random.default_rng(11)
    n_tenants = len(corpus["access"])
    found_all, truth_all = [], []
    for tenant in list(range(10)) + rng.choice(n_tenants, 40, replace=False).tolist():
        # queries near the tenant's own components, where its neighbours are
        comps = corpus["preferred"][tenant, rng.integers(0, 4, 5)]
        queries = (corpus["centers"][comps] + rng.standard_normal((5, DIM))).astype(np.float32)
        scores, found = built.search(queries, 10, f"t{tenant}")
        _, truth = exact(corpus, queries, 10, corpus["access"][tenant])
        assert set(found[found >= 0].tolist()) <= corpus["access"][tenant]  # isolation
        assert (scores[:, :-1] >= scores[:, 1:]).all()
        found_all.extend(found)
        truth_all.extend(truth)
    assert recall(found_all, truth_all) >= 0.95


def test_search_returns_min_k_and_tenant_size(built, corpus):
    sizes = {t: len(a) for t, a in corpus["access"].items()}
    query = corpus["vectors"][:3]
    for tenant, size in sorted(sizes.items(), key=lambda item: item[1])[:5] + [(0, sizes[0])]:
        for k in (1, 10, 200):
            _, found = built.search(query, k, f"t{tenant}", params={"nprobe": 16})
            assert ((found >= 0).sum(1) == min(k, size)).all()
            assert all(len(set(row[row >= 0].tolist())) == min(k, size) for row in found)  # no duplicates
    scores, found = built.search(query, 5, "nobody")
    assert (found == -1).all() and np.isneginf(scores).all()


def test_small_tenants_are_exact(built, corpus):
    small = [t for t, a in corpus["access"].items() if 0 < len(a) <= 128][:5]
    queries = corpus["vectors"][100:104]
    for tenant in small:
        scores, found = built.search(queries, 10, f"t{tenant}")
        true_scores, truth = exact(corpus, queries, 10, corpus["access"][tenant])
        np.testing.assert_array_equal(found, truth)
        np.testing.assert_allclose(scores, true_scores, rtol=1e-4, atol=1e-3)


def test_allowed_restricts_and_widens(built, corpus):
    tenant = 0
    members = np.array(sorted(corpus["access"][tenant]), dtype=np.int64)
    allowed = members[::37]  # a selective filter inside the biggest tenant
    queries = corpus["vectors"][:4]
    _, found = built.search(queries, 10, f"t{tenant}", allowed=allowed)
    _, truth = exact(corpus, queries, 10, set(allowed.tolist()))
    assert set(found[found >= 0].tolist()) <= set(allowed.tolist())
    assert ((found >= 0).sum(1) == min(10, len(allowed))).all()
    assert recall(found, truth) >= 0.9
    unsorted = allowed[::-1].copy()
    np.testing.assert_array_equal(built.search(queries, 10, f"t{tenant}", allowed=unsorted)[1], found)


def test_exact_search_helper_matches_brute_force(built, corpus):
    queries = corpus["vectors"][5:8]
    np.testing.assert_array_equal(built.exact_search(queries, 10, "t3")[1],
                                  exact(corpus, queries, 10, corpus["access"][3])[1])


def small_config(**overrides):
    # tiny nodes and caps, so that a few hundred vectors split and merge shortlists
    params = dict(branching=4, leaf_size=16, shortlist_cap=8, train_size=200, bloom_bits=512)
    params.update(overrides)
    return TenantIndexConfig(**params)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_random_writes_keep_invariants_and_exhaustive_search_exact(metric):
    rng = np.random.default_rng(5)
    index = TenantIndex(8, metric, small_config())
    vectors: dict[int, np.ndarray] = {}
    access: dict[str, set[int]] = {}
    next_id = 0
    for _ in range(60):
        op = rng.choice(["add", "add", "delete", "grant", "revoke", "delete_tenant"], p=[.3, .2, .2, .15, .1, .05])
        if op == "add" or not vectors:
            n = int(rng.integers(1, 40))
            ids = np.arange(next_id, next_id + n, dtype=np.int64)
            next_id += n
            x = rng.standard_normal((n, 8)).astype(np.float32)
            owners = [f"t{int(o)}" for o in rng.zipf(1.5, n) % 9]
            index.add(ids, x, owners)
            for iid, v, o in zip(ids.tolist(), x, owners):
                vectors[iid] = v
                access.setdefault(o, set()).add(iid)
        elif op == "delete":
            victims = rng.choice(sorted(vectors), min(len(vectors), int(rng.integers(1, 30))), replace=False)
            index.delete(np.append(victims, 10**9))  # an unknown id is ignored
            for iid in victims.tolist():
                del vectors[iid]
                for members in access.values():
                    members.discard(iid)
        elif op == "grant":
            for iid in rng.choice(sorted(vectors), min(len(vectors), 10), replace=False).tolist():
                tenant = f"t{int(rng.integers(0, 9))}"
                assert index.grant(iid, tenant) == (iid not in access.setdefault(tenant, set()))
                access[tenant].add(iid)
        elif op == "revoke":
            tenant = f"t{int(rng.integers(0, 9))}"
            for iid in list(access.get(tenant, ()))[:15]:
                assert index.revoke(iid, tenant)
                access[tenant].discard(iid)
            assert not index.revoke(next(iter(vectors)), "never-seen")
        else:
            tenant = max(access, key=lambda t: len(access[t]))
            orphans = index.delete_tenant(tenant)
            lost = access.pop(tenant)
            still = set().union(*access.values()) if access else set()
            assert set(orphans.tolist()) == lost - still
        index.verify()
        assert index.tenants() == {t: len(m) for t, m in access.items() if m}
        assert len(index) == len(vectors)
        # exhaustive search (budget above any tenant) is exact; the default never returns fewer
        query = rng.standard_normal(8).astype(np.float32)
        for tenant, members in access.items():
            if not members:
                continue
            ids = np.array(sorted(members), dtype=np.int64)
            truth = brute_force_topk(query, np.stack([vectors[i] for i in ids]), ids, 5, metric)[1]
            found = index.search(query, 5, tenant, params={"nprobe": 10**6})[1]
            assert set(found[0][found[0] >= 0].tolist()) == set(truth[0][truth[0] >= 0].tolist())
            cheap = index.search(query, 5, tenant, params={"nprobe": 1})[1]
            assert (cheap >= 0).sum() == min(5, len(members))
            assert set(cheap[cheap >= 0].tolist()) <= members
    assert index.depth >= 1  # the tree was trained along the way


def test_grant_revoke_and_delete_are_visible_to_search(built, corpus):
    index = TenantIndex(DIM, "l2", small_config(train_size=500))
    ids, x = corpus["ids"][:2000], corpus["vectors"][:2000]
    index.add(ids, x, ["a"] * 1000 + ["b"] * 1000)
    probe = int(ids[1500])  # belongs to b
    query = x[1500]
    assert probe not in index.search(query, 5, "a")[1]
    assert index.grant(probe, "a") and not index.grant(probe, "a")
    assert index.search(query, 1, "a")[1][0, 0] == probe
    assert index.tenants() == {"a": 1001, "b": 1000}
    assert index.revoke(probe, "b")  # a keeps it, b loses it
    assert index.search(query, 1, "b")[1][0, 0] != probe
    assert index.search(query, 1, "a")[1][0, 0] == probe
    index.delete([probe])
    assert probe not in index.search(query, 10, "a")[1]
    assert index.tenants() == {"a": 1000, "b": 999}
    with pytest.raises(NotFound):
        index.grant(probe, "a")
    index.verify()


def assert_frontiers_current(index: TenantIndex) -> None:
    """Every cached frontier holds exactly its tenant's shortlists, as a rebuild would."""
    assert index._frontier_cache
    for tenant in list(index._frontier_cache):
        frontier = index._frontier(tenant)  # applies the patches pending for it
        np.testing.assert_array_equal(frontier.nodes, np.array(sorted(index._tenant_nodes.get(tenant, ())), np.int32))
        np.testing.assert_array_equal(np.sort(frontier.live), np.sort(index._tenant_slots(tenant)))


def test_delete_many_compacts_and_keeps_results_right(corpus):
    index = TenantIndex(DIM, "l2", small_config(train_size=1000, branching=8, leaf_size=64, shortlist_cap=32))
    ids, x = corpus["ids"][:3000], corpus["vectors"][:3000]
    owners = [f"t{o % 5}" for o in range(3000)]
    index.add(ids, x, owners)
    for tenant in range(5):  # searches cache each tenant's flattened shortlists
        index.search(x[:3], 10, f"t{tenant}", params={"nprobe": 5000})
    # tenants 0 and 1 go entirely: the compaction renumbers the slots of 2..4, whose shortlists
    # the deletes did not touch, so their cached copies must be renumbered with them
    gone = ids[np.arange(3000) % 5 < 2]
    index.delete(gone)
    assert len(index) == 1800 and index._n == 1800  # dead slots reclaimed
    assert len(index._frontier_cache) == 5  # kept through the compaction, renumbered
    index.verify()
    assert_frontiers_current(index)
    for tenant in range(5):
        members = [i for i, o in zip(ids.tolist(), owners) if o == f"t{tenant}" and i not in set(gone.tolist())]
        _, found = index.search(x[:3], 10, f"t{tenant}", params={"nprobe": 5000})
        _, truth = exact(corpus, x[:3], 10, set(members))
        np.testing.assert_array_equal(found, truth)


def test_writes_patch_the_cached_frontier_and_searches_stay_exact(corpus, monkeypatch):
    """A search caches the tenant's flattened shortlists, tenant_ids its sorted iids; single
    writes then patch those copies (the frontier: appending, leaving garbage, squeezing it out;
    the iids: the net gained and lost) instead of rebuilding them. Exhaustive searches and
    tenant_ids must see exactly the tenant's vectors after every write."""
    from lamina.index.tenants import index as tenants_module

    applied = []
    real_apply = tenants_module._apply_id_deltas

    def apply(ids, deltas):
        result = real_apply(ids, deltas)
        applied.append(result is not None)  # None would mean the recorded deltas did not fit
        return result

    monkeypatch.setattr(tenants_module, "_apply_id_deltas", apply)
    index = TenantIndex(DIM, "l2", small_config(train_size=1000, branching=8, leaf_size=64, shortlist_cap=32))
    ids, x = corpus["ids"][:3000], corpus["vectors"][:3000]
    index.add(ids[:2000], x[:2000], ["a" if i % 3 else "b" for i in range(2000)])
    members = {int(i) for n, i in enumerate(ids[:2000].tolist()) if n % 3}
    rng = np.random.default_rng(11)
    patched = 0
    for step, n in enumerate(range(2000, 3000)):
        index.search(x[n], 5, "a")  # caches (or patches) the frontier
        before = index._frontier_cache.get(index._tenant_number("a", create=False))
        op = step % 4
        if op < 2:
            index.insert(int(ids[n]), x[n], "a")
            members.add(int(ids[n]))
        elif op == 2:
            other = int(rng.choice(ids[:2000][np.arange(2000) % 3 == 0]))
            index.grant(other, "a")
            members.add(other)
        else:
            victim = int(rng.choice(sorted(members)))
            index.revoke(victim, "a")
            members.discard(victim)
        frontier = index._frontier(index._tenant_number("a", create=False))
        patched += before is not None and frontier.slots is not before.slots and len(frontier.slots) > len(before.slots)
        if step % 5 == 0:
            np.testing.assert_array_equal(index.tenant_ids("a"), np.array(sorted(members), dtype=np.int64))
        if step % 50 == 0:
            truth = exact(corpus, x[n:n + 1], 10, members)[1]
            np.testing.assert_array_equal(index.search(x[n:n + 1], 10, "a", params={"nprobe": 10**6})[1], truth)
    assert patched > 500  # the writes were patched in, not rebuilt
    assert len(applied) > 150 and all(applied)  # and so were the iids
    np.testing.assert_array_equal(np.sort(index._frontier(index._tenant_number("a", create=False)).live),
                                  np.sort(index._tenant_slots(index._tenant_number("a", create=False))))
    index.verify()


def test_delete_tenant_keeps_shared_vectors_for_others(corpus):
    index = TenantIndex(DIM, "l2", small_config(train_size=400))
    ids, x = corpus["ids"][:1000], corpus["vectors"][:1000]
    index.add(ids, x, ["a"] * 500 + ["b"] * 500)
    for iid in ids[:50].tolist():
        index.grant(iid, "b")
    orphans = index.delete_tenant("a")
    np.testing.assert_array_equal(orphans, ids[50:500])
    assert index.tenants() == {"b": 550}
    assert (index.search(x[:2], 5, "a")[1] == -1).all()
    _, found = index.search(x[:1], 1, "b")
    assert found[0, 0] == ids[0]
    index.verify()
    index.delete(orphans)
    assert len(index) == 550


def test_untrained_index_is_exact(corpus):
    index = TenantIndex(DIM, "ip")
    ids, x = corpus["ids"][:500], corpus["vectors"][:500]
    index.add(ids, x, "only")
    assert index.depth == 0
    scores, found = index.search(x[:5], 10, "only", params={"nprobe": 1})
    true_scores, truth = brute_force_topk(x[:5], x, ids, 10, "ip")
    np.testing.assert_array_equal(found, truth)
    np.testing.assert_allclose(scores, true_scores, rtol=1e-5)


def test_save_load_round_trip(built, corpus, tmp_path):
    built.save(tmp_path)
    loaded = TenantIndex.load(tmp_path)
    loaded.verify()
    assert loaded.tenants() == built.tenants()
    # every tenant's frontier is built at load, in one pass, as its first search would build it
    assert set(loaded._frontier_cache) == {t for t, nodes in loaded._tenant_nodes.items() if nodes}
    assert_frontiers_current(loaded)
    queries = corpus["vectors"][:20]
    for tenant in ("t0", "t7", "t55"):
        a_scores, a_ids = built.search(queries, 10, tenant)
        b_scores, b_ids = loaded.search(queries, 10, tenant)
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_allclose(a_scores, b_scores)
    # the loaded index keeps taking writes
    loaded.add(np.array([10**9]), corpus["vectors"][:1] + 0.01, "t0")
    assert loaded.search(corpus["vectors"][0], 1, "t0")[1][0, 0] in (10**9, corpus["ids"][0])
    loaded.verify()


def test_load_rejects_damaged_files(built, tmp_path):
    built.save(tmp_path)
    np.save(tmp_path / "tenants_iids.npy", np.zeros(3, dtype=np.int64))
    with pytest.raises(CorruptIndex):
        TenantIndex.load(tmp_path)
    (tmp_path / "tenants.json").unlink()
    with pytest.raises(CorruptIndex):
        TenantIndex.load(tmp_path)


def test_invalid_arguments_are_named():
    index = TenantIndex(4)
    index.add([1, 2], np.eye(2, 4, dtype=np.float32), ["a", None])
    with pytest.raises(InvalidArgument, match="dimension|shape"):
        index.search(np.zeros(3, np.float32), 1, "a")
    with pytest.raises(InvalidArgument, match="k must"):
        index.search(np.zeros(4, np.float32), 0, "a")
    with pytest.raises(InvalidArgument, match="nprobe"):
        index.search(np.zeros(4, np.float32), 1, "a", params={"nprobe": 0})
    with pytest.raises(InvalidArgument, match="unknown search parameter"):
        index.search(np.zeros(4, np.float32), 1, "a", params={"ef": 3})
    with pytest.raises(InvalidArgument, match="already used"):
        index.add([2], np.zeros((1, 4), np.float32), "a")
    with pytest.raises(InvalidArgument, match="tenant"):
        index.search(np.zeros(4, np.float32), 1, "")
    with pytest.raises(InvalidArgument, match="shortlist|leaf_size"):
        TenantIndexConfig(branching=32, leaf_size=16)
    # a row added without a tenant is searchable by nobody until granted
    assert (index.search(np.eye(1, 4, 1, dtype=np.float32), 2, "a")[1] == [[1, -1]]).all()
    index.grant(2, "a")
    assert set(index.search(np.zeros(4, np.float32), 2, "a")[1][0].tolist()) == {1, 2}


def test_bloom_bits_are_stable_and_spread():
    byte, mask = bloom_bits(np.arange(1000), 4, 4096)
    assert byte.shape == (1000, 4) and byte.max() < 512 and set(np.unique(mask).tolist()) <= {1 << i for i in range(8)}
    np.testing.assert_array_equal(bloom_bits(np.array([7]), 4, 4096)[0], byte[7:8])
    positions = byte * 8 + np.log2(mask).astype(int)
    # 4000 uniform draws over 4096 bits hit 4096 * (1 - e^(-4000/4096)) ~ 2553 distinct bits
    assert abs(len(np.unique(positions)) - 2553) < 120
    # a filter holding 300 tenants answers "maybe" for few others: (1 - e^(-1200/4096))^4 ~ 0.4%
    row = np.zeros(4096, dtype=bool)
    row[positions[:300].ravel()] = True
    false_positive = row[positions[300:]].all(1).mean()
    assert false_positive < 0.02


def test_single_writes_keep_lookup_and_tenant_ids_exact():
    """Inserts one at a time (the amortised lookup append and the single-path grant), grants,
    deletes and a compaction: tenant_ids and tenant_size follow, verify() holds throughout."""
    rng = np.random.default_rng(21)
    index = TenantIndex(8, "l2", small_config())
    access: dict[str, set[int]] = {f"u{t}": set() for t in range(5)}
    for iid in range(1_500):
        tenant = f"u{rng.integers(5)}"
        index.insert(iid * 2 + 1, rng.standard_normal(8).astype(np.float32), tenant)
        access[tenant].add(iid * 2 + 1)
        if iid % 7 == 0:
            other = f"u{rng.integers(5)}"
            if index.grant(iid * 2 + 1, other):
                access[other].add(iid * 2 + 1)
    assert index.depth >= 1
    index.verify()
    for tenant, members in access.items():
        np.testing.assert_array_equal(index.tenant_ids(tenant), np.array(sorted(members)))
        assert index.tenant_size(tenant) == len(members)
    dead = np.arange(1, 3_000, 2)[rng.random(1_500) < 0.4]
    index.delete(dead)  # past the compaction fraction: slots are renumbered
    for members in access.values():
        members.difference_update(dead.tolist())
    index.verify()
    for tenant, members in access.items():
        np.testing.assert_array_equal(index.tenant_ids(tenant), np.array(sorted(members)))
    index.insert(10_001, np.zeros(8, dtype=np.float32), "u0")
    assert 10_001 in index.tenant_ids("u0").tolist()
    index.insert(4, np.ones(8, dtype=np.float32), "u1")  # below the newest iid: the merge path
    assert 4 in index.tenant_ids("u1").tolist()
    with pytest.raises(InvalidArgument, match="already used"):
        index.insert(10_001, np.ones(8, dtype=np.float32), "u1")
    index.verify()


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("m", [0, 1, 3, 4, 5, 11, 1_003])
def test_score_topk_matches_numpy_in_and_out_of_the_four_row_blocks(metric, m):
    """The kernel scores rows four at a time plus a tail: every length, both metrics, against a
    plain numpy ranking; duplicated rows tie, and the earlier position wins."""
    rng = np.random.default_rng(m)
    vectors = rng.standard_normal((2_000, 24)).astype(np.float32)
    vectors[1_000:] = vectors[:1_000]  # slot s and s + 1000 hold the same vector
    sqnorms = np.einsum("ij,ij->i", vectors, vectors)
    query = rng.standard_normal(24).astype(np.float32)
    slots = rng.permutation(2_000)[:m].astype(np.int32)
    scores, pos = score_topk(query, vectors, sqnorms, slots, metric == "ip", 10)
    rows = vectors[slots].astype(np.float64)
    ref = rows @ query if metric == "ip" else -((rows - query) ** 2).sum(1)
    order = np.lexsort((np.arange(m), -np.round(ref, 3)))[:10]  # score, then position
    assert len(pos) == min(10, m)
    np.testing.assert_allclose(scores, ref[pos], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.sort(ref[pos])[::-1], ref[order], rtol=1e-4, atol=1e-3)
    tied = slots[pos] % 1_000
    for a, b in zip(*np.nonzero(tied[:, None] == tied[None, :])):
        if a < b:  # the same vector twice in the top: the earlier position first
            assert pos[a] < pos[b]
