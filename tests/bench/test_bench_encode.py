"""`lamina bench encode`'s sparse report on a tiny BEIR set: every system scored, against references."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lamina.bench.encode import _fuse, run_sparse_quality
from lamina.bench.quality import _ranked, score_run
from lamina.retrieval.encoders.sparse import BM25Encoder
from lamina.retrieval.fusion import reciprocal_rank_fusion

from tests.retrieval.test_splade import DOCS, mlm_dir  # noqa: F401 - the tiny masked-LM fixture


def beir_dir(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n"
                                                   for i, t in enumerate(DOCS)))
    queries = {"q1": "wing drag", "q2": "heat flow", "q3": "sort list file"}
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                    for q, t in queries.items()))
    qrels = [("q1", "d0"), ("q2", "d2"), ("q3", "d3"), ("q3", "d5")]
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                                 + "".join(f"{q}\t{d}\t1\n" for q, d in qrels))
    qrels_map: dict[str, dict[str, int]] = {}
    for q, d in qrels:
        qrels_map.setdefault(q, {})[d] = 1
    return tmp_path, queries, qrels_map


@pytest.mark.slow  # ranx's numba compile and a model load: tens of seconds
def test_sparse_report_matches_references(tmp_path, mlm_dir):  # noqa: F811
    directory, queries, qrels = beir_dir(tmp_path)
    report = run_sparse_quality(directory, sparse=str(mlm_dir), with_dense=False)
    systems = report["systems"]
    assert report["documents"] == len(DOCS) and report["queries"] == 3
    # BM25 by scipy, exact, over the same texts
    enc = BM25Encoder().fit(DOCS)
    scores = (enc.encode_queries(list(queries.values())).to_scipy(enc.vocab_size)
              @ enc.encode_documents(DOCS).to_scipy(enc.vocab_size).T).toarray()
    run = {q: _ranked([f"d{i}" for i in np.lexsort((np.arange(len(DOCS)), -row)) if row[i] > 0])
           for q, row in zip(queries, scores)}
    expected = score_run(run, qrels, ("ndcg@10", "recall@100"))
    assert systems["bm25"]["ndcg@10"] == round(expected["ndcg@10"], 4)
    name = f"{mlm_dir} (table queries)"
    assert systems[name]["index_bytes"] > 0 and systems[name]["terms_per_doc"] > 0
    assert f"rrf(bm25 + {name})" in systems and f"weighted(bm25 + {name})" in systems
    for metrics in systems.values():
        assert 0.0 <= metrics["ndcg@10"] <= 1.0 and 0.0 <= metrics["recall@100"] <= 1.0


def test_fusion_is_the_library_fusion():
    a = [(np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0], np.float32))]
    b = [(np.array([3, 4]), np.array([5.0, 1.0], np.float32))]
    ids, scores = _fuse([a, b], "rrf")[0]
    want_ids, want_scores = reciprocal_rank_fusion([a[0], b[0]], limit=100)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores)
