"""`ChunkKVCache`, the chunk-KV cache as a `Prefiller`: per-chunk caches reused at any position (re-rotated),
the rest prefilled, a chosen few cached tokens recomputed (see `blend`), counters in `PrefillResult.stats`.

A prompt's segments with a `chunk_key` are looked up by (model fingerprint, chunk id, text hash); a miss is
prefilled alone at position 0 and stored (that prefill is counted as computed). Reuse is off, and the
prompt fully prefilled, when the caches hold nothing (budgets of zero) or the model's rotary setup cannot
be re-rotated exactly (`UnsupportedRotary`, logged once per model; `strict=True` raises it instead).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import torch

from lamina.rag.kvcache.blend import Recompute, blend_prefill
from lamina.rag.kvcache.rope import RotarySpec, UnsupportedRotary, rerotate, rotary_spec
from lamina.rag.kvcache.store import ChunkCacheKey, ChunkKV, ChunkStore
from lamina.rag.types import PrefillResult, Segment

log = logging.getLogger(__name__)


def model_fingerprint(model: Any, model_id: str = "") -> str:
    """Model id, revision, dtype and a digest of a few weights: another model (or checkpoint) never
    matches an old entry, even under the same name."""
    config = model.config
    digest = hashlib.sha256()
    base = model.model
    for tensor in (base.embed_tokens.weight[:2], base.layers[-1].self_attn.k_proj.weight[:2]):
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    revision = getattr(config, "_commit_hash", None) or ""
    return f"{model_id or config.name_or_path}@{revision}:{next(model.parameters()).dtype}:{digest.hexdigest()[:16]}"


@torch.no_grad()
def full_prefill(model: Any, token_ids: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """The plain prefill: the cache and the last position's logits."""
    out = model(input_ids=token_ids[None], use_cache=True, logits_to_keep=1)
    return out.cache, out.logits[0, -1]


@torch.no_grad()
def prefill_chunk(model: Any, token_ids: Sequence[int]) -> ChunkKV:
    """A chunk prefilled alone at position 0: keys and values (layers, kv_heads, tokens, head_dim)."""
    out = model.model(input_ids=torch.as_tensor(list(token_ids), dtype=torch.long)[None], use_cache=True)
    layers = out.cache.layers
    return ChunkKV(keys=torch.stack([layer.keys[0] for layer in layers]),
                   values=torch.stack([layer.values[0] for layer in layers]))


class ChunkKVCache:
    """A `Prefiller` that reuses chunk KV caches.

    memory_bytes, disk_bytes: the budgets of the two tiers (0 turns a tier off; both 0: caching off);
    directory: the disk tier's folder; eviction: "savings" (frequency x tokens saved / bytes) or "lru";
    recompute: a `Recompute` (policy, ratio, check_layer, first_tokens); strict: raise `UnsupportedRotary`
    rather than fall back to a full prefill."""

    name = "chunk-kv"

    def __init__(self, memory_bytes: int = 256 << 20, disk_bytes: int = 0, directory: str | os.PathLike | None = None,
                 eviction: str = "savings", recompute: Recompute | None = None, strict: bool = False):
        self.store = ChunkStore(memory_bytes=memory_bytes, disk_bytes=disk_bytes, directory=directory,
                                eviction=eviction)
        self.recompute = recompute or Recompute()
        self.strict = strict
        self._refused: dict[int, str] = {}
        self._lock = threading.RLock()   # the store's dicts, when a server answers questions concurrently

    def supports(self, model: Any) -> RotarySpec:
        """The model's rotary spec, or `UnsupportedRotary` naming why reuse is off for it."""
        return rotary_spec(model)

    def _spec_or_none(self, model: Any) -> RotarySpec | None:
        try:
            return rotary_spec(model)
        except UnsupportedRotary as err:
            if self.strict:
                raise
            if id(model) not in self._refused:
                log.warning("chunk-KV reuse is off for this model: %s", err)
            self._refused[id(model)] = str(err)
            return None

    def _key(self, fingerprint: str, segment: Segment) -> ChunkCacheKey:
        _, chunk_id, text_hash = segment.chunk_key
        return (fingerprint, chunk_id, text_hash)

    def lookup(self, model: Any, segment: Segment, fingerprint: str | None = None, persist: bool = False
               ) -> tuple[ChunkKV, bool]:
        """The segment's chunk cache and whether it was a hit (a miss is prefilled alone and stored)."""
        fingerprint = fingerprint or model_fingerprint(model, segment.chunk_key[0])
        key = self._key(fingerprint, segment)
        dtype = next(model.parameters()).dtype
        with self._lock:
            kv = self.store.get(key, dtype=dtype)
        if kv is not None and kv.tokens == len(segment.token_ids):
            return kv, True
        kv = prefill_chunk(model, segment.token_ids)
        with self._lock:
            self.store.put(key, kv, persist=persist)
        return kv, False

    @torch.no_grad()
    def warm(self, model: Any, segments: Sequence[Segment], persist: bool = True) -> int:
        """Prefills the chunk segments not cached yet (to disk when `persist` and a disk tier exist);
        the number newly computed."""
        if self._spec_or_none(model) is None or not self.store.enabled:
            return 0
        return sum(not self.lookup(model, segment, persist=persist)[1] for segment in segments
                   if segment.chunk_key is not None)

    def invalidate(self, chunk_id: str) -> int:
        """Drops every cached entry of `chunk_id` (deleted or changed); the number dropped."""
        with self._lock:
            return self.store.invalidate(chunk_id)

    @torch.no_grad()
    def prefill(self, model: Any, segments: Sequence[Segment]) -> PrefillResult:
        start = time.perf_counter()
        token_ids = torch.as_tensor([t for segment in segments for t in segment.token_ids], dtype=torch.long)
        spec = self._spec_or_none(model) if self.store.enabled else None
        if spec is None or not any(segment.chunk_key for segment in segments):
            cache, logits = full_prefill(model, token_ids)
            stats = self._stats(len(token_ids), computed=len(token_ids), reused=0, recomputed=0, hits=0, misses=0,
                                nbytes=0, start=start)
            if spec is None:
                stats["reuse"] = "off: " + (self._refused.get(id(model)) or "cache budgets are zero")
            return PrefillResult(past_key_values=cache, logits=logits, stats=stats)
        return self._blend(model, segments, token_ids, spec, start)

    def _blend(self, model: Any, segments: Sequence[Segment], token_ids: torch.Tensor, spec: RotarySpec,
               start: float) -> PrefillResult:
        config = model.config
        n_layers, heads = config.num_hidden_layers, config.num_key_value_heads
        fingerprint = model_fingerprint(model, next(s.chunk_key[0] for s in segments if s.chunk_key))
        dtype = next(model.parameters()).dtype
        keys, values, chunk_of, deltas = [], [], [], []
        hits = misses = miss_tokens = nbytes = offset = chunks = 0
        for segment in segments:
            length = len(segment.token_ids)
            if segment.chunk_key is None or length == 0:
                blank = torch.zeros(n_layers, heads, length, spec.head_dim, dtype=dtype)
                keys.append(blank), values.append(blank)
                chunk_of.append(torch.full((length,), -1, dtype=torch.long))
            else:
                kv, hit = self.lookup(model, segment, fingerprint)
                hits, misses = hits + hit, misses + (not hit)
                miss_tokens += 0 if hit else length
                nbytes += kv.nbytes
                keys.append(kv.keys), values.append(kv.values)
                chunk_of.append(torch.full((length,), chunks, dtype=torch.long))
                chunks += 1
            deltas.append(torch.full((length,), offset, dtype=torch.long))
            offset += length
        delta = torch.cat(deltas)
        assembled = rerotate(torch.cat(keys, dim=2), delta, spec.inv_freq)
        chunk_index = torch.cat(chunk_of)
        out = blend_prefill(model, token_ids, chunk_index, assembled, torch.cat(values, dim=2), self.recompute)
        n = len(token_ids)
        cached = int((chunk_index >= 0).sum())
        computed = miss_tokens + out.token_layers / n_layers
        stats = self._stats(n, computed=computed, reused=cached - out.recomputed, recomputed=out.recomputed,
                            hits=hits, misses=misses, nbytes=nbytes, start=start)
        stats["policy"] = self.recompute.label()
        stats["tokens_prefilled_alone"] = miss_tokens
        return PrefillResult(past_key_values=out.cache, logits=out.logits, stats=stats)

    def _stats(self, tokens: int, *, computed: float, reused: int, recomputed: int, hits: int, misses: int,
               nbytes: int, start: float) -> dict[str, Any]:
        return {"tokens": tokens, "tokens_computed": round(float(computed), 1), "tokens_reused": reused,
                "tokens_recomputed": recomputed, "hits": hits, "misses": misses, "bytes": nbytes,
                "cache_memory_bytes": self.store.memory_bytes_used, "cache_disk_bytes": self.store.disk_bytes_used,
                "prefill_ms": round((time.perf_counter() - start) * 1000.0, 3)}
