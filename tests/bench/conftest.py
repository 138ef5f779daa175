"""Fixtures for the benchmark-harness tests: a tiny BEIR directory written per test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


#: doc id -> (title, text); q1 and q2 are judged, q3 has no judgement, q4 only a 0.
TINY_CORPUS = {
    "d1": ("alpha", "apples and apricots"),
    "d2": ("beta", "bananas and berries"),
    "d3": ("gamma", "grapes and guavas"),
    "d4": ("", "alpha beta mixed fruit"),
    "d5": ("delta", "dates"),
    "d6": ("epsilon", "elderberries"),
}
TINY_QUERIES = {"q1": "alpha fruit", "q2": "beta fruit", "q3": "unjudged question", "q4": "only zero"}
TINY_QRELS = [("q1", "d1", 2), ("q1", "d4", 1), ("q2", "d2", 3), ("q2", "d4", 1), ("q2", "d6", 1),
              ("q4", "d5", 0)]


def write_beir(directory: Path, corpus: dict[str, tuple[str, str]], queries: dict[str, str],
               qrels: list[tuple[str, str, int]], *, header: bool = True) -> Path:
    """Write a BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "corpus.jsonl").open("w") as fh:
        for doc_id, (title, text) in corpus.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text, "metadata": {}}) + "\n")
    with (directory / "queries.jsonl").open("w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (directory / "qrels").mkdir(exist_ok=True)
    lines = (["query-id\tcorpus-id\tscore"] if header else []) + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (directory / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return directory


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)


@pytest.fixture
def beir_writer():
    """`write_beir` itself, for tests that need their own collection."""
    return write_beir
