import json

import pytest
from lamina.bench.rag import (
    answer_quality,
    context_recall,
    ensure_collection,
    exact_match,
    normalize_answer,
    run_rag,
    token_f1,
)
from lamina.bench.datasets import load_beir
from lamina.retrieval.collection import Database

from tests.rag.conftest import EchoGenerator, WordCounter

PASSAGES = {
    "p1": "Zubrowka is the capital of Freedonia.",
    "p2": "Freedonia lies north of Sylvania, on the river Elbe.",
    "p3": "Sylvania exports cheese and tin.",
    "p4": "The Elbe flows into the North Sea.",
}
QUERIES = [("q1", "What is the capital of Freedonia?", "Zubrowka", ["p1", "p2"]),
           ("q2", "What does Sylvania export?", "cheese and tin", ["p3"])]


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "qa"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                               for k, v in PASSAGES.items()))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t, "answer": a}) + "\n"
                                                for q, t, a, _ in QUERIES))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t1\n" for q, _, _, golds in QUERIES for d in golds))
    return root


@pytest.fixture
def db(tmp_path, fake_encoder_loader):
    database = Database(tmp_path / "data", encoder_loader=fake_encoder_loader)
    yield database
    database.close()


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Zubrowka.", "Zubrowka") == 1.0 and exact_match("Zubrowka city", "Zubrowka") == 0.0
    assert token_f1("cheese and tin", "tin and cheese") == 1.0
    assert token_f1("cheese", "cheese and tin") == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


def test_context_recall_counts_gold_inside_the_context(dataset, db):
    collection = ensure_collection(db, "qa", dataset)
    assert collection.count() == len(PASSAGES)
    beir = load_beir(dataset)
    questions = [(q, t) for q, t, _, _ in QUERIES]
    big, small = context_recall(collection, questions, beir.qrels, counter=WordCounter(), budgets=(1000, 16),
                                mode="dense", k=4)
    assert big["context_recall"] == 1.0 and big["all_gold_rate"] == 1.0 and big["chunks_in_context"] == 4
    assert big["search_recall_at_n"] == 1.0
    # 16 tokens (8 of overhead a chunk) hold exactly one passage: the best-ranked one that fits
    assert small["chunks_in_context"] == 1.0
    fits = {d for d, text in PASSAGES.items() if len(text.split()) + 8 <= 16}
    top = [next(h.id for h in collection.search(t, k=4) if h.id in fits) for _, t in questions]
    expected = sum(len({top[i]} & set(QUERIES[i][3])) / len(QUERIES[i][3]) for i in range(2)) / 2
    assert small["context_recall"] == pytest.approx(expected)
    assert small["context_recall"] <= small["search_recall_at_n"] + 1e-12
    assert {"retrieve_ms", "postprocess_ms", "assemble_ms", "overhead_ms"} == set(small["stages"])


def test_answer_quality_scores_three_contexts(dataset, db):
    collection = ensure_collection(db, "qa", dataset)
    beir = load_beir(dataset)
    seen = []
    rows = answer_quality(collection, dataset, EchoGenerator(), questions=[(q, t) for q, t, _, _ in QUERIES],
                          qrels=beir.qrels, mode="dense", on_answer=lambda *a: seen.append(a))
    by_context = {row["params"]["context"]: row for row in rows}
    assert set(by_context) == {"none", "retrieved", "gold"} and all(r["queries"] == 2 for r in rows)
    # the echo generator repeats passage [1]: with no context it says "I do not know."
    assert by_context["none"]["exact_match"] == 0.0
    assert [a[2] for a in seen if a[0] == "gold"][0] == PASSAGES["p1"]


def test_run_rag_reports_every_mode_and_budget(dataset, db):
    report = run_rag(dataset, db, counter=WordCounter(), budgets=(64, 1000), modes=("dense", "sparse"),
                     policies=("fill", "prefix"))
    rows = [(r["system"], r["params"]["context_tokens"], r["params"]["policy"]) for r in report["results"]]
    assert rows == [(f"lamina-rag-{m}", b, p) for m in ("dense", "sparse") for b in (64, 1000) for p in ("fill", "prefix")]
    for row in report["results"]:
        if row["params"]["policy"] == "prefix":  # the best chunks up to the budget: the search's own top n
            assert row["context_recall"] == row["search_recall_at_n"]
    assert report["benchmark"] == "rag" and report["meta"]["passages"] == len(PASSAGES)
