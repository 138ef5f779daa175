"""Re-rotated cached keys equal a direct prefill at the offset, for every rope type re-rotation supports;
the others are refused and the cache falls back to a full prefill."""

from __future__ import annotations

import pytest
import torch
from kvcache_models import chunk, plain, tiny_llama

from lamina.rag.kvcache import ChunkKVCache, UnsupportedRotary, rerotate, rotary_spec
from lamina.rag.kvcache.prefiller import full_prefill, prefill_chunk

SUPPORTED = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 2.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128},
}


@pytest.mark.parametrize("rope", sorted(SUPPORTED))
@pytest.mark.parametrize("offset", [1, 37, 300])
def test_rerotated_keys_equal_a_direct_prefill_at_the_offset(rope, offset):
    model = tiny_llama(SUPPORTED[rope])
    spec = rotary_spec(model)
    assert spec.rope_type == rope
    if rope == "yarn":   # the case where applying attention_scaling twice would show
        assert model.model.rotary_emb.attention_scaling != 1.0
    tokens = chunk("c", 24, seed=3).token_ids
    at_zero = prefill_chunk(model, tokens)
    with torch.no_grad():
        out = model.model(input_ids=torch.tensor([tokens]), position_ids=torch.arange(offset, offset + 24)[None],
                          use_cache=True)
    direct = torch.stack([layer.keys[0] for layer in out.cache.layers])
    moved = rerotate(at_zero.keys, torch.full((24,), offset), spec.inv_freq)
    scale = direct.abs().max()
    assert torch.max(torch.abs(moved - direct)) <= 2e-5 * scale
    # the values do not rotate: equal up to the rounding of attention over other relative offsets
    values = torch.stack([layer.values[0] for layer in out.cache.layers])
    assert torch.allclose(at_zero.values, values, atol=1e-4)


UNSUPPORTED = {
    "dynamic": ({"rope_type": "dynamic", "factor": 2.0}, {}),
    "longrope": ({"rope_type": "longrope", "short_factor": [1.0] * 8, "long_factor": [2.0] * 8,
                  "original_max_position_embeddings": 128}, {}),
    "partial": ({"rope_type": "default", "partial_rotary_factor": 0.5}, {}),
    "mrope": ({"rope_type": "default", "mrope_section": [2, 3, 3]}, {}),
}


@pytest.mark.parametrize("setup", sorted(UNSUPPORTED))
def test_unsupported_rotary_setups_are_refused_and_reuse_is_off(setup):
    rope, overrides = UNSUPPORTED[setup]
    model = tiny_llama(rope, **overrides)
    with pytest.raises(UnsupportedRotary):
        rotary_spec(model)
    with pytest.raises(UnsupportedRotary):
        ChunkKVCache(strict=True).prefill(model, [chunk("a", 8, 1), plain(4, 2)])
    segments = [plain(5, 9), chunk("a", 12, 1), plain(4, 2)]
    result = ChunkKVCache().prefill(model, segments)
    assert result.stats["reuse"].startswith("off:") and result.stats["hits"] == 0
    _, logits = full_prefill(model, torch.tensor([t for s in segments for t in s.token_ids]))
    assert torch.equal(result.logits, logits)
