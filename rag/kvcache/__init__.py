"""Chunk-KV cache reuse for RAG generation (issue 22): per-chunk KV caches reused at any position by RoPE
re-rotation, selective recompute (CacheBlend, EPIC, adaptive), memory and disk tiers with eviction."""

from lamina.rag.kvcache.blend import Recompute
from lamina.rag.kvcache.prefiller import ChunkKVCache, model_fingerprint
from lamina.rag.kvcache.rope import UnsupportedRotary, rerotate, rotary_spec
from lamina.rag.kvcache.store import ChunkKV, ChunkStore

__all__ = ["ChunkKV", "ChunkKVCache", "ChunkStore", "Recompute", "UnsupportedRotary", "model_fingerprint",
           "rerotate", "rotary_spec"]
