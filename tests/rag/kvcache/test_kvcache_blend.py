"""Assembly and selective recompute against the full prefill of the same tokens."""

from __future__ import annotations

import pytest
import torch
from kvcache_models import chunk, plain

from lamina.index.errors import InvalidArgument
from lamina.rag.kvcache import ChunkKVCache, Recompute
from lamina.rag.kvcache.blend import adaptive_selection, cacheblend_selection, epic_selection
from lamina.rag.kvcache.prefiller import full_prefill


def reference(model, segments):
    return full_prefill(model, torch.tensor([t for s in segments for t in s.token_ids]))


def rag_prompt(question_seed=50, head=6, order=("a", "b", "c")):
    sizes = {"a": (20, 1), "b": (17, 2), "c": (25, 3)}
    segments = [plain(head, 40)]
    for i, name in enumerate(order):
        n, seed = sizes[name]
        segments += [chunk(name, n, seed), plain(2 + i, 60 + i)]
    return segments + [plain(7, question_seed)]


def test_an_exact_prefix_reused_gives_the_same_logits(model):
    cache = ChunkKVCache(recompute=Recompute("none"))
    segments = [chunk("a", 20, 1), plain(7, 50)]
    first = cache.prefill(model, segments)
    second = cache.prefill(model, segments)
    assert (first.stats["misses"], second.stats["hits"]) == (1, 1)
    assert second.stats["tokens_reused"] == 20 and second.stats["tokens_computed"] == 7
    _, logits = reference(model, segments)
    assert torch.max(torch.abs(second.logits - logits)) < 1e-5
    assert torch.equal(first.logits, second.logits)


@pytest.mark.parametrize("recompute", [Recompute("full"), Recompute("cacheblend", ratio=1.0),
                                       Recompute("adaptive", ratio=1.0)])
def test_full_recompute_gives_the_full_prefill_logits_and_cache(model, recompute):
    cache = ChunkKVCache(recompute=recompute)
    segments = rag_prompt()
    cache.prefill(model, segments)
    result = cache.prefill(model, segments)
    assert result.stats["hits"] == 3 and result.stats["tokens_recomputed"] == 62
    full_cache, logits = reference(model, segments)
    assert torch.max(torch.abs(result.logits - logits)) < 1e-4
    for mine, theirs in zip(result.past_key_values.layers, full_cache.layers):
        assert torch.allclose(mine.keys, theirs.keys, atol=1e-4)
        assert torch.allclose(mine.values, theirs.values, atol=1e-4)
    # decoding goes on from the returned cache as from the full one
    step = torch.tensor([[5]])
    mine = model(input_ids=step, cache=result.past_key_values, use_cache=True).logits[0, -1]
    theirs = model(input_ids=step, cache=full_cache, use_cache=True).logits[0, -1]
    assert torch.max(torch.abs(mine - theirs)) < 1e-4


def test_a_chunk_hits_whatever_its_separators_and_offset(model):
    cache = ChunkKVCache(recompute=Recompute("none"))
    cache.prefill(model, rag_prompt(head=6, order=("a", "b", "c")))
    result = cache.prefill(model, rag_prompt(question_seed=51, head=11, order=("c", "a", "b")))
    assert (result.stats["hits"], result.stats["misses"]) == (3, 0)
    assert result.stats["tokens_reused"] == 62


def test_partial_recompute_recomputes_some_cached_tokens_and_reuse_alone_deviates(model):
    segments = rag_prompt()
    _, logits = reference(model, segments)
    errors = {}
    for recompute in (Recompute("none"), Recompute("cacheblend", 0.5), Recompute("epic", first_tokens=8),
                      Recompute("adaptive", 0.5)):
        cache = ChunkKVCache(recompute=recompute)
        cache.prefill(model, segments)
        result = cache.prefill(model, segments)
        errors[recompute.label()] = float(torch.max(torch.abs(result.logits - logits)))
        assert 0 < result.stats["tokens_recomputed"] < 62 or recompute.policy == "none"
    assert errors["none"] > 1e-3   # the tiny model does depend on cross-chunk attention


def test_zero_budgets_turn_caching_off_with_the_full_prefill_outputs(model):
    cache = ChunkKVCache(memory_bytes=0, disk_bytes=0)
    segments = rag_prompt()
    for _ in range(2):
        result = cache.prefill(model, segments)
        assert result.stats["hits"] == 0 and result.stats["tokens_computed"] == sum(len(s.token_ids) for s in segments)
    _, logits = reference(model, segments)
    assert torch.equal(result.logits, logits)


def test_selections_match_a_brute_force_reading():
    chunk_of = torch.tensor([-1, -1, 0, 0, 0, 0, -1, 1, 1, 1, -1, 2, 2])
    assert epic_selection(chunk_of, 3, 2).nonzero().squeeze(1).tolist() == [2, 3, 7, 8, 11, 12]
    deviation = torch.tensor([9.0, 9, 1, 5, 3, 2, 9, 8, 0, 7, 9, 4, 6])
    chosen = cacheblend_selection(deviation, chunk_of >= 0, 0.34)   # 3 of 9 cached tokens
    assert chosen.nonzero().squeeze(1).tolist() == [7, 9, 12]
    norms = torch.ones(13)
    picked = adaptive_selection(deviation, chunk_of, 3, 1.0, norms)
    # chunk means: 2.75, 5, 5 -> budgets round(4 * 0.55)=2, 3, 2: the top of each chunk
    assert picked.nonzero().squeeze(1).tolist() == [3, 4, 7, 8, 9, 11, 12]
    half = adaptive_selection(deviation, chunk_of, 3, 0.5, norms)
    assert half.nonzero().squeeze(1).tolist() == [3, 7, 9, 12]


def test_bad_recompute_options_are_named():
    with pytest.raises(InvalidArgument, match="policy"):
        Recompute("sometimes")
    with pytest.raises(InvalidArgument, match="ratio"):
        Recompute("cacheblend", ratio=1.5)


def test_reuse_without_recompute_matches_transformers_over_the_concatenated_rerotated_caches(model):
    """The reference: the chunks' re-rotated caches concatenated into a DynamicCache, then transformers'
    own forward over the question at its positions (its own causal mask)."""
    from transformers.cache_utils import DynamicCache

    from lamina.rag.kvcache import rerotate, rotary_spec
    from lamina.rag.kvcache.prefiller import prefill_chunk

    chunks = [chunk("a", 20, 1), chunk("b", 17, 2), chunk("c", 25, 3)]
    question = plain(7, 50)
    cache = ChunkKVCache(recompute=Recompute("none"))
    result = cache.prefill(model, [*chunks, question])
    inv_freq = rotary_spec(model).inv_freq
    keys, values, offset = [], [], 0
    for segment in chunks:
        kv = prefill_chunk(model, segment.token_ids)
        keys.append(rerotate(kv.keys, torch.full((kv.tokens,), offset), inv_freq))
        values.append(kv.values)
        offset += kv.tokens
    keys, values = torch.cat(keys, dim=2), torch.cat(values, dim=2)
    reference = DynamicCache(ddp_cache_data=[(keys[i][None], values[i][None]) for i in range(keys.shape[0])])
    with torch.no_grad():
        out = model(input_ids=torch.tensor([question.token_ids]), cache=reference, use_cache=True,
                    position_ids=torch.arange(offset, offset + 7)[None])
    assert torch.max(torch.abs(out.logits[0, -1] - result.logits)) < 1e-5
