"""`lamina bench quality`: retrieval quality and latency of a searcher on a BEIR collection.

The searcher is anything with `search(query_text, k, with_payload=False) -> list[Hit]`: an
in-process `Collection` or a gRPC `RemoteCollection` alike, so the same numbers can be taken
through every layer. Metrics are computed by ranx (nDCG@10 with linear gains, as trec_eval and
BEIR report it; MRR@10; recall@10 and @100) against the collection's graded qrels.
`exact_reference_quality` gives the brute-force dense answer of the same encoder: the ceiling
an approximate index can reach, so a gap below it is the index's, not the encoder's.
"""

from __future__ import annotations

import time
import warnings
from itertools import product
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lamina.bench.datasets import BeirDataset, TextEncoder, load_beir
from lamina.bench.report import make_report
from lamina.index.types import Hit

METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@10", "recall@100")
RERANK_K = 10  # hits a reranked search returns in `QualitySearcher`: the depth of nDCG@10 and MRR@10


class Searcher(Protocol):
    """What the quality benchmark needs: text in, ranked hits out (best first)."""

    def search(self, query: str, k: int, *, with_payload: bool = False) -> list[Hit]: ...


def score_run(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
              metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Mean metrics over the queries of `qrels`; a query missing from `run` scores 0.

    run[qid][docid] = score (larger is better); qrels[qid][docid] = graded relevance (int).
    """
    from ranx import Qrels, Run, evaluate  # numba-compiled: imported only when scoring

    if not qrels:
        raise ValueError("no judged queries to evaluate")
    ranx_qrels = Qrels.from_dict({qid: {d: int(r) for d, r in docs.items()} for qid, docs in qrels.items()})
    ranx_run = Run.from_dict({qid: {d: float(s) for d, s in docs.items()} for qid, docs in run.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's uint64->int64 cast warning inside ranx
        scores = evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True)
    if not isinstance(scores, dict):  # ranx returns a bare float for a single metric
        scores = {metrics[0]: scores}
    return {metric: float(scores[metric]) for metric in metrics}


def _ranked(ids: Sequence[str]) -> dict[str, float]:
    """A ranked list as ranx scores: k, k-1, ..., 1 (first occurrence of an id wins).

    Scores from the rank, not the searcher's scores: ranx re-sorts by score, and ties or
    float noise must not reorder what the searcher returned.
    """
    out: dict[str, float] = {}
    for doc_id in ids:
        out.setdefault(doc_id, 0.0)
    return {doc_id: float(len(out) - rank) for rank, doc_id in enumerate(out)}


def _judged(beir: BeirDataset, max_queries: int | None) -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
    qids, texts = beir.judged_queries()
    if max_queries is not None:
        qids, texts = qids[:max_queries], texts[:max_queries]
    return qids, texts, {qid: beir.qrels[qid] for qid in qids}


def evaluate_quality(dataset_dir: str | Path, searcher: Searcher, *, k: int = 100, mode: str | None = None,
                     max_queries: int | None = None) -> dict[str, Any]:
    """Search every judged query of a BEIR directory one at a time; quality and latency.

    Returns {"ndcg@10", "mrr@10", "recall@10", "recall@100", "queries", "p50_ms", "p99_ms",
    "qps", "k", "mode"}. `mode`, when given, is passed to `searcher.search(..., mode=mode)`
    (for searchers that choose dense/sparse/hybrid per call). The first query is searched once
    untimed beforehand, so lazy model loading is not counted as latency.
    """
    beir = load_beir(dataset_dir)
    qids, texts, qrels = _judged(beir, max_queries)
    if not qids:
        raise ValueError(f"{dataset_dir}: no query has a relevant judgement")
    extra: dict[str, Any] = {"mode": mode} if mode is not None else {}
    searcher.search(texts[0], k, with_payload=False, **extra)  # warm-up: encoder load, caches
    run: dict[str, dict[str, float]] = {}
    latencies = np.empty(len(qids), dtype=np.float64)
    clock = time.perf_counter
    for i, (qid, text) in enumerate(zip(qids, texts, strict=True)):
        start = clock()
        hits = searcher.search(text, k, with_payload=False, **extra)
        latencies[i] = clock() - start
        run[qid] = _ranked([hit.id for hit in hits])
    return {
        **score_run(run, qrels),
        "queries": len(qids),
        "p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3),
        "qps": len(qids) / float(latencies.sum()),
        "k": k,
        "mode": mode,
    }


def exact_top_k(query_vectors: np.ndarray, doc_vectors: np.ndarray, k: int,
                block: int = 1024) -> np.ndarray:
    """Row indices (nq, min(k, n)) int64 of the largest inner products, best first.

    query_vectors: (nq, d) float32; doc_vectors: (n, d) float32. Blocks of queries bound the
    (block, n) score matrix.
    """
    k = min(k, len(doc_vectors))
    out = np.empty((len(query_vectors), k), dtype=np.int64)
    for start in range(0, len(query_vectors), block):
        scores = query_vectors[start:start + block] @ doc_vectors.T
        if k < scores.shape[1]:
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(k), scores.shape).copy()
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start:start + block] = np.take_along_axis(top, order, axis=1)
    return out


def exact_reference_quality(dataset_dir: str | Path, encoder: TextEncoder, *, k: int = 100,
                            max_queries: int | None = None) -> dict[str, Any]:
    """Quality of exact inner-product retrieval with `encoder` over title + text (numpy).

    Same keys as `evaluate_quality`; latency keys are None (the search is one batched matmul),
    "encode_s" is the time spent encoding corpus and queries.
    """
    beir = load_beir(dataset_dir)
    qids, texts, qrels = _judged(beir, max_queries)
    if not qids:
        raise ValueError(f"{dataset_dir}: no query has a relevant judgement")
    start = time.perf_counter()
    doc_vectors = np.asarray(encoder.encode_documents(beir.doc_texts), dtype=np.float32)
    query_vectors = np.asarray(encoder.encode_queries(texts), dtype=np.float32)
    encode_s = time.perf_counter() - start
    top = exact_top_k(query_vectors, doc_vectors, k)
    doc_ids = np.asarray(beir.doc_ids, dtype=object)
    run = {qid: _ranked(doc_ids[row].tolist()) for qid, row in zip(qids, top, strict=True)}
    return {**score_run(run, qrels), "queries": len(qids), "p50_ms": None, "p99_ms": None, "qps": None,
            "k": k, "mode": "exact", "encode_s": encode_s}


class QualitySearcher:
    """A collection searched one way (`bench quality`'s rows): a mode, a fusion, a rerank.

    `kappa` is honoured as given: MaxSim scores the best kappa fused candidates (less what
    `alpha`/`beta`, the rerank's pruning rules, skip; None: off) and the search returns their
    best `RERANK_K` -- what a k=10 search with that rerank returns, so nDCG@10 and MRR@10 are
    that search's. Recall@100 needs 100 hits: the ranks below follow the unreranked search
    (the latency reported is that of both searches).
    """

    def __init__(self, collection: Any, *, mode: str = "dense", fusion: str | None = None,
                 weights: tuple[float, ...] | None = None, kappa: int | None = None,
                 alpha: float | None = None, beta: int | None = None, feedback: int | None = None,
                 feedback_weight: float | None = None) -> None:
        from lamina.retrieval.query import DEFAULT_FUSION, Fusion, Rerank

        self.collection, self.mode = collection, mode
        extra = {"feedback_weight": feedback_weight} if feedback_weight is not None else {}
        self.fusion = Fusion(fusion or DEFAULT_FUSION, weights, feedback=feedback, **extra)
        self.kappa, self.rerank = kappa, (Rerank(kappa, alpha, beta) if kappa else None)

    @staticmethod
    def params(**options: Any) -> dict[str, Any]:
        return {key: value for key, value in options.items() if value is not None}

    def _query(self, query: str, k: int, rerank: Any) -> list[Hit]:
        from lamina.retrieval.query import SearchRequest

        request = SearchRequest.simple(query, k, mode=self.mode, fusion=self.fusion, rerank=rerank, with_payload=False)
        return self.collection.query(request).hits

    def search(self, query: str, k: int, *, with_payload: bool = False) -> list[Hit]:
        if self.rerank is None:
            return self._query(query, k, None)
        head = self._query(query, min(k, RERANK_K, self.kappa), self.rerank)
        seen = {hit.id for hit in head}
        return head + [hit for hit in self._query(query, k, None) if hit.id not in seen][:k - len(head)]


def quality_configs(modes: str, fusions: str | None = None, weights: str | None = None, kappa: int | None = None,
                    alpha: float | None = None, beta: int | None = None, feedbacks: str | None = None,
                    feedback_weight: float | None = None) -> list[tuple[str, dict[str, Any]]]:
    """`bench quality`'s rows from its options: (system name, QualitySearcher options) for each
    mode, and for hybrid each fusion and each feedback. Raises InvalidArgument naming a bad option."""
    from lamina.index.errors import InvalidArgument
    from lamina.retrieval.query import FUSIONS, Fusion, check_rerank_params

    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    bad = sorted(set(mode_list) - {"dense", "sparse", "hybrid"})
    if bad or not mode_list:
        raise InvalidArgument(f"--mode: unknown mode(s) {', '.join(bad) or '(none)'}; expected dense, sparse, hybrid")
    fusion_list = [f.strip() for f in (fusions or "").split(",") if f.strip()] or [None]
    for method in fusion_list:
        if method is not None and method not in FUSIONS:
            raise InvalidArgument(f"--fusion: unknown fusion {method!r}; expected one of {', '.join(FUSIONS)}")
    w: tuple[float, ...] | None = None
    if weights is not None:
        try:
            w = tuple(float(x) for x in weights.split(","))
        except ValueError:
            raise InvalidArgument(f"--weights: {weights!r} is not a comma-separated list of numbers") from None
        if len(w) != 2:
            raise InvalidArgument(f"--weights: the hybrid search has 2 stages (dense, sparse), got {len(w)} weights")
        Fusion("weighted", w)  # finite, >= 0, not all 0
    try:
        feedback_list = [int(x) for x in (feedbacks or "").split(",") if x.strip()] or [None]
    except ValueError:
        raise InvalidArgument(f"--feedback: {feedbacks!r} is not a comma-separated list of integers") from None
    for m in feedback_list:
        Fusion("adaptive", feedback=m, **({"feedback_weight": feedback_weight} if feedback_weight is not None else {}))
    if kappa is not None:
        check_rerank_params(1, kappa, alpha, beta)
    elif alpha is not None or beta is not None:
        raise InvalidArgument("--alpha and --beta prune a rerank: give --rerank KAPPA too")
    suffix = (f"+rerank{kappa}" if kappa else "") + (f",alpha={alpha:g}" if alpha is not None else "") \
        + (f",beta={beta}" if beta is not None else "")
    rows: list[tuple[str, dict[str, Any]]] = []
    for mode in mode_list:
        hybrid = mode == "hybrid"
        for method, m in product(fusion_list if hybrid else [None], feedback_list if hybrid else [None]):
            name = f"lamina-{mode}" + (f"-{method}" if method else "")
            if hybrid and w is not None:
                name += "(" + ",".join(f"{x:g}" for x in w) + ")"
            if m is not None:
                name += f"+fb{m}" + (f"@{feedback_weight:g}" if feedback_weight is not None and m else "")
            rows.append((name + suffix, {"mode": mode, "fusion": method, "weights": w if hybrid else None,
                                         "feedback": m, "feedback_weight": feedback_weight if hybrid else None,
                                         "kappa": kappa, "alpha": alpha, "beta": beta}))
    return rows


def quality_result(metrics: Mapping[str, Any], *, system: str = "lamina-dense",
                   params: Mapping[str, Any] | None = None, memory_bytes: int | None = None,
                   build_s: float | None = None) -> dict[str, Any]:
    """One report row from `evaluate_quality`'s (or `exact_reference_quality`'s) metrics."""
    row_params = {"k": metrics.get("k")}
    if metrics.get("mode") is not None:
        row_params["mode"] = metrics["mode"]
    row_params.update(params or {})
    extras = {key: value for key, value in metrics.items() if key not in ("k", "mode")}
    return {"system": system, "params": row_params, "memory_bytes": memory_bytes, "build_s": build_s, **extras}


def quality_report(dataset_dir: str | Path, searcher: Searcher, *, system: str = "lamina-dense", k: int = 100,
                   mode: str | None = None, params: Mapping[str, Any] | None = None,
                   memory_bytes: int | None = None, build_s: float | None = None,
                   reference_encoder: TextEncoder | None = None,
                   max_queries: int | None = None) -> dict[str, Any]:
    """`evaluate_quality` as the standard report (benchmark "quality", one row per system).

    With `reference_encoder`, a second row "exact-dense" holds `exact_reference_quality`.
    `memory_bytes`/`build_s` are the caller's to give (e.g. the collection's index size and the
    time it took to load the corpus); they stay null otherwise.
    """
    metrics = evaluate_quality(dataset_dir, searcher, k=k, mode=mode, max_queries=max_queries)
    results = [quality_result(metrics, system=system, params=params, memory_bytes=memory_bytes, build_s=build_s)]
    if reference_encoder is not None:
        reference = exact_reference_quality(dataset_dir, reference_encoder, k=k, max_queries=max_queries)
        results.append(quality_result(reference, system="exact-dense",
                                      params={"encoder": getattr(reference_encoder, "name", None)}))
    return make_report("quality", Path(dataset_dir).name, results,
                       meta={"dataset_dir": str(Path(dataset_dir).resolve()), "k": k})
