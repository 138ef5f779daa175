"""The pipeline's graph stage: mode "hybrid+graph" expands the first stages' hits over the entity graph
(personalised PageRank) before postprocessing, with the collection's own graph search as the reference."""

import pytest
from lamina.index.errors import InvalidArgument
from lamina.rag import Pipeline
from lamina.retrieval.query import GraphExpansion, SearchRequest

from tests.rag.conftest import WordCounter

# a two-hop question: the film's chunk names its director, whose birthplace is in a chunk that shares no
# word with the question; only the graph (through the entity "Mira Kolt") links the two
DOCS = {
    "film": "The film Zeta Run was directed by Mira Kolt in the winter.",
    "born": "Mira Kolt grew up in Port Haven near the old lighthouse.",
    "ferry": "The ferry timetable lists departures every hour.",
    "bread": "Sourdough bread needs flour, water and patience.",
    "rain": "Heavy rain fell over the valley for days.",
}
QUESTION = "Zeta Run film director hometown"


@pytest.fixture
def graph_docs(rag_db):
    collection = rag_db.create_collection("kg", encoder="hashing", graph={"extractor": "regex"})
    collection.upsert([{"id": key, "text": text} for key, text in DOCS.items()], wait=True)
    return collection


def test_the_graph_stage_brings_the_second_hop_into_the_context(graph_docs):
    options = {"limit": 20, "damping": 0.5}
    pipeline = Pipeline(graph_docs, counter=WordCounter(), search={"mode": "hybrid+graph", "k": 3, "graph": options})
    result = pipeline.run(QUESTION, explain=True)
    reference = graph_docs.query(SearchRequest.simple(QUESTION, 3, mode="hybrid+graph",
                                                      graph=GraphExpansion(**options), explain=True))
    assert [c.id for c in result.chunks] == [h.id for h in reference.hits]
    assert "born" in [c.id for c in result.chunks]
    plain = Pipeline(graph_docs, counter=WordCounter(), search={"mode": "hybrid", "k": 3}).run(QUESTION)
    assert "born" not in [c.id for c in plain.chunks]  # without the graph stage the second hop is missed
    paths = {tuple(h["path"]) for h in result.explain["retrieve"]["graph"]["hits"]}
    assert ("chunk:film", "entity:Mira Kolt", "chunk:born") in paths


def test_graph_options_survive_to_dict_and_from_dict(graph_docs):
    pipeline = Pipeline(graph_docs, counter=WordCounter(),
                        search={"mode": "hybrid+graph", "graph": GraphExpansion(limit=30, method="push")})
    data = pipeline.to_dict()
    assert data["search"]["graph"]["limit"] == 30 and data["search"]["graph"]["method"] == "push"
    again = Pipeline.from_dict(data, graph_docs, counter=WordCounter())
    assert again.request(QUESTION).graph == GraphExpansion(limit=30, method="push")
    assert [c.id for c in again.run(QUESTION).chunks] == [c.id for c in pipeline.run(QUESTION).chunks]


def test_bad_graph_options_are_named_at_construction(graph_docs):
    with pytest.raises(InvalidArgument, match="unknown graph option\\(s\\) dampin; expected damping, eps"):
        Pipeline(graph_docs, counter=WordCounter(), search={"mode": "hybrid+graph", "graph": {"dampin": 0.5}})
    with pytest.raises(InvalidArgument, match="graph damping must be a number in \\[0, 0.99\\], got 2"):
        Pipeline(graph_docs, counter=WordCounter(), search={"mode": "hybrid+graph", "graph": {"damping": 2}})


def test_a_graph_mode_on_a_collection_without_a_graph_names_the_option(passages):
    pipeline = Pipeline(passages, counter=WordCounter(), search={"mode": "hybrid+graph"})
    with pytest.raises(InvalidArgument, match="has no entity graph"):
        pipeline.run("wing lift")
