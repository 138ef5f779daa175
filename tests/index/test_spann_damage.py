"""Damaged posting bytes are never scored (issue 20, part 2): every list a query reads is checked
against its CRC32C; a list that fails is rebuilt from the vector source (a collection's store)
and the file rewritten, or the query fails with DataLoss. Never a wrong score."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lamina.index.errors import CorruptIndex, DataLoss
from lamina.index.spann import SpannConfig, SpannIndex, files
from lamina.index.spann.postings import COUNT, LENGTH, OFFSET

DIM, N = 16, 2000
CONFIG = SpannConfig(head_ratio=0.05, max_postings=128, build_size=500)  # every list read: exact answers


def corpus():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, DIM)).astype(np.float32) * 3
    vectors = (centres[rng.integers(0, 20, N)] + rng.standard_normal((N, DIM))).astype(np.float32)
    queries = (centres[rng.integers(0, 20, 40)] + rng.standard_normal((40, DIM))).astype(np.float32)
    return np.arange(N, dtype=np.int64) * 3, vectors, queries


def flip_bits(directory, n_lists: int, seed: int = 1) -> np.ndarray:
    """Flip one bit in the vector bytes of `n_lists` non-empty lists of the current posting file."""
    manifest = files.read_manifest(directory)
    lists = np.load(directory / manifest["files"]["lists"]["name"])
    rng = np.random.default_rng(seed)
    heads = rng.choice(np.flatnonzero(lists[:, COUNT] > 1), n_lists, replace=False)
    with open(directory / manifest["files"]["postings"]["name"], "r+b") as fh:
        for h in heads.tolist():
            offset, length, count = (int(v) for v in lists[h, [OFFSET, LENGTH, COUNT]])
            at = offset + 8 * count + int(rng.integers(0, length - 8 * count))  # inside the vectors
            fh.seek(at)
            byte = fh.read(1)[0]
            fh.seek(at)
            fh.write(bytes([byte ^ (1 << int(rng.integers(0, 8)))]))
    return np.sort(heads)


@pytest.mark.parametrize("io", ["mmap", "pread"])
def test_damaged_lists_are_rebuilt_from_the_source_and_the_file_verifies_again(tmp_path, io, caplog):
    ids, vectors, queries = corpus()
    SpannIndex.build(ids, vectors, metric="l2", config=CONFIG, path=tmp_path).close()
    index = SpannIndex.load(tmp_path, overrides={"io": io})
    want = index.search(queries, 10)
    by_id = dict(zip(ids.tolist(), vectors))
    index.vector_source = lambda wanted: (wanted, np.stack([by_id[i] for i in wanted.tolist()]))
    damaged = flip_bits(tmp_path, 8)  # while the index is open: the map (or the next pread) sees it
    assert SpannIndex.verify(tmp_path)
    # the first search put checked copies of every list in the verified cache: drop them, so
    # that the next search reads the (now damaged) file again
    index.release_pages()
    with caplog.at_level(logging.WARNING, logger="lamina.index.spann.index"):
        got = index.search(queries, 10)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    repaired = sorted(h for record in index.repairs for h in record["heads"])
    assert repaired == damaged.tolist()  # every list read fails, exactly the damaged ones
    assert "fail their CRC32C" in caplog.text and "rebuilt posting list(s)" in caplog.text
    assert SpannIndex.verify(tmp_path) == []  # rewritten as a new generation
    assert index.io_stats.damaged == 0  # the new file's reader has met no damage
    np.testing.assert_array_equal(index.search(queries, 10)[1], want[1])
    index.close()


@pytest.mark.parametrize("io", ["mmap", "pread"])
def test_lists_damaged_after_they_were_checked_are_served_from_the_checked_copy(tmp_path, io):
    """The verified cache: a list checked once is scored from the copy that was checked, in the
    process's memory, so damage to the file after that cannot reach a query; a cache that starts
    over reads the file again and catches it, as a cache that is off does on every read."""
    ids, vectors, queries = corpus()
    SpannIndex.build(ids, vectors, metric="l2", config=CONFIG, path=tmp_path).close()
    index = SpannIndex.load(tmp_path, overrides={"io": io})
    want = index.search(queries, 10)  # a list's first miss is checked in place, only marked seen
    np.testing.assert_array_equal(index.search(queries, 10)[1], want[1])  # second: copied in, checked
    hits = index.io_stats.cache_hits
    flip_bits(tmp_path, 8)
    got = index.search(queries, 10)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    assert index.io_stats.cache_hits > hits and index.io_stats.damaged == 0 and not index.repairs
    index.close()
    tiny = SpannIndex.load(tmp_path, overrides={"io": io, "verified_cache_mb": 0})  # checked in place
    with pytest.raises(DataLoss, match="CRC32C"):
        tiny.search(queries, 10)
    tiny.close()


def test_without_a_source_a_damaged_list_fails_the_query_with_data_loss(tmp_path):
    ids, vectors, queries = corpus()
    SpannIndex.build(ids, vectors, metric="l2", config=CONFIG, path=tmp_path).close()
    clean = SpannIndex.load(tmp_path)
    want = [clean.search(q, 10, params={"max_postings": 4}) for q in queries]
    clean.close()
    flip_bits(tmp_path, 3)
    index = SpannIndex.load(tmp_path)  # the open checks cannot see it: the list bytes are read lazily
    answered = lost = 0
    for q, (scores, found) in zip(queries, want):
        try:
            got = index.search(q, 10, params={"max_postings": 4})
        except DataLoss as exc:
            assert "fail their CRC32C" in str(exc)
            lost += 1
            continue
        answered += 1  # a query that read no damaged list: the undamaged index's answer
        np.testing.assert_array_equal(got[1], found)
        np.testing.assert_array_equal(got[0], scores)
    assert lost and answered
    with pytest.raises(DataLoss):  # compaction reads every list: refused, the old generation stays
        index.compact()
    index.close()


def test_the_unchecked_reader_serves_the_damage(tmp_path):
    """What the check prevents (and that the flips above do reach the scores)."""
    ids, vectors, queries = corpus()
    SpannIndex.build(ids, vectors, metric="l2", config=CONFIG, path=tmp_path).close()
    clean = SpannIndex.load(tmp_path)
    want = clean.search(queries, 10)
    clean.close()
    flip_bits(tmp_path, 40)
    index = SpannIndex.load(tmp_path, overrides={"verify_reads": False})
    got = index.search(queries, 10)
    assert not np.array_equal(got[0], want[0])
    index.close()


def test_a_version_1_index_is_refused_with_a_clear_error(tmp_path):
    ids, vectors, _ = corpus()
    SpannIndex.build(ids[:600], vectors[:600], metric="l2", config=CONFIG, path=tmp_path).close()
    import json

    manifest = json.loads((tmp_path / files.MANIFEST).read_text())
    manifest["version"] = 1
    (tmp_path / files.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptIndex, match="v1 index .* rebuild it"):
        SpannIndex.load(tmp_path)
