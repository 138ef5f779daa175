"""The plain `Prefiller`: runs the causal LM over every prompt token, in one forward pass.

It is the reference a chunk-KV cache (`lamina.rag.kvcache`) is measured and checked against: the
same segments, the same model, a cache covering every prompt token and the last position's logits.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from lamina.index.errors import InvalidArgument
from lamina.rag.types import PrefillResult, Segment


def segment_ids(segments: Sequence[Segment]) -> np.ndarray:
    """The segments' token ids concatenated, in order (int64)."""
    if not segments:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.asarray(s.token_ids, dtype=np.int64).reshape(-1) for s in segments])


@lru_cache(maxsize=16)
def _cache_kwarg(forward_class: type) -> str:
    # transformers >= 5.2x names the argument `cache` (and warns on `past_key_values`); older ones do not
    return "cache" if "cache" in inspect.signature(forward_class.forward).parameters else "past_key_values"


def forward_with_cache(model: Any, input_ids: Any, cache: Any, *, logits_to_keep: int = 1) -> Any:
    """`model(input_ids, <cache>=cache, use_cache=True)` whichever name this transformers gives the cache
    argument; `cache` is extended in place and the output's logits cover the last `logits_to_keep` positions."""
    kwargs = {_cache_kwarg(type(model)): cache}
    return model(input_ids=input_ids, use_cache=True, logits_to_keep=logits_to_keep, **kwargs)


class FullPrefill:
    """Computes the KV cache of every prompt token with one forward pass over the concatenation."""

    name = "full"

    def prefill(self, model: Any, segments: Sequence[Segment]) -> PrefillResult:
        import torch
        from transformers import DynamicCache

        ids = segment_ids(segments)
        if ids.size == 0:
            raise InvalidArgument("prefill of an empty prompt: the segments hold no tokens")
        start = time.perf_counter()
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            out = forward_with_cache(model, torch.from_numpy(ids).view(1, -1), cache)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        stats = {"prefiller": self.name, "tokens_computed": int(ids.size), "tokens_reused": 0,
                 "segments": len(segments), "prefill_ms": elapsed_ms}
        return PrefillResult(past_key_values=cache, logits=out.logits[0, -1], stats=stats)
