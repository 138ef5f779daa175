"""Which shard owns a point: a stable hash of its id (or of its tenant), the same in every process.

Python's `hash()` is salted per process, so ids are hashed with blake2b (8-byte digest, taken as
an unsigned integer modulo the shard count): a point goes to the same shard on every host and
after every restart, which is what lets a restarted shard recover its own points from its own store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from lamina.index.errors import InvalidArgument

ROUTES = ("id", "tenant")


def shard_of(key: str, shards: int) -> int:
    """The shard (0 .. shards-1) of one routing key."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def shards_of(keys: Sequence[str], shards: int) -> np.ndarray:
    """The shard of every key, (n,) int64."""
    return np.fromiter((shard_of(k, shards) for k in keys), dtype=np.int64, count=len(keys))


def check_route(route: str, shards: int) -> None:
    if route not in ROUTES:
        raise InvalidArgument(f"unknown shard routing {route!r}; expected one of {', '.join(ROUTES)}")
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 1024:
        raise InvalidArgument(f"shard count must be an integer in [1, 1024], got {shards!r}")


def group(owners: np.ndarray, shards: int) -> list[np.ndarray]:
    """Positions of the items each shard owns, in input order: list of (n_s,) int64."""
    order = np.argsort(owners, kind="stable")
    bounds = np.searchsorted(owners[order], np.arange(shards + 1))
    return [order[bounds[s]:bounds[s + 1]] for s in range(shards)]
