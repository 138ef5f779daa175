"""The tiers: disk files with checksums, budgets, eviction, invalidation, model changes."""

from __future__ import annotations

import logging
import os

import pytest
import torch
from kvcache_models import chunk, plain, tiny_llama

from lamina.index.errors import InvalidArgument
from lamina.rag.kvcache import ChunkKV, ChunkKVCache, ChunkStore, Recompute
from lamina.rag.kvcache.store import Entry, ExpectedSavings, LRU, Tier
from lamina.rag.types import Segment

PROMPT = [plain(5, 40), chunk("a", 20, 1), plain(3, 41), chunk("b", 16, 2), plain(6, 42)]


def disk_only(directory, **options):
    return ChunkKVCache(memory_bytes=0, disk_bytes=64 << 20, directory=directory,
                        recompute=Recompute("none"), **options)


def test_disk_entries_survive_a_restart_as_float16(model, tmp_path):
    first = disk_only(tmp_path).prefill(model, PROMPT)
    assert len(list(tmp_path.glob("*.kv"))) == 2 and first.stats["misses"] == 2
    again = disk_only(tmp_path).prefill(model, PROMPT)
    assert again.stats["hits"] == 2
    assert torch.allclose(again.logits, first.logits, atol=5e-2)   # float16 on disk


def test_a_file_failing_its_checksum_is_recomputed_never_used(model, tmp_path, caplog):
    reference = ChunkKVCache(memory_bytes=0, disk_bytes=0, recompute=Recompute("none"))
    disk_only(tmp_path).prefill(model, PROMPT)
    for path in tmp_path.glob("*.kv"):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    cache = disk_only(tmp_path)
    with caplog.at_level(logging.WARNING):
        result = cache.prefill(model, PROMPT)
    assert result.stats["misses"] == 2 and "checksum" in caplog.text
    # the recomputed entries equal a fresh computation: nothing of the damaged file was served
    fresh = ChunkKVCache(recompute=Recompute("none"))
    fresh.prefill(model, PROMPT)
    assert torch.allclose(result.logits, fresh.prefill(model, PROMPT).logits, atol=1e-5)
    assert reference.store.enabled is False


def test_an_unwritable_directory_warns_and_stays_memory_only(model, tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        cache = ChunkKVCache(memory_bytes=64 << 20, disk_bytes=64 << 20, directory=blocked / "kv",
                             recompute=Recompute("none"))
    assert "memory-only" in caplog.text and not cache.store.disk.enabled
    cache.prefill(model, PROMPT)
    assert cache.prefill(model, PROMPT).stats["hits"] == 2


def test_a_changed_text_or_a_deleted_chunk_is_never_served(model, tmp_path):
    cache = ChunkKVCache(memory_bytes=64 << 20, disk_bytes=64 << 20, directory=tmp_path, recompute=Recompute("none"))
    cache.prefill(model, PROMPT)
    changed = list(PROMPT)
    changed[1] = Segment(token_ids=chunk("x", 20, 7).token_ids, chunk_key=("tiny", "a", "h7"))
    result = cache.prefill(model, changed)
    assert (result.stats["hits"], result.stats["misses"]) == (1, 1)
    assert not any(key[2] == "h1" for key in cache.store.memory.entries)   # the old text is dropped
    assert cache.invalidate("a") == 1
    assert not any(key[1] == "a" for key in [*cache.store.memory.entries, *cache.store.disk.tier.entries])
    assert cache.prefill(model, changed).stats["misses"] == 1


def test_a_model_change_gives_new_keys(model):
    cache = ChunkKVCache(recompute=Recompute("none"))
    cache.prefill(model, PROMPT)
    other = tiny_llama(seed=1)
    result = cache.prefill(other, PROMPT)
    assert result.stats["misses"] == 2
    assert len({key[0] for key in cache.store.memory.entries}) == 2
    assert torch.equal(result.logits, ChunkKVCache(recompute=Recompute("none")).prefill(other, PROMPT).logits)


def test_the_memory_budget_holds_and_spills_to_disk(model, tmp_path):
    one = ChunkKVCache(recompute=Recompute("none"))
    one.prefill(model, PROMPT)
    size = max(entry.nbytes for entry in one.store.memory.entries.values())
    cache = ChunkKVCache(memory_bytes=size, disk_bytes=64 << 20, directory=tmp_path, recompute=Recompute("none"))
    cache.prefill(model, PROMPT)
    assert cache.store.memory_bytes_used <= size and len(cache.store.memory.entries) == 1
    assert len(cache.store.disk.tier.entries) == 1   # the evicted one was spilled
    assert cache.prefill(model, PROMPT).stats["hits"] == 2


def kv(tokens):
    return ChunkKV(keys=torch.zeros(1, 1, tokens, 4), values=torch.zeros(1, 1, tokens, 4))


@pytest.mark.parametrize("policy,survivor", [(LRU(), "cold"), (ExpectedSavings(), "hot")])
def test_eviction_orders_by_policy(policy, survivor):
    tier = Tier(budget=2 * kv(8).nbytes, policy=policy)
    tier.admit("hot", Entry(nbytes=kv(8).nbytes, cost=8))
    for _ in range(5):
        tier.touch("hot")
    tier.admit("cold", Entry(nbytes=kv(8).nbytes, cost=8))
    tier.admit("new", Entry(nbytes=kv(8).nbytes, cost=8))
    assert set(tier.entries) == {survivor, "new"} and tier.used <= tier.budget


def test_bad_budgets_are_named(tmp_path):
    with pytest.raises(InvalidArgument, match="budgets"):
        ChunkStore(memory_bytes=-1)
    with pytest.raises(InvalidArgument, match="directory"):
        ChunkStore(disk_bytes=10)
    with pytest.raises(InvalidArgument, match="eviction"):
        ChunkStore(eviction="random")
    assert ChunkStore(memory_bytes=0).enabled is False and os.path.isdir(tmp_path)
