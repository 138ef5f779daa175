"""`bench quality`'s rows: modes x fusions x feedback, and a rerank KAPPA honoured as given."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lamina.bench.quality import QualitySearcher, quality_configs
from lamina.cli import main
from lamina.index.errors import InvalidArgument
from lamina.index.types import Hit
from lamina.retrieval.query import SearchResult

FIRST_STAGE = [f"d{i}" for i in range(100)]


class RecordingCollection:
    """Answers every request from one fixed first-stage ranking; a reranked request gets the
    best `kappa` of it reversed (a visible reorder). Records each request."""

    def __init__(self) -> None:
        self.requests = []

    def query(self, request):
        self.requests.append(request)
        if request.rerank is not None:
            ids = FIRST_STAGE[:request.rerank.kappa][::-1][:request.k]
        else:
            ids = FIRST_STAGE[:request.k]
        return SearchResult([Hit(i, 1.0) for i in ids])


def test_rerank_kappa_is_honoured_as_given():
    for kappa in (20, 150):
        coll = RecordingCollection()
        hits = QualitySearcher(coll, mode="hybrid", kappa=kappa, alpha=0.05, beta=10).search("q", 100)
        head, tail = coll.requests
        assert head.k == 10 and (head.rerank.kappa, head.rerank.alpha, head.rerank.beta) == (kappa, 0.05, 10)
        assert tail.rerank is None and tail.k == 100
        reranked = FIRST_STAGE[:kappa][::-1][:10]  # the best 10 of kappa reranked, then the rest in order
        assert [h.id for h in hits] == reranked + [i for i in FIRST_STAGE if i not in reranked]
    coll = RecordingCollection()
    assert len(QualitySearcher(coll, kappa=5).search("q", 100)) == 100 and coll.requests[0].k == 5


def test_fusion_and_weights_reach_the_request():
    coll = RecordingCollection()
    QualitySearcher(coll, mode="hybrid", fusion="weighted", weights=(1.0, 0.5), feedback=2).search("q", 10)
    fusion = coll.requests[0].fusion
    assert (fusion.method, fusion.weights, fusion.feedback_docs) == ("weighted", (1.0, 0.5), 2)
    QualitySearcher(coll, mode="hybrid").search("q", 10)
    assert coll.requests[1].fusion.method == "adaptive"


def test_configs_cross_modes_fusions_and_feedback():
    rows = quality_configs("dense,hybrid", "rrf,adaptive", "1,0.5", feedbacks="0,1")
    names = [name for name, _ in rows]
    assert names == ["lamina-dense", "lamina-hybrid-rrf(1,0.5)+fb0", "lamina-hybrid-rrf(1,0.5)+fb1",
                     "lamina-hybrid-adaptive(1,0.5)+fb0", "lamina-hybrid-adaptive(1,0.5)+fb1"]
    assert rows[0][1]["weights"] is None and rows[1][1]["weights"] == (1.0, 0.5)
    (name, options), = quality_configs("sparse", kappa=30, alpha=0.1)
    assert name == "lamina-sparse+rerank30,alpha=0.1" and options["kappa"] == 30


@pytest.mark.parametrize("args, match", [
    (("fuzzy",), "unknown mode"),
    (("hybrid", "borda"), "unknown fusion"),
    (("hybrid", None, "1,x"), "numbers"),
    (("hybrid", None, "1,2,3"), "got 3 weights"),
    (("hybrid", None, None, 0), "kappa"),
    (("hybrid", None, None, None, 0.1), "--rerank"),
    (("hybrid", None, None, 10, 1.5), "alpha"),
])
def test_bad_options_name_what_is_wrong(args, match):
    with pytest.raises(InvalidArgument, match=match):
        quality_configs(*args)


def test_cli_rejects_a_bad_fusion_before_opening_anything(tmp_path):
    (tmp_path / "beir").mkdir()
    result = CliRunner().invoke(main, ["bench", "quality", str(tmp_path / "beir"), "--collection", "c",
                                       "--mode", "hybrid", "--fusion", "borda", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2 and "unknown fusion 'borda'" in result.output
    assert not (tmp_path / "d").exists()
