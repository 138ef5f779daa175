"""Tiny random Llama models (float32) for the chunk-KV cache tests."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lamina.rag.types import Segment

VOCAB = 96


def tiny_llama(rope_parameters: dict | None = None, seed: int = 0, **overrides) -> LlamaForCausalLM:
    """A 4-layer Llama with 2 KV heads of 16 dims (GQA), random weights, float32, eval mode."""
    torch.manual_seed(seed)
    fields = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False)
    if rope_parameters is not None:
        fields["rope_parameters"] = {"rope_theta": 10000.0, **rope_parameters}
    fields.update(overrides)
    config = LlamaConfig(**fields)
    config._attn_implementation = "sdpa"
    model = LlamaForCausalLM(config).eval()
    # larger random weights than the default init: attention patterns then depend on context
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(4.0)
    return model


def ids(seed: int, n: int) -> list[int]:
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def chunk(name: str, n: int, seed: int, model_id: str = "tiny") -> Segment:
    return Segment(token_ids=ids(seed, n), chunk_key=(model_id, name, f"h{seed}"))


def plain(n: int, seed: int) -> Segment:
    return Segment(token_ids=ids(seed, n))
