"""A dense encoder whose embeddings are cached on disk by text, for benchmarks that re-encode the same texts.

The graph benchmark builds several collections over one corpus and encodes every entity name too; with
all-MiniLM-L6-v2 on a shared 2-core machine that is minutes each time. `CachedEncoder` wraps any encoder:
texts it has seen come from the cache (`<dir>/<name>.npy` vectors + `<name>.keys.json` texts' sha1), the
rest are encoded in one batch and appended. Documents and queries share the cache: the default encoder
embeds both the same way (a wrapped encoder that does not is the caller's to keep apart with `name`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class CachedEncoder:
    def __init__(self, inner, cache_dir: str | Path, *, name: str | None = None) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "encoder")
        self.dim = int(inner.dim)
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        stem = name or hashlib.sha1(self.name.encode()).hexdigest()[:12]
        self._vec_path, self._key_path = self.dir / f"{stem}.npy", self.dir / f"{stem}.keys.json"
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._vectors = np.empty((0, self.dim), np.float32)
        if self._vec_path.is_file() and self._key_path.is_file():
            keys = json.loads(self._key_path.read_text())
            vectors = np.load(self._vec_path)
            if len(keys) == len(vectors):
                self._index = {k: i for i, k in enumerate(keys)}
                self._vectors = vectors
        self.misses = 0

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [_key(t) for t in texts]
        with self._lock:
            missing = sorted({k: t for k, t in zip(keys, texts) if k not in self._index}.items())
            if missing:
                fresh = np.asarray(self.inner.encode_documents([t for _, t in missing]), dtype=np.float32)
                start = len(self._vectors)
                self._vectors = np.concatenate([self._vectors, fresh])
                self._index.update({k: start + i for i, (k, _) in enumerate(missing)})
                self.misses += len(missing)
            rows = np.fromiter((self._index[k] for k in keys), dtype=np.int64, count=len(keys))
            return self._vectors[rows]

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def save(self) -> None:
        with self._lock:
            keys = [None] * len(self._index)
            for k, i in self._index.items():
                keys[i] = k
            tmp = self._vec_path.with_name(self._vec_path.name + ".tmp.npy")
            np.save(tmp, self._vectors)
            tmp.replace(self._vec_path)
            self._key_path.write_text(json.dumps(keys))
