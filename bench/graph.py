"""`lamina bench graph DATASET`: multi-hop retrieval with and without the entity graph, and its costs.

Quality (BEIR directory; hotpotqa-dev500 and hotpotqa-hipporag100 have two gold passages per question,
Cranfield is the no-harm control): one collection with dense, BM25 and the entity graph, every judged
query searched in each mode -- dense, sparse (BM25), hybrid (RRF), hybrid+graph and graph alone --
and scored by recall@2/5/10 (the fraction of gold passages in the top k), the rate at which all golds
are in the top 5, and nDCG@10. Embeddings (passages, queries, entity names) come from
`CachedEncoder` under `bench/out/graph-embeddings`, so only the first run pays for MiniLM.

Build: the graph's own cost per chunk, encoding excluded: entity extraction plus planning the
records and applying them (`GraphSide.timings`), as chunks a minute.

Scale (`lamina.bench.graph_scale`): PPR latency on a synthetic power-law graph of 100k nodes, exact
and push, the push's error against exact; and the insert and delete of one document in a collection
whose graph has 100k nodes, checked equal to a rebuild from the live chunks.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lamina.bench.datasets import BeirDataset, load_beir
from lamina.bench.embed_cache import CachedEncoder
from lamina.bench.quality import score_run
from lamina.bench.report import make_report

MODES: tuple[str, ...] = ("dense", "sparse", "hybrid", "hybrid+graph", "graph")
CACHE = Path("bench/out/graph-embeddings")
BATCH = 500


def recall_metrics(ranked: Sequence[str], gold: set[str]) -> dict[str, float]:
    """recall@2/5/10 and all-gold-in-top-5 of one ranked list."""
    out = {f"recall@{k}": len(gold & set(ranked[:k])) / len(gold) for k in (2, 5, 10)}
    out["all@5"] = float(gold <= set(ranked[:5]))
    return out


def build_collection(beir: BeirDataset, data_dir: Path, encoder: Any, *, extractor: str = "spacy",
                     graph: bool = True) -> tuple[Any, Any, dict[str, float]]:
    """A database holding `beir`'s corpus in collection "bench" (dense + BM25, and the graph)."""
    from lamina.retrieval.collection import Database

    db = Database(data_dir, encoder_loader=lambda name: encoder)
    coll = db.create_collection("bench", encoder="cached", graph={"extractor": extractor} if graph else None)
    started = time.perf_counter()
    for start in range(0, len(beir.doc_ids), BATCH):
        coll.upsert([{"id": i, "text": t} for i, t in zip(beir.doc_ids[start:start + BATCH],
                                                          beir.doc_texts[start:start + BATCH])])
    timings = {"upsert_s": time.perf_counter() - started}
    if graph:
        timings.update(coll.graph_side.timings)
    return db, coll, timings


def evaluate_modes(coll: Any, beir: BeirDataset, modes: Sequence[str], *, max_queries: int | None = None,
                   k: int = 10, expansion: Any = None) -> list[dict[str, Any]]:
    from lamina.retrieval.query import SearchRequest

    qids, texts = beir.judged_queries()
    if max_queries is not None:
        qids, texts = qids[:max_queries], texts[:max_queries]
    rows = []
    for mode in modes:
        per_query: list[dict[str, float]] = []
        run: dict[str, dict[str, float]] = {}
        fallbacks = 0
        latencies = []
        for qid, text in zip(qids, texts):
            graph = expansion if (expansion is not None and mode.endswith("graph") and mode != "graph") else None
            request = SearchRequest.simple(text, k, mode=mode, with_payload=False, explain=True, graph=graph)
            started = time.perf_counter()
            result = coll.query(request)
            latencies.append(time.perf_counter() - started)
            ranked = [h.id for h in result.hits]
            fallbacks += "fallback" in (result.explain or {}).get("graph", {})
            gold = {d for d, r in beir.qrels[qid].items() if r > 0}
            per_query.append(recall_metrics(ranked, gold))
            run[qid] = {d: float(len(ranked) - i) for i, d in enumerate(ranked)}
        row = {"system": f"lamina-{mode}", "params": {"mode": mode, "k": k},
               **{m: float(np.mean([q[m] for q in per_query])) for m in per_query[0]},
               **score_run(run, {q: beir.qrels[q] for q in qids}, ("ndcg@10",)),
               "queries": len(qids), "p50_ms": float(np.percentile(latencies, 50) * 1e3)}
        if mode.endswith("graph"):
            row["fallbacks"] = fallbacks
        rows.append(row)
    return rows


VARIANTS = {  # the graph stage's knobs: HippoRAG 2's PPR-only ranking (passage weight 0.05, damping 0.5) and others
    "fusion=ppr": {"fusion": "ppr"},
    "fusion=ppr,passage_weight=0.2": {"fusion": "ppr", "passage_weight": 0.2},
    "fusion=ppr,passage_weight=1": {"fusion": "ppr", "passage_weight": 1.0},
}


def evaluate_variants(coll: Any, beir: BeirDataset, *, max_queries: int | None = None) -> list[dict[str, Any]]:
    from lamina.retrieval.query import GraphExpansion

    rows = []
    for label, options in VARIANTS.items():
        row = evaluate_modes(coll, beir, ["hybrid+graph"], max_queries=max_queries,
                             expansion=GraphExpansion(**options))[0]
        row["system"] = f"lamina-hybrid+graph({label})"
        row["params"].update(options)
        rows.append(row)
    return rows


def run_graph(dataset_dir: str | Path, *, modes: Sequence[str] = MODES, extractor: str = "spacy",
              max_queries: int | None = None, cache_dir: Path = CACHE, scale: bool = True,
              scale_nodes: int = 100_000, peer: bool = True) -> dict[str, Any]:
    from lamina.retrieval.encoders.dense import load_dense_encoder

    beir = load_beir(dataset_dir)
    encoder = CachedEncoder(load_dense_encoder(), cache_dir)
    with tempfile.TemporaryDirectory(prefix="lamina-bench-graph-") as tmp:
        db, coll, timings = build_collection(beir, Path(tmp), encoder, extractor=extractor)
        encoder.save()
        graph = coll.graph_side.graph
        stats = {"chunks": len(beir.doc_ids), "entities": len(graph), "cooc_edges": len(graph.cooc),
                 "synonym_edges": sum(len(v) for v in graph.synonyms.values()) // 2}
        graph_s = timings["extract_s"] + timings["plan_s"]
        build = {"graph_chunks_per_min": len(beir.doc_ids) / graph_s * 60, **timings, **stats,
                 "extractor": coll.graph_side.extractor.name}
        results = evaluate_modes(coll, beir, modes, max_queries=max_queries)
        encoder.save()
        if "hybrid+graph" in modes:
            results += evaluate_variants(coll, beir, max_queries=max_queries)
        if peer:
            from lamina.bench.graph_peer import run_lightrag

            results.append(run_lightrag(beir, coll, encoder, max_queries=max_queries))
        db.close()
    meta: dict[str, Any] = {"build": build, "dataset_dir": str(Path(dataset_dir).resolve()),
                            "encoder": "all-MiniLM-L6-v2 (cached embeddings)"}
    if scale:
        from lamina.bench.graph_scale import run_scale

        meta["scale"] = run_scale(scale_nodes)
    return make_report("graph", Path(dataset_dir).name, results, meta=meta)


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for row in report["results"]:
        if "error" in row:
            lines.append(f"{row['system']:<22} {row['error']}")
            continue
        lines.append(f"{row['system']:<22} R@2 {row['recall@2']:.3f}  R@5 {row['recall@5']:.3f}  "
                     f"R@10 {row['recall@10']:.3f}  all@5 {row['all@5']:.3f}  nDCG@10 {row['ndcg@10']:.4f}  "
                     f"p50 {row['p50_ms']:.1f} ms" + (f"  fallbacks {row['fallbacks']}" if "fallbacks" in row else ""))
    build = report["meta"]["build"]
    lines.append(f"build: {build['graph_chunks_per_min']:.0f} chunks/min (graph only, {build['extractor']}), "
                 f"{build['entities']} entities, {build['cooc_edges']} co-occurrence and "
                 f"{build['synonym_edges']} synonym edges")
    if "scale" in report["meta"]:
        s = report["meta"]["scale"]
        lines.append(f"scale {s['nodes']} nodes: PPR p50 exact {s['ppr_exact_p50_ms']:.1f} ms wall "
                     f"({s['ppr_exact_cpu_p50_ms']:.1f} ms CPU), push {s['ppr_push_p50_ms']:.1f} ms wall "
                     f"({s['ppr_push_cpu_p50_ms']:.1f} ms CPU) (top-10 overlap {s['push_top10_overlap']:.3f}); insert p50 "
                     f"{s['insert_p50_ms']:.1f} ms, delete p50 {s['delete_p50_ms']:.1f} ms, equal to rebuild: "
                     f"{s['equal_to_rebuild']}")
    return lines
