"""End to end on Cranfield with the real all-MiniLM-L6-v2: build, then quality in-process and over gRPC.

The index must match exact retrieval over the same embeddings (a flat index is exact), and the
figure must be the known exact all-MiniLM-L6-v2 result on Cranfield over title + text (0.506).
"""

import json
import signal

import numpy as np
import pytest
from click.testing import CliRunner

from lamina.bench.datasets import load_beir
from lamina.bench.quality import exact_top_k, score_run
from lamina.cli import main
from lamina.retrieval.collection import Database
from lamina.retrieval.encoders.dense import load_dense_encoder

KNOWN_EXACT_NDCG10 = 0.506  # exact all-MiniLM-L6-v2 on Cranfield, title and text joined by a space


@pytest.fixture(scope="module")
def built(tmp_path_factory, cranfield):
    data = tmp_path_factory.mktemp("cran-data")
    result = CliRunner().invoke(main, ["build", str(cranfield), "--collection", "cran", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "1400 written" in result.output
    return cranfield, data


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def exact_ndcg(cranfield, data) -> float:
    """nDCG@10 of numpy brute force over the vectors the build stored."""
    beir = load_beir(cranfield)
    qids, texts = beir.judged_queries()
    with Database(data) as db:
        docs = db.collection("cran").get(beir.doc_ids, with_vectors=True)
    doc_vectors = np.stack([d.vector for d in docs])
    queries = load_dense_encoder().encode_queries(texts)
    top = exact_top_k(queries, doc_vectors, 100)
    run = {q: {beir.doc_ids[j]: float(100 - r) for r, j in enumerate(row)} for q, row in zip(qids, top)}
    return score_run(run, {q: beir.qrels[q] for q in qids})["ndcg@10"]


@pytest.mark.slow
def test_cranfield_quality_matches_exact_retrieval_in_process_and_over_grpc(built, start_server):
    cranfield, data = built
    local = CliRunner().invoke(main, ["bench", "quality", str(cranfield), "--collection", "cran", "--json",
                                      "--data-dir", str(data)])
    assert local.exit_code == 0, local.output
    report = last_json_line(local.output)
    assert report["benchmark"] == "quality" and report["results"][0]["system"] == "lamina-dense"
    assert set(report) >= {"ndcg@10", "mrr@10", "recall@100"}

    exact = exact_ndcg(cranfield, data)
    assert abs(report["ndcg@10"] - exact) <= 0.005
    assert abs(exact - KNOWN_EXACT_NDCG10) <= 0.005

    proc, target = start_server(data)
    try:
        remote = CliRunner().invoke(main, ["bench", "quality", str(cranfield), "--collection", "cran", "--json",
                                           "--target", target])
        assert remote.exit_code == 0, remote.output
        remote_report = last_json_line(remote.output)
        for key in ("ndcg@10", "mrr@10", "recall@100"):
            assert remote_report[key] == pytest.approx(report[key], abs=1e-9)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
