"""Assembly and selective recompute: a prompt's KV cache built from re-rotated chunk caches, with the
uncached tokens (template head, separators, question) and a chosen few cached tokens computed at their
true positions, attending over the assembled cache.

The model's decoder layers are driven one by one (Llama-style: `model.model.layers`, `rotary_emb`,
`norm`, `lm_head`). Each layer of the cache is a `ScatterLayer`: it holds the whole prompt's K/V and its
`update` writes the computed tokens' fresh K/V in place at their slots (index-scatter), so a stale copy
never survives to be attended; the 4-D mask is then causal in true positions, one row per computed token.

Policies (`Recompute`):
  none        only the uncached tokens
  cacheblend  CacheBlend (EuroSys'25; LMCache's blender): every token through layers 0..check_layer, then
              the `ratio` of cached tokens whose keys deviate most at check_layer (sum((k - k_cached)^2))
              go on through the later layers, the rest keep their cache
  epic        EPIC (ICML'25): the first `first_tokens` of each chunk, through every layer
  adaptive    in the spirit of Cache-Craft: the check layer as in cacheblend, then a per-chunk budget
              `ratio * len * score/max(score)`, score = the chunk's mean relative key deviation, so that
              chunks whose cache barely changes in context spend (almost) nothing
  full        every token (ratio 1): the full prefill, through the same path
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from lamina.index.errors import InvalidArgument

POLICIES = ("none", "cacheblend", "epic", "adaptive", "full")


@dataclass(frozen=True)
class Recompute:
    """Which cached tokens to recompute: `policy` (see the module docstring), `ratio` of cached tokens
    (cacheblend; the per-chunk ceiling for adaptive), `check_layer` (cacheblend, adaptive: the layer whose
    key deviation selects), `first_tokens` per chunk (epic)."""

    policy: str = "cacheblend"
    ratio: float = 0.15
    check_layer: int = 1
    first_tokens: int = 32

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidArgument(f"unknown recompute policy {self.policy!r}; expected one of {POLICIES}")
        if not 0.0 <= self.ratio <= 1.0:
            raise InvalidArgument(f"recompute ratio must be in [0, 1], got {self.ratio}")
        if self.check_layer < 0 or self.first_tokens < 0:
            raise InvalidArgument("check_layer and first_tokens must be >= 0")

    @property
    def checks(self) -> bool:
        return self.policy in ("cacheblend", "adaptive") and 0.0 < self.ratio < 1.0

    def label(self) -> str:
        if self.policy == "epic":
            return f"epic-{self.first_tokens}"
        if self.policy in ("none", "full"):
            return self.policy
        return f"{self.policy}-{self.ratio:g}"


class ScatterLayer(DynamicLayer):
    """A DynamicLayer that, while `index` is set, writes the new tokens' K/V at those slots in place and
    returns the whole cache; with `index` None it appends, as DynamicLayer does (generation goes on)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values
        self.index: torch.Tensor | None = None
        self.previous_keys: torch.Tensor | None = None
        self.record = False

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if self.index is None:
            return super().update(key_states, value_states, *args, **kwargs)
        if self.record:
            self.previous_keys = self.keys.index_select(-2, self.index)
        self.keys.index_copy_(-2, self.index, key_states.to(self.keys.dtype))
        self.values.index_copy_(-2, self.index, value_states.to(self.values.dtype))
        return self.keys, self.values


def _causal_rows(positions: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
    """The additive mask (1, 1, len(positions), length): row q sees slots 0..positions[q]."""
    visible = torch.arange(length, device=positions.device)[None, :] <= positions[:, None]
    mask = torch.zeros(visible.shape, dtype=dtype, device=positions.device)
    return mask.masked_fill_(~visible, torch.finfo(dtype).min)[None, None]


def chunk_starts(chunk_of: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """The first position of each chunk (n_chunks,), from chunk_of (N,) (-1 = uncached)."""
    positions = torch.arange(chunk_of.shape[0])
    starts = torch.full((n_chunks,), chunk_of.shape[0], dtype=torch.long)
    cached = chunk_of >= 0
    return starts.scatter_reduce_(0, chunk_of[cached], positions[cached], reduce="amin")


def epic_selection(chunk_of: torch.Tensor, n_chunks: int, first_tokens: int) -> torch.Tensor:
    """EPIC: the first `first_tokens` positions of each chunk (bool, N)."""
    cached = chunk_of >= 0
    offset = torch.arange(chunk_of.shape[0]) - chunk_starts(chunk_of, n_chunks)[chunk_of.clamp(min=0)]
    return cached & (offset < first_tokens)


def cacheblend_selection(deviation: torch.Tensor, cached: torch.Tensor, ratio: float) -> torch.Tensor:
    """CacheBlend: the round(ratio * cached) cached positions of largest deviation (bool, N)."""
    k = int(round(ratio * int(cached.sum())))
    chosen = torch.zeros_like(cached)
    if k:
        scores = deviation.masked_fill(~cached, float("-inf"))
        chosen[torch.topk(scores, k).indices] = True
    return chosen & cached


def adaptive_selection(deviation: torch.Tensor, chunk_of: torch.Tensor, n_chunks: int, ratio: float,
                       key_norm: torch.Tensor) -> torch.Tensor:
    """Per-chunk budgets scaled by each chunk's mean relative key deviation; inside a chunk the most
    deviating tokens (bool, N). deviation, key_norm: (N,) squared deviation and squared cached-key norm."""
    cached = chunk_of >= 0
    index = chunk_of.clamp(min=0)
    relative = torch.where(cached, deviation / key_norm.clamp(min=1e-12), torch.zeros_like(deviation))
    lengths = torch.bincount(index[cached], minlength=n_chunks).to(torch.float32)
    score = torch.zeros(n_chunks).index_add_(0, index[cached], relative[cached]) / lengths.clamp(min=1)
    budget = torch.round(ratio * lengths * score / score.max().clamp(min=1e-12)).long()
    # rank of each token inside its chunk by deviation: sort by deviation, then stably by chunk
    order = torch.argsort(relative, descending=True, stable=True)
    order = order[torch.argsort(chunk_of[order], stable=True)]
    grouped = chunk_of[order]
    first = torch.searchsorted(grouped, grouped, side="left")
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.shape[0]) - first
    return cached & (rank < budget[index])


@dataclass
class BlendOutput:
    cache: DynamicCache
    logits: torch.Tensor
    token_layers: int          # sum over layers of the tokens computed there
    recomputed: int            # cached tokens recomputed through the last layer


def blend_prefill(model: Any, token_ids: torch.Tensor, chunk_of: torch.Tensor, keys: torch.Tensor,
                  values: torch.Tensor, recompute: Recompute) -> BlendOutput:
    """Prefills `token_ids` (N,) over an assembled cache. chunk_of (N,): the chunk of each position, -1
    where uncached; keys, values (layers, kv_heads, N, head_dim): the re-rotated chunk caches (anything at
    uncached slots: they are computed before any read). Returns the cache, ready for decoding."""
    base = model.model
    layers = base.layers[: model.config.num_hidden_layers]
    n, n_chunks = token_ids.shape[0], int(chunk_of.max()) + 1 if chunk_of.numel() else 0
    cached = chunk_of >= 0
    cache_layers = [ScatterLayer(keys[i][None].contiguous(), values[i][None].contiguous()) for i in range(len(layers))]
    cache = DynamicCache()
    cache.layers = cache_layers
    everything = recompute.policy == "full" or (recompute.policy in ("cacheblend", "adaptive") and recompute.ratio >= 1)
    if everything or recompute.checks:
        compute = torch.ones(n, dtype=torch.bool)
    elif recompute.policy == "epic":
        compute = ~cached | epic_selection(chunk_of, n_chunks, recompute.first_tokens)
    else:
        compute = ~cached.clone()
    compute[-1] = True   # the last position's logits are the result
    dtype = next(model.parameters()).dtype
    positions = torch.nonzero(compute).squeeze(1)
    hidden = base.embed_tokens(token_ids[positions][None])
    token_layers = 0
    mask, cos_sin = _causal_rows(positions, n, dtype), base.rotary_emb(hidden, positions[None])
    for i, layer in enumerate(layers):
        cache_layers[i].index = positions
        cache_layers[i].record = recompute.checks and i == recompute.check_layer
        hidden = layer(hidden, attention_mask=mask, position_ids=positions[None], cache=cache,
                       position_embeddings=cos_sin, use_cache=True)
        token_layers += int(positions.shape[0])
        if cache_layers[i].record:
            chosen = _select_after_check(cache_layers[i], positions, chunk_of, n_chunks, recompute)
            keep = ~cached[positions] | chosen[positions]
            keep[-1] = True
            positions, hidden, mask = positions[keep], hidden[:, keep], mask[:, :, keep]
            cos_sin = tuple(part[:, keep] for part in cos_sin)
            cache_layers[i].record, cache_layers[i].previous_keys = False, None
    for layer in cache_layers:
        layer.index = None
    recomputed = int(cached[positions].sum())
    logits = model.lm_head(base.norm(hidden[:, -1:]))[0, -1]
    return BlendOutput(cache=cache, logits=logits, token_layers=token_layers, recomputed=recomputed)


def _select_after_check(layer: ScatterLayer, positions: torch.Tensor, chunk_of: torch.Tensor, n_chunks: int,
                        recompute: Recompute) -> torch.Tensor:
    """The cached positions (bool, N) to carry past the check layer, from the fresh vs cached keys there."""
    n = chunk_of.shape[0]
    fresh = layer.keys.index_select(-2, positions).float()
    old = layer.previous_keys.float()
    deviation = torch.zeros(n).index_copy_(0, positions, ((fresh - old) ** 2).sum(dim=(0, 1, 3)))
    if recompute.policy == "cacheblend":
        return cacheblend_selection(deviation, chunk_of >= 0, recompute.ratio)
    key_norm = torch.zeros(n).index_copy_(0, positions, (old ** 2).sum(dim=(0, 1, 3)))
    return adaptive_selection(deviation, chunk_of, n_chunks, recompute.ratio, key_norm)
