"""A distributed build: a Ray Data pipeline from a BEIR/JSONL corpus into a sharded collection.

    read_text(corpus.jsonl) -> parse (records; bad lines counted, not fatal)
        -> map_batches(_Embed, concurrency=actors): the dense model loaded once per actor
        -> the router: points already in the collection are skipped (a re-run completes a partial
           build), the rest are upserted to their owning shards (id hash, or tenant)

The dense vectors are computed in the actor pool; the router sends them on, so shards never load
the model, and the BM25 weights every shard writes use the global statistics (see
`lamina.retrieval.sharded.collection`). Not done yet: global training for IVF/SPANN kinds (each
shard trains its own index on its own points); flat and HNSW need none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from lamina.index.errors import InvalidArgument
from lamina.index.types import DEFAULT_ENCODER, Document
from lamina.retrieval.corpus import corpus_file, count_lines, parse_record
from lamina.retrieval.sharded.collection import ShardedCollection
from lamina.retrieval.sharded.runtime import ensure_ray


def _parse(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Lines -> records; a bad line becomes a row with an empty id (counted, not written)."""
    ids, texts, metadata = [], [], []
    for raw in batch["text"]:
        if not str(raw).strip():
            continue
        try:
            point = parse_record(str(raw))
        except InvalidArgument:
            point = {"id": "", "text": "", "metadata": {}}
        ids.append(point["id"])
        texts.append(point["text"])
        metadata.append(json.dumps(point["metadata"]))
    return {"id": np.array(ids, dtype=object), "text": np.array(texts, dtype=object),
            "metadata": np.array(metadata, dtype=object)}


class _Embed:
    """A Ray Data actor: loads the dense model once, embeds each batch's texts."""

    def __init__(self, encoder: str, loader: Callable[[str], Any] | None) -> None:
        from lamina.retrieval.encoders.dense import load_dense_encoder

        self.model = (loader or load_dense_encoder)(encoder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        vectors = self.model.encode_documents([str(t) for t in batch["text"]]) if len(batch["id"]) else \
            np.zeros((0, self.model.dim), np.float32)
        return {**batch, "vector": np.asarray(vectors, dtype=np.float32)}


def build_sharded(corpus: str | Path, root: str | Path, name: str, shards: int = 2, *, route: str = "id",
                  encoder: str = DEFAULT_ENCODER, actors: int = 2, num_cpus: float = 1.0, batch_size: int = 256,
                  address: str | None = None, encoder_loader: Callable[[str], Any] | None = None,
                  progress: Callable[[int], None] | None = None, **options: Any) -> dict[str, Any]:
    """Build (or complete) sharded collection `name` in `root` from `corpus`; returns counts and timings."""
    import ray

    ensure_ray(address)
    started = time.perf_counter()
    path = corpus_file(corpus)
    kwargs = {"encoder_loader": encoder_loader} if encoder_loader is not None else {}
    coll = ShardedCollection.create(root, name, shards, route=route, encoder=encoder, **kwargs, **options)
    ds = ray.data.read_text(str(path)).map_batches(_parse, batch_format="numpy", batch_size=batch_size)
    ds = ds.map_batches(_Embed, fn_constructor_args=(encoder, encoder_loader), concurrency=actors,
                        num_cpus=num_cpus, batch_format="numpy", batch_size=batch_size)
    written = skipped = bad = 0
    try:
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            lines = len(batch["id"])
            keep = [j for j, i in enumerate(batch["id"]) if i]
            bad += lines - len(keep)
            batch = {key: value[keep] for key, value in batch.items()}
            ids = [str(i) for i in batch["id"]]
            present = {d.id for d in coll.get(ids) if d is not None}
            docs = [Document(i, str(t), v, json.loads(m)) for i, t, v, m in
                    zip(ids, batch["text"], batch["vector"], batch["metadata"]) if i not in present]
            skipped += len(ids) - len(docs)
            if docs:
                rows = coll.upsert(docs)
                bad += sum(not r.ok for r in rows)
                written += sum(r.ok for r in rows)
            if progress is not None:
                progress(lines)
        coll.snapshot()
        documents = coll.count()
    finally:
        coll.close()
    seconds = time.perf_counter() - started
    return {"collection": name, "shards": shards, "lines": count_lines(path), "written": written,
            "skipped": skipped, "bad": bad, "documents": documents, "seconds": round(seconds, 3),
            "docs_per_s": round(written / seconds, 1) if seconds else None}
