"""`lamina bench rerank`: multivector (MaxSim) reranking after strong first stages, on a BEIR collection.

After Martinico, Nardini, Rulli & Venturini ("Multivector Reranking in the Era of Strong
First-Stage Retrievers", ECIR 2026): a single-vector first stage gathers candidates, MaxSim over
the candidates' token vectors reorders them, and two rules (candidate pruning `alpha`, early exit
`beta`) skip candidates unlikely to matter. The bench composes the components in-process, without
a `Collection`, so that each stage can be timed on its own:

- first stages: BM25 sparse (`BM25Encoder` + `SparseIndex`), MiniLM dense (exact inner product,
  faiss `IndexFlatIP`), hybrid (RRF of the two, each asked for the same depth);
- token vectors: MiniLM contextual token embeddings (`load_token_encoder`) in a `TokenStore`, one
  per codec (float16 and the compressed codecs asked for);
- exhaustive MaxSim over the whole collection (the ceiling reranking aims at, float16 tokens
  widened to float32 once up front, so its latency is the matrix products alone);
- reranking of every first stage's best kappa candidates, kappa in `KAPPAS`, with the rules off
  and on (`RULES`), for every codec.

Every query is run one at a time and timed per stage: "first_ms" (first-stage search, fusion
included), "rerank_ms" (MaxSim rerank, token fetch and decode included) and "total_ms", each as a
p50 and a mean over the judged queries. Query encoding (dense, sparse, tokens) is done once in a
batch up front and is not part of any latency: it is the same for every configuration.
Quality is nDCG@10 by ranx (`lamina.bench.quality.score_run`) over the top 10 returned.

Encoding is the slow part (two MiniLM passes over the corpus), so embeddings and token matrices
are cached under `<cache_dir>/rerank/<name>/` and reused while the directory, the encoder and the
document count match. Results are one row per configuration of the standard report
(`lamina.bench.report`), with "stage", "kappa", "rules", "codec", "bytes_per_token" and the
latencies as extras; `summarise` derives the issue's targets from them. Everything runs on one
thread (OpenMP and BLAS limited to 1): the latencies are those of one query on one core.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamina.bench.datasets import BeirDataset, default_cache_dir, load_beir
from lamina.bench.quality import _ranked, score_run
from lamina.bench.report import make_report
from lamina.index.multivector import TokenCodec, TokenStore, lengths_to_offsets
from lamina.index.types import DEFAULT_ENCODER

RankedList = tuple[np.ndarray, np.ndarray]  # ids (n,) int64, first-stage scores (n,), best first

KAPPAS: tuple[int, ...] = (15, 20, 30, 50, 100)
STAGES: tuple[str, ...] = ("sparse", "dense", "hybrid")
# The paper's rules as measured by default (chosen on Cranfield itself, no held-out split: see
# bench/RESULTS.md): early exit after 20 consecutive misses, and candidate pruning at 10 % below
# the k-th first-stage score on top of it.
DEFAULT_ALPHA = 0.1
DEFAULT_BETA = 20
DEFAULT_CODECS: tuple[str, ...] = ("float16", "rq32")
K = 10
RRF_K = 60.0
_CACHE_VERSION = 1


def rule_settings(alpha: float = DEFAULT_ALPHA, beta: int = DEFAULT_BETA, *,
                  separate: bool = False) -> dict[str, dict[str, Any]]:
    """The rule sets every rerank runs under: none, early exit ("ee") and both rules ("cp+ee");
    with `separate`, candidate pruning alone ("cp") as well."""
    rules: dict[str, dict[str, Any]] = {"none": {"alpha": None, "beta": None}}
    if separate:
        rules["cp"] = {"alpha": alpha, "beta": None}
    return rules | {"ee": {"alpha": None, "beta": beta}, "cp+ee": {"alpha": alpha, "beta": beta}}


# ---------------------------------------------------------------------- inputs (cached)
@dataclass
class RerankInputs:
    """A BEIR collection encoded for the bench, judged queries only.

    doc_dense (n, d) and query_dense (nq, d) float32 unit rows; doc_tokens (T, d) float16 with
    doc_offsets (n+1,) int64 (document i owns rows [o[i], o[i+1])); query_tokens: nq (m_j, d)
    float32 matrices. Document i has the internal id i and the BEIR id doc_ids[i].
    """

    beir: BeirDataset
    qids: list[str]
    qtexts: list[str]
    qrels: dict[str, dict[str, int]]
    doc_dense: np.ndarray
    query_dense: np.ndarray
    doc_tokens: np.ndarray
    doc_offsets: np.ndarray
    query_tokens: list[np.ndarray]
    encode_s: float
    cached: bool

    def doc_token_matrices(self) -> list[np.ndarray]:
        """Token matrices (n_i, d) float32 of every document, in id order."""
        tokens = self.doc_tokens.astype(np.float32)
        return np.split(tokens, self.doc_offsets[1:-1])


def _cache_key(directory: Path, encoder: str, n_docs: int, n_queries: int) -> dict[str, Any]:
    return {"version": _CACHE_VERSION, "directory": str(directory), "encoder": encoder, "docs": n_docs,
            "queries": n_queries}


def _save_arrays(folder: Path, arrays: dict[str, np.ndarray], key: dict[str, Any]) -> None:
    """Write arrays then the key file last: a cache entry without its key is never trusted."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        tmp = folder / f"{name}.tmp.npy"
        np.save(tmp, array)
        tmp.replace(folder / f"{name}.npy")
    (folder / "key.json").write_text(json.dumps(key))


def _load_arrays(folder: Path, names: Sequence[str], key: dict[str, Any]) -> dict[str, np.ndarray] | None:
    try:
        if json.loads((folder / "key.json").read_text()) != key:
            return None
        return {name: np.load(folder / f"{name}.npy") for name in names}
    except (OSError, ValueError):
        return None


_ARRAYS = ("doc_dense", "query_dense", "doc_tokens", "doc_offsets", "query_tokens", "query_offsets")


def load_inputs(dataset_dir: str | Path, name: str, *, cache_dir: Path | None = None, encoder: str = DEFAULT_ENCODER,
                max_queries: int | None = None, progress: Callable[[str], None] | None = None) -> RerankInputs:
    """Encode (or read from the cache) a BEIR directory's corpus and judged queries."""
    directory = Path(dataset_dir).expanduser().resolve()
    beir = load_beir(directory)
    qids, qtexts = beir.judged_queries()
    if not qids:
        raise ValueError(f"{directory}: no query has a relevant judgement")
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "rerank" / _slug(name)
    key = _cache_key(directory, encoder, len(beir.doc_ids), len(qids))
    arrays = _load_arrays(folder, _ARRAYS, key)
    cached = arrays is not None
    encode_s = 0.0
    if arrays is None:
        from lamina.retrieval.encoders.dense import load_dense_encoder
        from lamina.retrieval.encoders.multivector import load_token_encoder

        say = progress or (lambda _: None)
        start = time.perf_counter()
        say(f"encoding {len(beir.doc_ids)} documents and {len(qids)} queries with {encoder} (cached afterwards)")
        dense = load_dense_encoder(encoder)
        tokens = load_token_encoder(encoder)
        doc_mats = tokens.encode_documents(beir.doc_texts)
        query_mats = tokens.encode_queries(qtexts)
        arrays = {
            "doc_dense": dense.encode_documents(beir.doc_texts),
            "query_dense": dense.encode_queries(qtexts),
            "doc_tokens": np.concatenate(doc_mats).astype(np.float16),
            "doc_offsets": lengths_to_offsets(np.array([len(m) for m in doc_mats], dtype=np.int64)),
            "query_tokens": np.concatenate(query_mats).astype(np.float32),
            "query_offsets": lengths_to_offsets(np.array([len(m) for m in query_mats], dtype=np.int64)),
        }
        encode_s = time.perf_counter() - start
        _save_arrays(folder, arrays, key)
    if max_queries is not None:
        qids, qtexts = qids[:max_queries], qtexts[:max_queries]
    nq = len(qids)
    query_tokens = np.split(arrays["query_tokens"], arrays["query_offsets"][1:-1])[:nq]
    return RerankInputs(beir, qids, qtexts, {q: beir.qrels[q] for q in qids},
                        np.ascontiguousarray(arrays["doc_dense"], np.float32),
                        np.ascontiguousarray(arrays["query_dense"][:nq], np.float32),
                        arrays["doc_tokens"], arrays["doc_offsets"].astype(np.int64),
                        [np.ascontiguousarray(q, np.float32) for q in query_tokens], encode_s, cached)


def _slug(text: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-.") or "collection"
    return safe if safe == text else f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


# ---------------------------------------------------------------------- first stages
@dataclass
class FirstStages:
    """The three first stages over one collection; `search(stage, j, depth)` answers query j."""

    dense_index: Any
    sparse_index: Any
    query_dense: np.ndarray
    query_sparse: Any

    @classmethod
    def build(cls, inputs: RerankInputs) -> FirstStages:
        import faiss

        from lamina.index.sparse.index import SparseIndex
        from lamina.retrieval.encoders.sparse import BM25Encoder

        dense = faiss.IndexFlatIP(inputs.doc_dense.shape[1])
        dense.add(inputs.doc_dense)
        bm25 = BM25Encoder().fit(inputs.beir.doc_texts)
        sparse = SparseIndex(bm25.vocab_size)
        sparse.add(np.arange(len(inputs.beir.doc_ids), dtype=np.int64), bm25.encode_documents(inputs.beir.doc_texts))
        sparse.compact()  # the Seismic structure, not the brute-force delta
        return cls(dense, sparse, inputs.query_dense, bm25.encode_queries(inputs.qtexts))

    def _dense(self, j: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.dense_index.search(self.query_dense[j:j + 1], depth)
        return ids[0], scores[0]

    def _sparse(self, j: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
        from lamina.index.errors import InvalidArgument

        try:
            scores, ids = self.sparse_index.search(self.query_sparse.take(np.array([j])), depth)
        except InvalidArgument:  # a query with no term known to the vocabulary finds nothing
            return np.empty(0, np.int64), np.empty(0, np.float32)
        return ids[0], scores[0]

    def search(self, stage: str, j: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of query j: ids (<= depth,) int64 and first-stage scores, best first."""
        from lamina.retrieval.fusion import reciprocal_rank_fusion

        if stage == "dense":
            return self._dense(j, depth)
        if stage == "sparse":
            return self._sparse(j, depth)
        if stage == "hybrid":
            return reciprocal_rank_fusion([self._sparse(j, depth), self._dense(j, depth)], k=RRF_K, limit=depth)
        raise ValueError(f"unknown first stage {stage!r}; expected one of {', '.join(STAGES)}")


# ---------------------------------------------------------------------- token stores
def token_store(inputs: RerankInputs, codec: str, folder: Path | None) -> tuple[TokenStore, float]:
    """The collection's token store with `codec`, saved under `folder` and memory-mapped from it
    (reused when present); returns it and the seconds spent building (0 when loaded)."""
    from lamina.index.errors import CorruptIndex, NotFound

    if folder is not None:
        try:
            store = TokenStore.load(folder, verify=False)
            if store.codec.spec == codec and len(store) == len(inputs.doc_offsets) - 1:
                return store, 0.0
        except (NotFound, CorruptIndex):
            pass
    start = time.perf_counter()
    ids = np.arange(len(inputs.doc_offsets) - 1, dtype=np.int64)
    store = TokenStore.build(ids, inputs.doc_token_matrices(), codec=codec)
    build_s = time.perf_counter() - start
    if folder is not None:
        store.save(folder)  # reopens the rows memory-mapped, as a collection would hold them
    return store, build_s


# ---------------------------------------------------------------------- measurement helpers
def _latency(values_ms: np.ndarray, prefix: str) -> dict[str, float]:
    return {f"{prefix}p50_ms": float(np.percentile(values_ms, 50)), f"{prefix}mean_ms": float(values_ms.mean())}


def _quality(inputs: RerankInputs, ranked: list[np.ndarray]) -> float:
    doc_ids = np.asarray(inputs.beir.doc_ids, dtype=object)
    run = {qid: _ranked(doc_ids[ids[:K]].tolist()) for qid, ids in zip(inputs.qids, ranked, strict=True)}
    return score_run(run, inputs.qrels, ("ndcg@10",))["ndcg@10"]


def _row(system: str, params: dict[str, Any], ndcg: float, first_ms: np.ndarray, rerank_ms: np.ndarray,
         **extras: Any) -> dict[str, Any]:
    total = first_ms + rerank_ms
    return {"system": system, "params": params, "ndcg@10": ndcg, **_latency(first_ms, "first_"),
            **_latency(rerank_ms, "rerank_"), **_latency(total, "total_"),
            "p50_ms": float(np.percentile(total, 50)), "p99_ms": float(np.percentile(total, 99)),
            "qps": len(total) / float(total.sum() / 1e3) if total.sum() > 0 else None, **extras}


def first_stage_runs(stages: FirstStages, nq: int, stage: str, depth: int,
                     clock: Callable[[], float] = time.perf_counter) -> tuple[list[RankedList], np.ndarray]:
    """Every query's candidates at `depth` and the milliseconds each search took."""
    stages.search(stage, 0, depth)  # warm-up
    out, times = [], np.empty(nq)
    for j in range(nq):
        start = clock()
        out.append(stages.search(stage, j, depth))
        times[j] = (clock() - start) * 1e3
    return out, times


def rerank_runs(inputs: RerankInputs, store: TokenStore, candidates: list[tuple[np.ndarray, np.ndarray]], *,
                kappa: int, alpha: float | None, beta: int | None,
                clock: Callable[[], float] = time.perf_counter) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Reranked top-K ids of every query, the milliseconds each rerank took, candidates scored."""
    from lamina.retrieval.rerank import rerank

    out, times, scored = [], np.empty(len(candidates)), np.empty(len(candidates))
    for j, (ids, scores) in enumerate(candidates):
        start = clock()
        top, _, stats = rerank(inputs.query_tokens[j], ids, scores, store, k=K, kappa=kappa, alpha=alpha, beta=beta)
        times[j] = (clock() - start) * 1e3
        out.append(top)
        scored[j] = stats.scored
    return out, times, scored


def exhaustive_runs(inputs: RerankInputs, store: TokenStore, *, block_tokens: int = 32_768,
                    clock: Callable[[], float] = time.perf_counter) -> tuple[list[np.ndarray], np.ndarray]:
    """MaxSim top-K over the whole store for every query, timed per query.

    The store is decoded to float32 once up front (the most favourable case for the exhaustive
    search: its latency is the matrix products and the segment maxima alone).
    """
    from lamina.retrieval.rerank import maxsim

    blocks = [(ids, np.ascontiguousarray(tokens), offsets) for ids, tokens, offsets in store.iter_blocks(block_tokens)]
    all_ids = np.concatenate([ids for ids, _, _ in blocks]) if blocks else np.empty(0, np.int64)
    out, times = [], np.empty(len(inputs.query_tokens))
    for j, query in enumerate(inputs.query_tokens):
        start = clock()
        scores = np.concatenate([maxsim(query, tokens, offsets) for _, tokens, offsets in blocks])
        top = np.argpartition(-scores, K - 1)[:K] if len(scores) > K else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        ids = all_ids[top]
        times[j] = (clock() - start) * 1e3
        out.append(ids)
    return out, times


# ---------------------------------------------------------------------- the benchmark
def run_rerank(dataset_dir: str | Path, name: str, *, codecs: Sequence[str] = DEFAULT_CODECS,
               kappas: Sequence[int] = KAPPAS, stages: Sequence[str] = STAGES,
               rules: dict[str, dict[str, Any]] | None = None, cache_dir: Path | None = None,
               encoder: str = DEFAULT_ENCODER, max_queries: int | None = None, exhaustive_all: bool = False,
               all_rules: bool = False,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every configuration of the issue on one BEIR directory: the standard report plus "summary".

    `codecs`: token codecs to rerank with; the first is the reference the others' nDCG@10 loss
    is measured against (float16 by default), and the only one exhaustive MaxSim runs with unless
    `exhaustive_all` (the most expensive configuration by far); the other codecs rerank without
    the rules unless `all_rules`. `rules`: name -> {"alpha", "beta"} (default
    `rule_settings()`; "none" must be among them).
    """
    from threadpoolctl import threadpool_limits

    # one query at a time on one core: OpenMP and BLAS thread teams cost more than they save on
    # blocks of a few thousand rows (and spin against each other on a shared machine)
    with threadpool_limits(limits=1):
        return _run(dataset_dir, name, codecs=codecs, kappas=kappas, stages=stages, rules=rules, cache_dir=cache_dir,
                    encoder=encoder, max_queries=max_queries, exhaustive_all=exhaustive_all, all_rules=all_rules,
                    progress=progress)


def _run(dataset_dir: str | Path, name: str, *, codecs: Sequence[str], kappas: Sequence[int], stages: Sequence[str],
         rules: dict[str, dict[str, Any]] | None, cache_dir: Path | None, encoder: str, max_queries: int | None,
         exhaustive_all: bool, all_rules: bool, progress: Callable[[str], None] | None) -> dict[str, Any]:
    say = progress or (lambda _: None)
    rules = dict(rule_settings() if rules is None else rules)
    cache_root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "rerank" / _slug(name)
    inputs = load_inputs(dataset_dir, name, cache_dir=cache_dir, encoder=encoder, max_queries=max_queries,
                         progress=say)
    nq = len(inputs.qids)
    say(f"{len(inputs.beir.doc_ids)} documents, {len(inputs.doc_tokens)} tokens, {nq} judged queries")
    first = FirstStages.build(inputs)
    results: list[dict[str, Any]] = []
    no_rerank = np.zeros(nq)

    runs: dict[tuple[str, int], tuple[list, np.ndarray]] = {}
    for stage in stages:
        for depth in sorted(set(kappas) | {K}):
            runs[stage, depth] = first_stage_runs(first, nq, stage, depth)
        candidates, times = runs[stage, K]
        results.append(_row(stage, {"stage": stage, "depth": K}, _quality(inputs, [ids for ids, _ in candidates]),
                            times, no_rerank, stage=stage))
        say(f"first stage {stage}: nDCG@10 {results[-1]['ndcg@10']:.4f}")

    for codec in codecs:
        # the folder names what the codec resolves to, so that a renamed alias never reads a stale store
        factory = TokenCodec(codec, inputs.doc_tokens.shape[1]).factory or codec
        store, build_s = token_store(inputs, codec, cache_root / f"tokens-{_slug(codec)}-{_slug(factory)}")
        common = {"codec": codec, "bytes_per_token": store.bytes_per_token, "memory_bytes": store.memory_bytes(),
                  "stored_bytes": store.stored_bytes(), "build_s": build_s or None}
        if codec == codecs[0] or exhaustive_all:
            ranked, times = exhaustive_runs(inputs, store)
            results.append(_row("exhaustive-maxsim", {"codec": codec}, _quality(inputs, ranked), no_rerank, times,
                                stage="exhaustive", **common))
            say(f"exhaustive MaxSim {codec}: nDCG@10 {results[-1]['ndcg@10']:.4f}, {times.mean():.1f} ms")
        for stage in stages:
            for kappa in kappas:
                candidates, first_ms = runs[stage, kappa]
                for rule, setting in rules.items():
                    if codec != codecs[0] and rule != "none" and not all_rules:
                        continue  # the rules choose candidates, the codec scores them: one is enough
                    ranked, rerank_ms, scored = rerank_runs(inputs, store, candidates, kappa=kappa, **setting)
                    params = {"stage": stage, "kappa": kappa, "rules": rule, "codec": codec,
                              **{k: v for k, v in setting.items() if v is not None}}
                    results.append(_row(f"{stage}+rerank", params, _quality(inputs, ranked), first_ms, rerank_ms,
                                        stage=stage, kappa=kappa, rules=rule, scored_mean=float(scored.mean()),
                                        **common))
                    say(f"{stage} kappa={kappa} {rule} {codec}: nDCG@10 {results[-1]['ndcg@10']:.4f}, "
                        f"rerank {rerank_ms.mean():.2f} ms")
        del store
    meta = {"dataset_dir": str(Path(dataset_dir).resolve()), "collection": name, "k": K, "queries": nq,
            "documents": len(inputs.beir.doc_ids), "tokens": int(len(inputs.doc_tokens)),
            "encoder": encoder, "encode_s": inputs.encode_s or None, "cached_inputs": inputs.cached,
            "rules": rules, "rrf_k": RRF_K}
    report = make_report("rerank", Path(dataset_dir).name, results, meta=meta)
    report["summary"] = summarise(report["results"], reference_codec=codecs[0])
    return report


def _find(results: Sequence[dict[str, Any]], **params: Any) -> list[dict[str, Any]]:
    return [r for r in results if all(r["params"].get(k) == v for k, v in params.items())]


def summarise(results: Sequence[dict[str, Any]], *, reference_codec: str = "float16",
              max_bytes_per_token: int = 32, max_loss: float = 0.005, max_rules_change: float = 0.002,
              min_rules_speedup: float = 1.5, min_quality: float = 0.99, min_speedup: float = 10.0) -> dict[str, Any]:
    """The issue's three targets, derived from the result rows.

    - quality/latency: the fastest reference-codec rerank without rules reaching `min_quality` of
      exhaustive MaxSim's nDCG@10; met when it is also `min_speedup` x faster (total latency);
    - rules: per stage at the largest kappa, rerank-stage speedup of the rules and their nDCG@10
      change (reference codec); met when every stage meets both bounds;
    - compression: per compressed codec, bytes/token and the worst nDCG@10 loss against the
      reference codec over every matching configuration (exhaustive and reranks); met by a codec
      within both bounds.
    """
    exhaustive = _find(results, codec=reference_codec)
    exhaustive = [r for r in exhaustive if r["system"] == "exhaustive-maxsim"]
    summary: dict[str, Any] = {}
    if exhaustive:
        ceiling, slow = exhaustive[0]["ndcg@10"], exhaustive[0]["total_mean_ms"]
        good = [r for r in _find(results, codec=reference_codec, rules="none")
                if r["system"].endswith("+rerank") and r["ndcg@10"] >= min_quality * ceiling]
        best = min(good, key=lambda r: r["total_mean_ms"], default=None)
        summary["quality_latency"] = {
            "exhaustive_ndcg@10": ceiling, "exhaustive_mean_ms": slow,
            "best": None if best is None else {
                "params": best["params"], "ndcg@10": best["ndcg@10"], "fraction": best["ndcg@10"] / ceiling,
                "total_mean_ms": best["total_mean_ms"], "speedup": slow / best["total_mean_ms"]},
            "met": best is not None and slow / best["total_mean_ms"] >= min_speedup}
    reranks = [r for r in results if r["system"].endswith("+rerank")]
    rule_names = sorted({r["params"]["rules"] for r in reranks} - {"none"})
    if reranks and rule_names:
        top_kappa = max(r["params"]["kappa"] for r in reranks)
        per_rule = {}
        for rule in rule_names:
            rows = {}
            for stage in sorted({r["params"]["stage"] for r in reranks}):
                base = _find(reranks, stage=stage, kappa=top_kappa, rules="none", codec=reference_codec)
                pruned = _find(reranks, stage=stage, kappa=top_kappa, rules=rule, codec=reference_codec)
                if base and pruned:
                    speedup = base[0]["rerank_mean_ms"] / pruned[0]["rerank_mean_ms"]
                    change = pruned[0]["ndcg@10"] - base[0]["ndcg@10"]
                    rows[stage] = {"kappa": top_kappa, "speedup": speedup, "ndcg_change": change,
                                   "met": speedup >= min_rules_speedup and abs(change) <= max_rules_change}
            per_rule[rule] = {"stages": rows, "met": bool(rows) and all(v["met"] for v in rows.values())}
        summary["rules"] = per_rule
    codecs = sorted({r["params"].get("codec") for r in results if r["params"].get("codec")} - {reference_codec})
    compression = {}
    for codec in codecs:
        losses = []
        bytes_per_token = None
        for row in _find(results, codec=codec):
            bytes_per_token = row["bytes_per_token"]
            params = {**row["params"], "codec": reference_codec}
            twin = [r for r in _find(results, **params) if r["system"] == row["system"]]
            if twin:
                losses.append(twin[0]["ndcg@10"] - row["ndcg@10"])
        worst = max(losses) if losses else None
        compression[codec] = {"bytes_per_token": bytes_per_token, "max_loss": worst,
                              "mean_loss": float(np.mean(losses)) if losses else None,
                              "met": worst is not None and bytes_per_token <= max_bytes_per_token
                              and worst <= max_loss}
    if compression:
        summary["compression"] = {"codecs": compression, "met": any(v["met"] for v in compression.values())}
    return summary


def describe_summary(summary: dict[str, Any]) -> list[str]:
    """The summary as a few lines of text, one per target."""
    def verdict(met: bool) -> str:
        return "MET" if met else "NOT MET"

    lines = []
    quality = summary.get("quality_latency")
    if quality:
        best = quality["best"]
        if best is None:
            lines.append(f"rerank vs exhaustive: no rerank reaches 99% of exhaustive nDCG@10 "
                         f"{quality['exhaustive_ndcg@10']:.4f}: NOT MET")
        else:
            lines.append(f"rerank vs exhaustive: {best['params']['stage']} kappa={best['params']['kappa']} reaches "
                         f"{100 * best['fraction']:.1f}% of exhaustive nDCG@10 {quality['exhaustive_ndcg@10']:.4f} "
                         f"at {best['speedup']:.1f}x lower latency: {verdict(quality['met'])}")
    for rule, entry in summary.get("rules", {}).items():
        stages = entry["stages"]
        kappa = next(iter(stages.values()))["kappa"] if stages else "-"
        parts = ", ".join(f"{stage} {v['speedup']:.2f}x / {v['ndcg_change']:+.4f}" for stage, v in stages.items())
        lines.append(f"rules {rule} at kappa={kappa} (rerank speedup / nDCG@10 change): {parts}: "
                     f"{verdict(entry['met'])}")
    for codec, entry in summary.get("compression", {}).get("codecs", {}).items():
        loss = entry["max_loss"]
        lines.append(f"codec {codec}: {entry['bytes_per_token']} B/token, worst nDCG@10 loss "
                     f"{'-' if loss is None else f'{loss:+.4f}'}: {verdict(entry['met'])}")
    return lines
