"""Where chunk KV caches live: a memory tier under a byte budget, spilling to a disk tier under a second
budget, each evicting by a small policy (expected savings, RAGCache's PGDSF idea, or LRU).

An entry is one chunk prefilled alone at position 0 by one model: `keys`, `values` of shape
(layers, kv_heads, tokens, head_dim), keys after RoPE. Its key is `(model fingerprint, chunk id, text hash)`,
so a changed text or another model never finds an old entry; `invalidate(chunk_id)` drops every entry
of a chunk. On disk an entry is two files named by the key's sha256: `<h>.kv`, the raw float16 array
(2, layers, kv_heads, tokens, head_dim), memory-mapped on load, and `<h>.json`, its key, shape and CRC32C.
A file whose checksum fails is deleted and reported as a miss (the caller recomputes it), never served.
An unwritable directory gives a warning and the store stays memory-only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import google_crc32c
import numpy as np
import torch

from lamina.index.errors import InvalidArgument

log = logging.getLogger(__name__)

ChunkCacheKey = tuple[str, str, str]   # (model fingerprint, chunk id, chunk text hash)


@dataclass
class ChunkKV:
    """One chunk's cache: keys and values (layers, kv_heads, tokens, head_dim), keys after RoPE at 0."""

    keys: torch.Tensor
    values: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.keys.shape[-2])

    @property
    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()


@dataclass
class Entry:
    """Book-keeping of one cached chunk in a tier: its size, the tokens a hit saves, its use."""

    nbytes: int
    cost: int
    hits: int = 1
    last_used: int = 0
    priority: float = 0.0
    kv: ChunkKV | None = None


class EvictionPolicy(Protocol):
    """Orders entries for eviction: the lowest `priority` goes first."""

    name: str

    def priority(self, entry: Entry, clock: float, tick: int) -> float: ...


class LRU:
    """Least recently used goes first (the baseline)."""

    name = "lru"

    def priority(self, entry: Entry, clock: float, tick: int) -> float:
        return float(tick)


class ExpectedSavings:
    """Greedy-dual-size-frequency (RAGCache's PGDSF without the prefix tree): frequency x the prefill tokens
    a hit saves / bytes held, plus the aging clock (the priority of the last evicted entry)."""

    name = "savings"

    def priority(self, entry: Entry, clock: float, tick: int) -> float:
        return clock + entry.hits * entry.cost / max(entry.nbytes, 1)


POLICIES: dict[str, type] = {"savings": ExpectedSavings, "lru": LRU}


def eviction_policy(name: str) -> EvictionPolicy:
    if name not in POLICIES:
        raise InvalidArgument(f"unknown eviction policy {name!r}; expected one of {sorted(POLICIES)}")
    return POLICIES[name]()


@dataclass
class Tier:
    """Entries under a byte budget; `admit` evicts the lowest priorities to make room and returns them."""

    budget: int
    policy: EvictionPolicy
    entries: dict[ChunkCacheKey, Entry] = field(default_factory=dict)
    used: int = 0
    clock: float = 0.0
    tick: int = 0

    def touch(self, key: ChunkCacheKey) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.tick += 1
            entry.hits += 1
            entry.last_used = self.tick
            entry.priority = self.policy.priority(entry, self.clock, self.tick)
        return entry

    def admit(self, key: ChunkCacheKey, entry: Entry) -> list[tuple[ChunkCacheKey, Entry]] | None:
        """Adds `entry`, evicting as needed; None when it can never fit (the budget is smaller)."""
        if entry.nbytes > self.budget:
            return None
        self.tick += 1
        entry.last_used = self.tick
        entry.priority = self.policy.priority(entry, self.clock, self.tick)
        evicted = []
        while self.used + entry.nbytes > self.budget and self.entries:
            victim = min(self.entries, key=lambda k: self.entries[k].priority)
            self.clock = max(self.clock, self.entries[victim].priority) if self.policy.name == "savings" else 0.0
            evicted.append((victim, self.remove(victim)))
        self.entries[key] = entry
        self.used += entry.nbytes
        return evicted

    def remove(self, key: ChunkCacheKey) -> Entry:
        entry = self.entries.pop(key)
        self.used -= entry.nbytes
        return entry


def _file_stem(key: ChunkCacheKey) -> str:
    return hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:40]


class DiskTier:
    """Chunk caches as memory-mapped float16 files with a CRC32C, under a byte budget."""

    def __init__(self, directory: str | os.PathLike, budget: int, policy: EvictionPolicy):
        self.directory = Path(directory)
        self.tier = Tier(budget=budget, policy=policy)
        self.enabled = budget > 0 and self._writable()
        if self.enabled:
            self._scan()

    def _writable(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".probe-"):
                pass
            return True
        except OSError as err:
            log.warning("chunk-KV cache directory %s is not writable (%s): the cache is memory-only",
                        self.directory, err)
            return False

    def _scan(self) -> None:
        """Rebuilds the index from the manifests on disk (a warm cache survives a restart)."""
        for meta_path in sorted(self.directory.glob("*.json")):
            try:
                meta = json.loads(meta_path.read_text())
                key = tuple(meta["key"])
                nbytes = int(np.prod(meta["shape"])) * 2
            except (OSError, ValueError, KeyError):
                continue
            if self.tier.admit(key, Entry(nbytes=nbytes, cost=int(meta["shape"][3]))) is None:
                self._delete(key)

    def keys(self) -> Iterator[ChunkCacheKey]:
        return iter(list(self.tier.entries))

    def _paths(self, key: ChunkCacheKey) -> tuple[Path, Path]:
        stem = _file_stem(key)
        return self.directory / f"{stem}.kv", self.directory / f"{stem}.json"

    def put(self, key: ChunkCacheKey, kv: ChunkKV) -> bool:
        if not self.enabled or key in self.tier.entries:
            return self.enabled
        array = torch.stack([kv.keys, kv.values]).to(torch.float16).contiguous().numpy()
        evicted = self.tier.admit(key, Entry(nbytes=array.nbytes, cost=kv.tokens))
        if evicted is None:
            return False
        for victim, _ in evicted:
            self._delete(victim)
        data_path, meta_path = self._paths(key)
        meta = {"key": list(key), "shape": list(array.shape), "dtype": "float16",
                "crc32c": int(google_crc32c.value(array.tobytes()))}
        try:
            for path, payload in ((data_path, array.tobytes()), (meta_path, json.dumps(meta).encode())):
                tmp = path.with_suffix(path.suffix + ".tmp")
                with open(tmp, "wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
        except OSError as err:
            log.warning("could not write chunk-KV cache file %s (%s)", data_path, err)
            self.tier.remove(key)
            return False
        return True

    def get(self, key: ChunkCacheKey) -> ChunkKV | None:
        """The entry, checksum-verified; None when absent or damaged (damaged files are deleted)."""
        if not self.enabled or key not in self.tier.entries:
            return None
        data_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            shape = tuple(meta["shape"])
            payload = np.memmap(data_path, dtype=np.float16, mode="r", shape=shape).tobytes()
            ok = tuple(meta["key"]) == key and int(google_crc32c.value(payload)) == meta["crc32c"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("chunk-KV cache file %s unreadable (%s): deleted, recomputing", data_path, err)
            self._delete(key)
            return None
        if not ok:
            log.warning("chunk-KV cache file %s failed its checksum: deleted, recomputing", data_path)
            self._delete(key)
            return None
        self.tier.touch(key)
        tensor = torch.frombuffer(bytearray(payload), dtype=torch.float16).view(shape)
        return ChunkKV(keys=tensor[0], values=tensor[1])

    def _delete(self, key: ChunkCacheKey) -> None:
        if key in self.tier.entries:
            self.tier.remove(key)
        for path in self._paths(key):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                log.warning("could not delete chunk-KV cache file %s (%s)", path, err)

    def invalidate(self, chunk_id: str) -> int:
        victims = [key for key in self.tier.entries if key[1] == chunk_id]
        for key in victims:
            self._delete(key)
        return len(victims)


class ChunkStore:
    """The two tiers. `get` looks in memory, then on disk (a disk hit is promoted to memory in `dtype`);
    `put` stores in memory, spilling what memory evicts to disk. Budgets of zero store nothing."""

    def __init__(self, memory_bytes: int = 256 << 20, disk_bytes: int = 0, directory: str | os.PathLike | None = None,
                 eviction: str = "savings"):
        if memory_bytes < 0 or disk_bytes < 0:
            raise InvalidArgument(f"cache budgets must be >= 0, got memory {memory_bytes}, disk {disk_bytes}")
        if disk_bytes and directory is None:
            raise InvalidArgument("a disk budget needs a cache directory")
        self.memory = Tier(budget=memory_bytes, policy=eviction_policy(eviction))
        self.disk = DiskTier(directory, disk_bytes, eviction_policy(eviction)) if directory is not None and disk_bytes \
            else None

    @property
    def enabled(self) -> bool:
        return self.memory.budget > 0 or (self.disk is not None and self.disk.enabled)

    def get(self, key: ChunkCacheKey, dtype: torch.dtype = torch.float32) -> ChunkKV | None:
        entry = self.memory.touch(key)
        if entry is not None:
            return entry.kv
        kv = self.disk.get(key) if self.disk is not None else None
        if kv is not None:
            kv = ChunkKV(keys=kv.keys.to(dtype), values=kv.values.to(dtype))
            self._admit_memory(key, kv)
        return kv

    def put(self, key: ChunkCacheKey, kv: ChunkKV, persist: bool = False) -> None:
        """Stores `kv`, dropping older texts of the same chunk; `persist` writes it to disk at once."""
        stale = [k for k in self.memory.entries if k[:2] == key[:2] and k != key]
        for k in stale:
            self.memory.remove(k)
        if self.disk is not None:
            for k in [k for k in self.disk.tier.entries if k[:2] == key[:2] and k != key]:
                self.disk._delete(k)
        if persist and self.disk is not None:
            self.disk.put(key, kv)
        if not persist or self.memory.budget:
            self._admit_memory(key, kv)

    def _admit_memory(self, key: ChunkCacheKey, kv: ChunkKV) -> None:
        if key in self.memory.entries:
            return
        evicted = self.memory.admit(key, Entry(nbytes=kv.nbytes, cost=kv.tokens, kv=kv))
        if evicted is None:   # larger than the memory budget: straight to disk
            if self.disk is not None:
                self.disk.put(key, kv)
            return
        for victim, entry in evicted:
            if self.disk is not None and entry.kv is not None:
                self.disk.put(victim, entry.kv)

    def invalidate(self, chunk_id: str) -> int:
        """Drops every entry of `chunk_id` (any model, any text); the count dropped."""
        victims = [key for key in self.memory.entries if key[1] == chunk_id]
        for key in victims:
            self.memory.remove(key)
        return len(victims) + (self.disk.invalidate(chunk_id) if self.disk is not None else 0)

    @property
    def memory_bytes_used(self) -> int:
        return self.memory.used

    @property
    def disk_bytes_used(self) -> int:
        return self.disk.tier.used if self.disk is not None else 0
