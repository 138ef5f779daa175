"""`lamina bench encode`: what encoding costs, and what a learned sparse model buys.

Two reports, each measured side by side in one process:

- `run_encode_once`: a collection build through `Collection.upsert` in batches of 256 (what
  `lamina build` runs), dense-only against dense + `--multivector` (one shared forward pass), with
  the old two-pass encoding (the dense encoder, then the token encoder) timed on the same texts
  for reference; forward passes are counted by a hook on the model's transformer module, per
  batch of documents and per reranked search.
- `run_sparse_quality`: BM25, SPLADE-tiny (inference-free table queries and model-encoded
  queries) and dense MiniLM on a BEIR directory, alone and fused (RRF and weighted, two and
  three ways), with nDCG@10, recall@100, the sparse index's size and documents/s to encode.
  Sparse rankings come from Lamina's `SparseIndex`, dense ones from exact inner products.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from lamina.bench.datasets import load_beir
from lamina.bench.quality import _ranked, exact_top_k, score_run

BUILD_BATCH = 256
DEPTH = 100


class ForwardCounter:
    """Counts forward passes through a sentence-transformers model's first (transformer) module."""

    def __init__(self, model: Any) -> None:
        self.calls = 0
        self._handle = model[0].register_forward_hook(lambda *args: self._count())

    def _count(self) -> None:
        self.calls += 1

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls

    def close(self) -> None:
        self._handle.remove()


def _build(db: Any, name: str, docs: list[dict], **options: Any) -> float:
    """Seconds to upsert `docs` in build batches into a new collection."""
    coll = db.create_collection(name, sparse=None, **options)
    started = time.perf_counter()
    for start in range(0, len(docs), BUILD_BATCH):
        coll.upsert(docs[start:start + BUILD_BATCH], wait=False)
    return time.perf_counter() - started


def run_encode_once(dataset_dir: str | Path, *, max_docs: int = 512, n_queries: int = 20,
                    kappa: int = 20) -> dict[str, Any]:
    """Documents/s of dense-only and multivector builds, two-pass reference, forwards counted."""
    from lamina.retrieval.collection import Database
    from lamina.retrieval.encoders.dense import load_dense_encoder
    from lamina.retrieval.encoders.multivector import SentenceTransformerTokenEncoder

    beir = load_beir(dataset_dir)
    texts = beir.doc_texts[:max_docs]
    docs = [{"id": i, "text": t} for i, t in zip(beir.doc_ids, texts)]
    dense = load_dense_encoder()
    dense.encode_documents(texts[:16])  # warm-up: first-call allocations out of the timings
    counter = ForwardCounter(dense.model)
    report: dict[str, Any] = {"dataset": beir.name, "documents": len(docs), "batch": BUILD_BATCH}
    with tempfile.TemporaryDirectory() as tmp, Database(tmp) as db:
        counter.take()
        seconds = _build(db, "dense", docs)
        report["dense_only"] = {"seconds": seconds, "docs_per_s": len(docs) / seconds, "forwards": counter.take()}
        seconds = _build(db, "multi", docs, multivector=True)
        report["multivector"] = {"seconds": seconds, "docs_per_s": len(docs) / seconds, "forwards": counter.take()}
        coll = db.collection("multi")
        queries = beir.query_texts[:n_queries]
        for query in queries:
            coll.search(query, 10, rerank=kappa)
        report["reranked_search"] = {"queries": len(queries), "kappa": kappa,
                                     "forwards_per_search": counter.take() / max(len(queries), 1)}
    counter.close()
    tokens = SentenceTransformerTokenEncoder()
    started = time.perf_counter()
    for start in range(0, len(texts), BUILD_BATCH):  # what a multivector build encoded before
        dense.encode_documents(texts[start:start + BUILD_BATCH])
        tokens.encode_documents(texts[start:start + BUILD_BATCH])
    seconds = time.perf_counter() - started
    report["two_pass_encoding_only"] = {"seconds": seconds, "docs_per_s": len(docs) / seconds}
    report["multivector_vs_dense"] = report["multivector"]["docs_per_s"] / report["dense_only"]["docs_per_s"]
    return report


# ---------------------------------------------------------------------- learned sparse quality
def _sparse_run(encoder: Any, doc_batch: Any, queries: Sequence[str]) -> tuple[list[tuple], int]:
    """Top-DEPTH (ids, scores) per query through a SparseIndex, and its size in bytes."""
    from lamina.index.sparse import SparseIndex

    index = SparseIndex(encoder.vocab_size)
    index.add(np.arange(len(doc_batch), dtype=np.int64), doc_batch)
    index.compact()
    q = encoder.encode_queries(list(queries))
    ranked = []
    for row in range(len(q)):
        if q.row_lengths()[row] == 0:
            ranked.append((np.empty(0, np.int64), np.empty(0, np.float32)))
            continue
        scores, ids = index.search(q.take(np.array([row])), DEPTH)
        keep = ids[0] >= 0
        ranked.append((ids[0][keep].astype(np.int64), scores[0][keep]))
    return ranked, int(index.memory_bytes())


def _score(ranked: list[tuple], qids: Sequence[str], doc_ids: Sequence[str], qrels: dict) -> dict[str, float]:
    run = {qid: _ranked([doc_ids[i] for i in ids]) for qid, (ids, _) in zip(qids, ranked)}
    out = score_run(run, {q: qrels[q] for q in qids}, ("ndcg@10", "recall@100"))
    return {metric: round(value, 4) for metric, value in out.items()}


def _fuse(parts: Sequence[list[tuple]], how: str) -> list[tuple]:
    from lamina.retrieval.fusion import reciprocal_rank_fusion, weighted_score_fusion

    fuse: Callable[..., Any] = reciprocal_rank_fusion if how == "rrf" else weighted_score_fusion
    return [fuse([p[j] for p in parts], limit=DEPTH) for j in range(len(parts[0]))]


def run_sparse_quality(dataset_dir: str | Path, *, sparse: str = "splade-tiny",
                       with_dense: bool = True) -> dict[str, Any]:
    """BM25, `sparse` (table and model queries) and dense alone and fused on a BEIR directory."""
    from lamina.retrieval.encoders.sparse import BM25Encoder
    from lamina.retrieval.encoders.splade import QUERY_MODEL_SUFFIX, load_learned_sparse

    beir = load_beir(dataset_dir)
    qids, queries = beir.judged_queries()
    report: dict[str, Any] = {"dataset": beir.name, "documents": len(beir.doc_texts), "queries": len(qids),
                              "depth": DEPTH, "systems": {}}
    runs: dict[str, list[tuple]] = {}

    def record(name: str, ranked: list[tuple], **extra: Any) -> None:
        runs[name] = ranked
        report["systems"][name] = {**_score(ranked, qids, beir.doc_ids, beir.qrels), **extra}

    started = time.perf_counter()
    bm25 = BM25Encoder().fit(beir.doc_texts)
    bm25_docs = bm25.encode_documents(beir.doc_texts)
    seconds = time.perf_counter() - started
    ranked, size = _sparse_run(bm25, bm25_docs, queries)
    record("bm25", ranked, index_bytes=size, docs_per_s=round(len(beir.doc_texts) / seconds, 1))

    learned = load_learned_sparse(sparse)
    started = time.perf_counter()
    learned_docs = learned.encode_documents(beir.doc_texts)
    seconds = time.perf_counter() - started
    extra = {"index_bytes": 0, "docs_per_s": round(len(beir.doc_texts) / seconds, 1),
             "terms_per_doc": round(float(learned_docs.row_lengths().mean()), 1)}
    ranked, extra["index_bytes"] = _sparse_run(learned, learned_docs, queries)
    record(f"{sparse} (table queries)", ranked, **extra)
    modelled = load_learned_sparse(sparse + QUERY_MODEL_SUFFIX)
    started = time.perf_counter()
    ranked, _ = _sparse_run(modelled, learned_docs, queries)
    record(f"{sparse} (model queries)", ranked,
           query_ms=round(1e3 * (time.perf_counter() - started) / max(len(queries), 1), 2))
    if with_dense:
        from lamina.retrieval.encoders.dense import load_dense_encoder

        dense = load_dense_encoder()
        started = time.perf_counter()
        doc_vectors = dense.encode_documents(beir.doc_texts)
        seconds = time.perf_counter() - started
        query_vectors = dense.encode_queries(queries)
        ids = exact_top_k(query_vectors, doc_vectors, DEPTH)
        scores = np.take_along_axis(query_vectors @ doc_vectors.T, ids, axis=1)
        record("dense", [(i.astype(np.int64), s) for i, s in zip(ids, scores)],
               docs_per_s=round(len(beir.doc_texts) / seconds, 1))
    singles = [n for n in runs if n != f"{sparse} (model queries)"]
    for how in ("rrf", "weighted"):
        for size in (2, 3):
            for combo in combinations(singles, size):
                record(f"{how}(" + " + ".join(combo) + ")", _fuse([runs[n] for n in combo], how))
    return report
