"""The pure kernels of the scatter-gather: routing, per-stage merge, facet merge (no Ray needed)."""

from __future__ import annotations

import numpy as np
import pytest
from lamina.index.errors import InvalidArgument
from lamina.index.facets import FacetCount, FacetResult, NumericStats
from lamina.retrieval.sharded.merge import dense_ids, merge_facets, merge_ranked
from lamina.retrieval.sharded.routing import check_route, group, shard_of, shards_of


def test_shard_of_is_stable_and_spreads():
    keys = [f"doc-{i}" for i in range(4000)]
    owners = shards_of(keys, 4)
    assert owners.tolist() == [shard_of(k, 4) for k in keys]
    counts = np.bincount(owners, minlength=4)
    assert counts.min() > 900  # blake2b spreads ids evenly
    # a fixed digest: the same shard in every process (Python's hash() would be salted)
    assert shard_of("doc-0", 1024) == int.from_bytes(__import__("hashlib").blake2b(b"doc-0", digest_size=8).digest(),
                                                     "little") % 1024


def test_group_keeps_input_order():
    owners = np.array([2, 0, 2, 1, 0])
    assert [g.tolist() for g in group(owners, 3)] == [[1, 4], [3], [0, 2]]


def test_check_route_rejects_bad_input():
    with pytest.raises(InvalidArgument, match="routing"):
        check_route("hash", 2)
    with pytest.raises(InvalidArgument, match="shard count"):
        check_route("id", 0)


def test_merge_ranked_equals_global_sort():
    rng = np.random.default_rng(0)
    ids = np.array([f"d{i:03d}" for i in range(60)], dtype=object)
    scores = rng.random(60).astype(np.float32)
    scores[[3, 7]] = scores[5]  # ties: broken by document id
    parts = [(list(ids[s::3]), scores[s::3]) for s in range(3)]
    got_ids, got_scores = merge_ranked(parts, 10)
    order = sorted(range(60), key=lambda i: (-float(scores[i]), ids[i]))[:10]
    assert got_ids.tolist() == ids[order].tolist()
    np.testing.assert_array_equal(got_scores, scores[order])


def test_dense_ids_follow_lexicographic_order():
    vocab, lists = dense_ids([np.array(["b", "a"], dtype=object), np.array(["c", "b"], dtype=object)])
    assert vocab.tolist() == ["a", "b", "c"]
    assert [x.tolist() for x in lists] == [[1, 0], [2, 1]]


def test_merge_facets_sums_counts_and_combines_stats():
    kw = [FacetResult("k", "keyword", 3, (FacetCount("x", 2), FacetCount("y", 1)), 2),
          FacetResult("k", "keyword", 2, (FacetCount("y", 2),), 1)]
    merged = merge_facets(kw, 1)
    assert merged.documents == 5 and merged.distinct == 2
    assert merged.counts == (FacetCount("y", 3),)
    num = [FacetResult("n", "numeric", 2, stats=NumericStats(2, 1.0, 4.0, (0.0, 5.0, 10.0), (2, 0))),
           FacetResult("n", "numeric", 1, stats=NumericStats(1, 7.0, 7.0, (0.0, 5.0, 10.0), (0, 1)))]
    merged = merge_facets(num, 10)
    assert merged.stats == NumericStats(3, 1.0, 7.0, (0.0, 5.0, 10.0), (2, 1))
