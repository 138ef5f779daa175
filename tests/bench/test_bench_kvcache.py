"""The chunk-KV benchmark's pure parts: the Zipf workload, the prefix baseline, deviation, eviction."""

from __future__ import annotations

import numpy as np
import torch

from lamina.bench.kvcache import deviation, eviction_pass, longest_shared_prefix, workload, zipf_exponent


def test_the_zipf_exponent_puts_the_asked_share_on_the_top_ranks():
    s = zipf_exponent(200, top=0.05, share=0.6)
    weights = np.arange(1, 201, dtype=np.float64) ** -s
    assert abs(weights[:10].sum() / weights.sum() - 0.6) < 1e-6


def test_workload_prompts_hold_four_to_eight_distinct_chunks():
    chunks = [(f"c{i}", "text", 128 + i % 100) for i in range(100)]
    plan, info = workload(chunks, ["q1", "q2"], 30, seed=1)
    assert len(plan) == 30 and all(4 <= len(p) <= 8 and len({c[0] for c in p}) == len(p) for p, _ in plan)
    assert 0 < info["top5pct_share_of_chunk_draws"] <= 1


def test_longest_shared_prefix_matches_brute_force():
    rng = np.random.default_rng(0)
    earlier = [rng.integers(0, 3, 12) for _ in range(5)]
    tokens = rng.integers(0, 3, 12)
    brute = max(next((i for i in range(12) if e[i] != tokens[i]), 12) for e in earlier)
    assert longest_shared_prefix(tokens, earlier) == brute
    assert longest_shared_prefix(tokens, []) == 0


def test_deviation_of_identical_and_of_differing_distributions():
    reference = torch.log_softmax(torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]]), -1)
    same = deviation(reference, [0, 1], reference)
    assert same == {"kl": 0.0, "top1": 1.0, "exact": 1.0}
    other = torch.log_softmax(torch.tensor([[2.0, 0.0, -1.0], [3.0, 0.0, 0.0]]), -1)
    moved = deviation(reference, [0, 1], other)
    assert moved["kl"] > 0 and moved["top1"] == 0.5 and moved["exact"] == 0.0


def test_eviction_pass_counts_hits_under_each_budget():
    chunks = [(f"c{i}", "text", 128) for i in range(100)]
    rows = eviction_pass(chunks, bytes_per_token=1024, prompts=200, seed=0, fractions=(0.1,))
    by = {row["config"].split(",")[0]: row for row in rows}
    assert set(by) == {"savings", "lru"} and all(row["tokens_avoided"] > 0 for row in rows)
    # frequency-aware eviction keeps the Zipf head: it avoids at least as much as LRU
    assert by["savings"]["tokens_avoided"] >= by["lru"]["tokens_avoided"]
