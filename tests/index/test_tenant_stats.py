"""`TenantCorpusStats` against a brute-force recount, and `SparseIndex.terms`."""

import numpy as np
import pytest

from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.sparse import SparseBatch, SparseIndex, TenantCorpusStats
from lamina.index.sparse import tenant_stats as module

V = 50


def random_docs(rng, n, start):
    rows = [np.unique(rng.integers(0, V, size=rng.integers(0, 8))) for _ in range(n)]
    batch = SparseBatch.from_rows([(r, np.ones(len(r))) for r in rows])
    tenants = [str(rng.choice(["a", "b", "c"])) for _ in range(n)]
    return np.arange(start, start + n, dtype=np.int64), tenants, batch, rng.integers(0, 40, size=n)


def recount(live):
    out = {}
    for tenant, terms, length in live.values():
        n, total, df = out.get(tenant, (0, 0, np.zeros(V, np.int64)))
        df = df.copy()
        df[terms] += 1
        out[tenant] = (n + 1, total + int(length), df)
    return out


def check(stats, live):
    expected = recount(live)
    for tenant in ("a", "b", "c", "nobody"):
        n, total, df = expected.get(tenant, (0, 0, np.zeros(V, np.int64)))
        assert stats.corpus(tenant) == (n, total)
        assert stats.df(tenant, np.arange(V)).tolist() == df.tolist()
    assert len(stats) == len(live)


def test_adds_and_removes_match_a_recount_through_delta_merges(tmp_path, monkeypatch):
    monkeypatch.setattr(module, "_MIN_DELTA", 16)  # merge the delta into the main arrays often
    rng = np.random.default_rng(0)
    stats, live, next_iid = TenantCorpusStats(V), {}, 0
    for step in range(30):
        iids, tenants, batch, lengths = random_docs(rng, int(rng.integers(1, 12)), next_iid)
        next_iid += len(iids)
        stats.add(iids, tenants, batch, lengths)
        for i, iid in enumerate(iids):
            live[int(iid)] = (tenants[i], batch.row(i)[0], lengths[i])
        if live and step % 2:
            gone = rng.choice(sorted(live), size=min(len(live), int(rng.integers(1, 6))), replace=False)
            rows = SparseBatch.from_rows([(live[int(g)][1], np.ones(len(live[int(g)][1]))) for g in gone])
            stats.remove(np.asarray(gone), rows)
            for g in gone:
                del live[int(g)]
        check(stats, live)
    stats.add(iids, tenants, batch, lengths)  # counted already (a replay): skipped
    stats.remove(np.array([10**6]), SparseBatch.empty(1))  # never counted: ignored
    check(stats, live)
    (tmp_path / "s").mkdir()
    stats.save(tmp_path / "s")
    check(TenantCorpusStats.load(tmp_path / "s"), live)
    averages = stats.average_lengths(["a", "a", "zzz"], np.array([10, 20, 6]))
    n, total = stats.corpus("a")
    assert averages.tolist() == [(total + 30) / (n + 2)] * 2 + [6.0]


def test_damaged_files_are_corrupt_and_bad_calls_invalid(tmp_path):
    stats = TenantCorpusStats(V)
    stats.add(np.array([0, 1]), ["a", "b"], SparseBatch.from_rows([([1, 2], [1, 1]), ([2], [1])]), np.array([3, 4]))
    (tmp_path / "s").mkdir()
    stats.save(tmp_path / "s")
    np.save(tmp_path / "s" / "n_docs.npy", np.array([5, 1]))
    with pytest.raises(CorruptIndex, match="document counts"):
        TenantCorpusStats.load(tmp_path / "s")
    (tmp_path / "s" / "keys.npy").unlink()
    with pytest.raises(CorruptIndex, match="unreadable"):
        TenantCorpusStats.load(tmp_path / "s")
    with pytest.raises(InvalidArgument, match="one each"):
        stats.add(np.array([5]), [], SparseBatch.empty(1), np.array([1]))


def test_sparse_index_terms_of_indexed_delta_and_missing_ids():
    rng = np.random.default_rng(1)
    index = SparseIndex(V)
    rows = [np.unique(rng.integers(0, V, size=5)) for _ in range(40)]
    batch = SparseBatch.from_rows([(r, rng.random(len(r)) + 0.1) for r in rows])
    index.add(np.arange(0, 80, 2), batch)
    index.compact()  # indexed rows
    index.add(np.array([1, 3]), SparseBatch.from_rows([([7, 9], [1.0, 2.0]), ([], [])]))  # delta rows
    index.delete(np.array([4]))
    got = index.terms(np.array([2, 1, 4, 999, 3, 0]))
    assert [got.row(i)[0].tolist() for i in range(6)] == [rows[1].tolist(), [7, 9], [], [], [], rows[0].tolist()]
