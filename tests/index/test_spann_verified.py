"""The verified cache of posting lists (index/spann/verified.py): searches get checked copies,
a budget bounds them (past it, reads are checked in place), damage is caught on every miss, and concurrent
readers, before and after it fills, see exactly the stored lists."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from lamina.index.spann.postings import COUNT, LENGTH, OFFSET, Codec, DamagedLists, PostingReader, PostingWriter

DIM = 8


def write_file(tmp_path, n_lists: int = 40):
    rng = np.random.default_rng(3)
    codec = Codec("float32", DIM)
    lists = []
    with PostingWriter(tmp_path / "postings.bin", codec) as writer:
        for h in range(n_lists):
            n = int(rng.integers(0, 30)) if h % 7 else 0  # some empty lists
            ids = rng.integers(0, 10**9, n).astype(np.int64)
            vectors = rng.standard_normal((n, DIM)).astype(np.float32)
            writer.write_list(ids, vectors)
            lists.append((ids, vectors))
        directory = writer.finish()
    return tmp_path / "postings.bin", directory, codec, lists


def gathered(reader, heads):
    """(ids, vectors) of each head from what `lists` hands out."""
    raw = reader.lists(heads)
    out = []
    for j, h in enumerate(heads.tolist()):
        count, base = int(raw.counts[j]), int(raw.bases[j])
        ids = raw.buffer[base: base + 8 * count].view(np.int64) if count else np.empty(0, np.int64)
        vec = raw.buffer[base + 8 * count: base + 8 * count + 4 * DIM * count].view(np.float32).reshape(count, DIM)
        out.append((ids, vec))
    return out


@pytest.mark.parametrize("io", ["mmap", "pread"])
def test_a_small_budget_fills_and_concurrent_readers_see_the_stored_lists(tmp_path, io):
    path, directory, codec, lists = write_file(tmp_path)
    budget = int(directory[:, LENGTH].sum()) // 4  # a quarter of the lists: the cache fills
    reader = PostingReader(path, directory, codec, io=io, cache_bytes=budget)
    rng = np.random.default_rng(5)
    queries = [rng.choice(len(lists), 6, replace=False) for _ in range(200)]

    def run(heads):
        for (ids, vec), h in zip(gathered(reader, heads), heads.tolist()):
            np.testing.assert_array_equal(ids, lists[h][0])
            np.testing.assert_array_equal(vec, lists[h][1])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, queries))
    assert reader.cache.full > 0 and reader.stats.cache_hits > 0  # both paths ran
    assert reader.cache.resident_bytes <= budget
    reader.cache.clear()  # starts over while nothing is in flight; reads stay exact
    run(queries[0])  # a first miss: checked in place, marked seen
    assert reader.cache.resident_bytes == 0
    run(queries[0])  # the second: copied in
    assert 0 < reader.cache.resident_bytes <= budget
    reader.close()


def test_a_miss_checks_the_copy_and_a_damaged_list_is_never_marked_verified(tmp_path):
    path, directory, codec, lists = write_file(tmp_path)
    victim = int(np.flatnonzero(directory[:, COUNT] > 2)[0])
    reader = PostingReader(path, directory, codec, cache_bytes=1 << 30)
    with open(path, "r+b") as fh:  # flip a byte of the victim's vectors while the file is mapped
        at = int(directory[victim, OFFSET]) + 8 * int(directory[victim, COUNT]) + 3
        fh.seek(at)
        byte = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([byte ^ 0x10]))
    heads = np.array([victim, victim + 1], dtype=np.int64)
    for _ in range(2):  # the second try misses again: the failed list was not admitted
        with pytest.raises(DamagedLists) as info:
            reader.lists(heads)
        assert info.value.heads.tolist() == [victim]
    assert not reader.cache._arena.verified[victim]
    reader.close()
