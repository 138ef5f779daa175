"""`lamina bench rag`: what the RAG pipeline puts in front of a generator, and what that is worth.

On a BEIR directory whose qrels name gold passages (HotpotQA: two a question), one chunk a passage:

- context recall: the fraction of gold passages inside the assembled context, at context budgets of
  512, 1,024 and 2,048 of the generator's tokens, and the rate of questions with every gold inside;
  beside it the same SearchRequest's recall@n, n the number of chunks the context holds, so that
  budgeting and dedupe are seen to lose no gold the search found;
- per-stage latency (retrieve, postprocess, assemble) and the pipeline's own overhead (the run less
  its retrieval; nothing is generated in this part);
- with a generator and a dataset with answers (hotpotqa-hipporag100): exact match and token F1 (the
  SQuAD normalisation) of its answers with no context, the retrieved context and the gold passages,
  which shows what retrieval is worth with this model.
"""

from __future__ import annotations

import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lamina.bench.datasets import _read_jsonl, load_beir
from lamina.bench.report import make_report
from lamina.rag.assemble import PromptBuilder
from lamina.rag.pipeline import Pipeline
from lamina.rag.postprocess import Candidate, ContextBudget, DedupeByParent
from lamina.rag.types import Chunk, Generator, TokenCounter

DEFAULT_BUDGETS = (512, 1024, 2048)
RETRIEVE_K = 40  # enough chunks to fill 2,048 tokens of HotpotQA passages (~100-150 tokens each)
BUILD_BATCH = 256
QA_SYSTEM = ("Answer the question with a short phrase (a name, a date, a number or yes/no) taken from the "
             "context when it is there. Give no explanation.")


# ---------------------------------------------------------------------- answer scores (SQuAD v1.1)
def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces: SQuAD's normalisation."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------- the collection
def passage_chunks(dataset_dir: str | Path) -> list[Chunk]:
    """One chunk a passage: id, parent and offsets over its own text (title and text joined)."""
    beir = load_beir(dataset_dir)
    return [Chunk(doc_id, text, doc_id, 0, 0, len(text)) for doc_id, text in zip(beir.doc_ids, beir.doc_texts)]


def ensure_collection(db: Any, name: str, dataset_dir: str | Path, *, progress: bool = False) -> Any:
    """The dataset's passages as a collection (dense + BM25), built once: a rerun reuses it."""
    chunks = passage_chunks(dataset_dir)
    existing = {c.name for c in db.list_collections()}
    collection = db.collection(name) if name in existing else db.create_collection(name)
    if collection.count() != len(chunks):  # an interrupted build resumes: only missing passages are embedded
        stored = collection.get([c.id for c in chunks])
        missing = [c for c, doc in zip(chunks, stored) if doc is None]
        for start in range(0, len(missing), BUILD_BATCH):
            collection.upsert([c.to_point() for c in missing[start:start + BUILD_BATCH]], wait=False)
            if progress:
                print(f"  embedded {min(start + BUILD_BATCH, len(missing))}/{len(missing)} passages", flush=True)
        collection.snapshot()
    return collection


# ---------------------------------------------------------------------- context recall
def _gold(qrels: Mapping[str, Mapping[str, int]], qid: str) -> set[str]:
    return {doc for doc, rel in qrels.get(qid, {}).items() if rel > 0}


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"p50_ms": float(np.percentile(array, 50)), "p99_ms": float(np.percentile(array, 99))}


def context_recall(collection: Any, questions: Sequence[tuple[str, str]], qrels: Mapping[str, Mapping[str, int]],
                   *, counter: TokenCounter, budgets: Iterable[int] = DEFAULT_BUDGETS, mode: str = "hybrid",
                   k: int = RETRIEVE_K, policies: Sequence[str] = ("fill",)) -> list[dict[str, Any]]:
    """One result row a budget and budget policy: context recall, all-gold rate, the search's recall@n
    (n: the chunks in the context), latencies."""
    rows = []
    for budget, policy in ((b, p) for b in budgets for p in policies):
        pipeline = Pipeline(collection, counter=counter, search={"mode": mode, "k": k},
                            postprocessors=[DedupeByParent(), ContextBudget(budget, policy=policy)])
        recall, all_gold, search_recall, sizes = [], [], [], []
        stages: dict[str, list[float]] = {"retrieve_ms": [], "postprocess_ms": [], "assemble_ms": [],
                                          "overhead_ms": []}
        for qid, text in questions:
            gold = _gold(qrels, qid)
            if not gold:
                continue
            started = time.perf_counter()
            prepared = pipeline.prepare(text)
            total_ms = 1e3 * (time.perf_counter() - started)
            in_context = {c.chunk.id for c in prepared.assembled.candidates}
            hits = prepared.searched_ids
            n = len(in_context)
            recall.append(len(gold & in_context) / len(gold))
            all_gold.append(float(gold <= in_context))
            search_recall.append(len(gold & set(hits[:n])) / len(gold))
            sizes.append(n)
            for key in ("retrieve_ms", "postprocess_ms", "assemble_ms"):
                stages[key].append(prepared.timings[key])
            stages["overhead_ms"].append(total_ms - prepared.timings["retrieve_ms"])
        rows.append({
            "system": f"lamina-rag-{mode}", "params": {"context_tokens": budget, "k": k, "policy": policy},
            "context_recall": float(np.mean(recall)), "all_gold_rate": float(np.mean(all_gold)),
            "search_recall_at_n": float(np.mean(search_recall)), "chunks_in_context": float(np.mean(sizes)),
            "queries": len(recall),
            "stages": {key: _percentiles(values) for key, values in stages.items()},
            "p50_ms": float(np.percentile(stages["overhead_ms"], 50)),
            "p99_ms": float(np.percentile(stages["overhead_ms"], 99)),
        })
    return rows


# ---------------------------------------------------------------------- answers
def load_answers(dataset_dir: str | Path) -> dict[str, str]:
    """Query id -> answer, from queries.jsonl's "answer" field (absent: no answers)."""
    rows = _read_jsonl(Path(dataset_dir) / "queries.jsonl")
    return {str(q["_id"]): str(q["answer"]) for q in rows if q.get("answer") is not None}


def answer_quality(collection: Any, dataset_dir: str | Path, generator: Generator, *,
                   questions: Sequence[tuple[str, str]], qrels: Mapping[str, Mapping[str, int]],
                   budget: int = 1024, mode: str = "hybrid", max_new_tokens: int = 32,
                   on_answer: Callable[[str, str, str], None] | None = None) -> list[dict[str, Any]]:
    """Exact match and token F1 of the generator's answers with no context, the retrieved one and
    the gold passages (each prompt built by the same PromptBuilder, so only the context differs)."""
    answers = load_answers(dataset_dir)
    builder = PromptBuilder(system=QA_SYSTEM)
    pipeline = Pipeline(collection, generator=generator, builder=builder, search={"mode": mode, "k": RETRIEVE_K},
                        context_tokens=budget, max_new_tokens=max_new_tokens)
    texts = dict(zip(*_corpus_texts(dataset_dir)))
    scores: dict[str, dict[str, list[float]]] = {c: {"em": [], "f1": [], "ms": []} for c in ("none", "retrieved",
                                                                                             "gold")}
    for qid, question in questions:
        if qid not in answers:
            continue
        gold_chunks = [Candidate(Chunk(d, texts[d], d, 0, 0, len(texts[d])), 1.0) for d in sorted(_gold(qrels, qid))
                       if d in texts]
        prompts = {"none": builder.build(question, []).prompt,
                   "retrieved": pipeline.prepare(question).assembled.prompt,
                   "gold": builder.build(question, gold_chunks).prompt}
        for context, prompt in prompts.items():
            generation = generator.generate(prompt, max_new_tokens=max_new_tokens)
            if generation.error:
                raise RuntimeError(f"generator failed on query {qid}: {generation.error}")
            scores[context]["em"].append(exact_match(generation.text, answers[qid]))
            scores[context]["f1"].append(token_f1(generation.text, answers[qid]))
            scores[context]["ms"].append(generation.total_ms or 0.0)
            if on_answer is not None:
                on_answer(context, answers[qid], generation.text)
    return [{"system": f"{generator.name}-answers", "params": {"context": context, "context_tokens": budget,
                                                                 "max_new_tokens": max_new_tokens},
             "exact_match": float(np.mean(s["em"])) if s["em"] else None,
             "f1": float(np.mean(s["f1"])) if s["f1"] else None, "queries": len(s["em"]),
             "p50_ms": float(np.percentile(s["ms"], 50)) if s["ms"] else None}
            for context, s in scores.items()]


def _corpus_texts(dataset_dir: str | Path) -> tuple[list[str], list[str]]:
    beir = load_beir(dataset_dir)
    return beir.doc_ids, beir.doc_texts


# ---------------------------------------------------------------------- the benchmark
def run_rag(dataset_dir: str | Path, db: Any, *, collection_name: str | None = None,
            generator: Generator | None = None, counter: TokenCounter | None = None,
            budgets: Sequence[int] = DEFAULT_BUDGETS, modes: Sequence[str] = ("hybrid", "dense"),
            max_queries: int | None = None, answer_queries: int | None = 50, progress: bool = False,
            policies: Sequence[str] = ("fill", "prefix"),
            extra: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The whole report for one dataset (`lamina bench rag`)."""
    dataset_dir = Path(dataset_dir)
    beir = load_beir(dataset_dir)
    collection = ensure_collection(db, collection_name or f"rag-{dataset_dir.name}", dataset_dir, progress=progress)
    qids, texts = beir.judged_queries()
    questions = list(zip(qids, texts))[:max_queries]
    if counter is None:
        counter = generator
    if counter is None:
        from lamina.rag.tokens import default_counter

        counter = default_counter()
    results: list[dict[str, Any]] = []
    for mode in modes:
        results += context_recall(collection, questions, beir.qrels, counter=counter, budgets=budgets, mode=mode,
                                  policies=policies)
    if generator is not None and load_answers(dataset_dir):
        results += answer_quality(collection, dataset_dir, generator, questions=questions[:answer_queries],
                                  qrels=beir.qrels)
    results += list(extra)
    return make_report("rag", str(dataset_dir), results,
                       meta={"passages": len(beir.doc_ids), "counter": type(counter).__name__,
                             "generator": None if generator is None else generator.name})
