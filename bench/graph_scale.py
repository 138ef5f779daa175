"""The entity graph at scale, on synthetic data: PPR latency and one-document writes at ~100k nodes.

PPR: a bipartite chunk-entity graph with a power-law entity popularity (Zipf, exponent 1.1; each chunk
mentions 8 entities), 30% entities and 70% chunks, plus the co-occurrence edges of each chunk's
entities. Each query seeds 3 random entities and 100 random chunks (the first-stage hits, at 0.05 of
their weight, as the graph stage does); exact PPR (power iteration) and the local push are timed
per query, and the push's top-10 chunks are compared with the exact ones.

Writes: a collection (vectors given, a 32-d hash encoder for the entity names, the regex extractor)
whose texts name synthetic entities drawn from the same law, grown to the node count; then the
insert and the delete of one new document (8 entities) are timed, and the graph after them is
compared with a rebuild from the live chunks (`EntityGraph.canonical`).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lamina.index.graph import ChunkEntities, EntityGraph, adjacency, ppr_power, ppr_push

PER_CHUNK = 8
ZIPF = 1.1


class HashEncoder:
    """Unit vectors from a hash of the text: deterministic, no model (entity names at scale)."""

    name = "hash32"
    dim = 32

    def encode_documents(self, texts):
        out = np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    encode_queries = encode_documents


def _mentions(rng: np.random.Generator, n_chunks: int, n_entities: int) -> np.ndarray:
    """(n_chunks, PER_CHUNK) entity numbers, popularity ~ rank^-ZIPF, distinct within a chunk."""
    p = 1.0 / np.arange(1, n_entities + 1) ** ZIPF
    draws = rng.choice(n_entities, size=(n_chunks, PER_CHUNK * 2), p=p / p.sum())
    draws.sort(axis=1)
    dup = np.zeros_like(draws, bool)
    dup[:, 1:] = draws[:, 1:] == draws[:, :-1]
    draws[dup] = rng.integers(0, n_entities, dup.sum())  # rare: a uniform entity instead
    return draws[:, :PER_CHUNK]


def ppr_latency(n_nodes: int, *, queries: int = 50, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n_ent = int(n_nodes * 0.3)
    n_chunk = n_nodes - n_ent
    ment = _mentions(rng, n_chunk, n_ent)
    chunk_nodes = np.repeat(np.arange(n_chunk) + n_ent, PER_CHUNK)
    a, b = np.triu_indices(PER_CHUNK, 1)
    src = np.concatenate([chunk_nodes, ment[:, a].ravel()])
    dst = np.concatenate([ment.ravel(), ment[:, b].ravel()])
    w = np.concatenate([np.ones(len(chunk_nodes)), np.full(len(a) * n_chunk, 0.2)])
    matrix = adjacency(n_nodes, src, dst, w)
    exact_ms, push_ms, overlap, l1 = [], [], [], []
    exact_cpu, push_cpu = [], []   # this process's CPU time: on a shared machine, wall time includes the wait
    for _ in range(queries):
        personal = np.zeros(n_nodes)
        personal[rng.choice(n_ent, 3, replace=False)] = 1.0
        personal[n_ent + rng.choice(n_chunk, 100, replace=False)] += 0.05 * rng.random(100)
        t0, c0 = time.perf_counter(), time.process_time()
        exact = ppr_power(matrix, personal)
        t1, c1 = time.perf_counter(), time.process_time()
        push, _ = ppr_push(matrix, personal, eps=1e-7)
        t2, c2 = time.perf_counter(), time.process_time()
        exact_ms.append(1e3 * (t1 - t0))
        push_ms.append(1e3 * (t2 - t1))
        exact_cpu.append(1e3 * (c1 - c0))
        push_cpu.append(1e3 * (c2 - c1))
        top_e = set(np.argsort(-exact[n_ent:])[:10].tolist())
        top_p = set(np.argsort(-push[n_ent:])[:10].tolist())
        overlap.append(len(top_e & top_p) / 10)
        l1.append(float(np.abs(exact - push).sum()))
    return {"nodes": n_nodes, "entities": n_ent, "chunks": n_chunk, "edges": int(matrix.nnz // 2),
            "ppr_exact_p50_ms": float(np.median(exact_ms[1:])), "ppr_push_p50_ms": float(np.median(push_ms[1:])),
            "ppr_exact_cpu_p50_ms": float(np.median(exact_cpu[1:])), "ppr_push_cpu_p50_ms": float(np.median(push_cpu[1:])),
            "push_top10_overlap": float(np.mean(overlap)), "push_l1_error": float(np.mean(l1)),
            "ppr_queries": queries}


def _text(entities: np.ndarray) -> str:
    return " x ".join(f"E{e}" for e in entities.tolist()) + " x"


def write_latency(n_nodes: int, *, trials: int = 20, seed: int = 1) -> dict[str, Any]:
    from lamina.retrieval.collection import Database

    rng = np.random.default_rng(seed)
    n_ent = int(n_nodes * 0.3)
    n_chunk = n_nodes - n_ent
    ment = _mentions(rng, n_chunk + trials, n_ent)
    encoder = HashEncoder()
    with tempfile.TemporaryDirectory(prefix="lamina-graph-scale-") as tmp:
        db = Database(Path(tmp), encoder_loader=lambda name: encoder)
        coll = db.create_collection("scale", encoder="hash32", sparse=False, graph={"extractor": "regex"})
        vec = encoder.encode_documents(["v"])[0]
        started = time.perf_counter()
        for start in range(0, n_chunk, 5000):
            coll.upsert([{"id": f"d{i}", "text": _text(ment[i]), "vector": vec}
                         for i in range(start, min(start + 5000, n_chunk))])
        build_s = time.perf_counter() - started
        graph = coll.graph_side.graph
        nodes = len(graph) + len(graph.chunks)
        insert_ms, delete_ms = [], []
        for t in range(trials):
            doc = {"id": f"new{t}", "text": _text(ment[n_chunk + t]), "vector": vec}
            t0 = time.perf_counter()
            coll.upsert([doc])
            t1 = time.perf_counter()
            if t % 2 == 0:  # keep half of them, so that the check below sees inserts and deletes
                coll.delete([doc["id"]])
                delete_ms.append(1e3 * (time.perf_counter() - t1))
            insert_ms.append(1e3 * (t1 - t0))
        equal = graph.canonical() == rebuild(coll).canonical()
        db.close()
    return {"write_nodes": nodes, "write_build_s": build_s, "insert_p50_ms": float(np.median(insert_ms)),
            "delete_p50_ms": float(np.median(delete_ms)), "equal_to_rebuild": equal, "write_trials": trials}


def rebuild(coll: Any) -> EntityGraph:
    """The graph a rebuild gives: every live chunk of the store planned in one write."""
    side = coll.graph_side
    docs = list(coll.store.iter_documents(coll.name))
    mentions = side.extract([d.text for d in docs])
    fresh = EntityGraph(side.graph.dim, synonym_threshold=side.graph.synonym_threshold,
                        max_cooc=side.graph.max_cooc, cooc_weight=side.graph.cooc_weight)
    chunks = [ChunkEntities(d.iid, d.tenant, tuple(m.key for m in ms), tuple(m.name for m in ms),
                            tuple(m.weight for m in ms)) for d, ms in zip(docs, mentions)]
    encode = side.encoder.encode_documents if side.encoder is not None else None
    fresh.commit(fresh.plan(chunks, [], encode))
    return fresh


def run_scale(n_nodes: int = 100_000) -> dict[str, Any]:
    return {**ppr_latency(n_nodes), **write_latency(n_nodes)}


if __name__ == "__main__":  # python -m lamina.bench.graph_scale [NODES] [OUT.json]: the scale part alone
    import json
    import sys

    result = run_scale(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    text = json.dumps({"benchmark": "graph-scale", "results": [result]}, indent=2)
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_text(text + "\n")
    print(text)
