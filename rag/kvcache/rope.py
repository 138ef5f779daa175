"""RoPE re-rotation of cached keys (CacheBlend's position recovery, as in LMCache's blender).

A chunk's keys are cached as prefilled alone at position 0, after RoPE: `k0 = s·k` (rotation by 0 is the
identity; `s` is the rotary `attention_scaling`, 1 except for yarn). RoPE is a rotation per frequency pair, so
the key of the same token at position `Δ + i` is `R(Δ)·k0`, computed here as

    k' = k0·cos(Δθ) + rotate_half(k0)·sin(Δθ),   θ = rotary_emb.inv_freq, in float32

with the *unscaled* cos/sin: `k0` already carries `s`, so applying the model's scaled cos/sin would count
yarn's `attention_scaling` twice.

Exact re-rotation needs frequencies that do not depend on the sequence length and cover the whole head:
`default`, `linear`, `llama3` and `yarn` qualify; dynamic-NTK and longrope (frequencies change with the
length), partial rotary and mrope are refused (`UnsupportedRotary`), which turns reuse off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lamina.index.errors import InvalidArgument

EXACT_ROPE_TYPES = ("default", "linear", "llama3", "yarn")


class UnsupportedRotary(InvalidArgument):
    """The model's rotary setup cannot be re-rotated exactly: chunk-KV reuse is off for it."""


@dataclass(frozen=True)
class RotarySpec:
    """What re-rotation needs from a model: its rope type and its float32 inverse frequencies (head_dim/2,)."""

    rope_type: str
    inv_freq: torch.Tensor
    head_dim: int


def _rope_parameters(config: Any) -> dict[str, Any]:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if params and all(isinstance(value, dict) for value in params.values()):
        raise UnsupportedRotary("per-layer-type rope parameters are not supported by the chunk-KV cache")
    return dict(params)


def rotary_spec(model: Any) -> RotarySpec:
    """The model's rotary setup, or `UnsupportedRotary` naming why it cannot be re-rotated exactly."""
    config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
    base = getattr(model, "model", model)
    rotary = getattr(base, "rotary_emb", None)
    if rotary is None or not hasattr(rotary, "inv_freq"):
        raise UnsupportedRotary(f"{type(model).__name__} has no rotary_emb.inv_freq: not a RoPE model")
    params = _rope_parameters(config)
    rope_type = str(params.get("rope_type", params.get("type", getattr(rotary, "rope_type", "default"))))
    if rope_type not in EXACT_ROPE_TYPES:
        raise UnsupportedRotary(f"rope_type {rope_type!r} cannot be re-rotated exactly (its frequencies depend on "
                                "the sequence length or are not per-position); supported: "
                                + ", ".join(EXACT_ROPE_TYPES))
    if params.get("mrope_section") or getattr(config, "mrope_section", None):
        raise UnsupportedRotary("mrope (multimodal rotary sections) cannot be re-rotated by one offset")
    partial = float(params.get("partial_rotary_factor", getattr(config, "partial_rotary_factor", 1.0) or 1.0))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    inv_freq = rotary.inv_freq.detach().to(torch.float32)
    if partial < 1.0 or 2 * inv_freq.shape[-1] != head_dim:
        raise UnsupportedRotary(f"partial rotary (factor {partial}, {2 * inv_freq.shape[-1]} of {head_dim} dims "
                                "rotated) is not supported")
    return RotarySpec(rope_type=rope_type, inv_freq=inv_freq.clone(), head_dim=int(head_dim))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Llama's rotate_half: (x1, x2) -> (-x2, x1) over the last dimension's halves."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rerotate(keys: torch.Tensor, deltas: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Keys moved by `deltas` positions: keys (..., T, D) of any float dtype, deltas (T,) integer offsets.

    Computed in float32 (cos/sin exactly as the model's rotary embedding forms them, without its scaling)
    and returned in the keys' dtype."""
    freqs = deltas.to(torch.float32)[:, None] * inv_freq.to(device=keys.device, dtype=torch.float32)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    k = keys.to(torch.float32)
    return (k * emb.cos() + rotate_half(k) * emb.sin()).to(keys.dtype)
