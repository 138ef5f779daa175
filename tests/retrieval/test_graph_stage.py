"""The graph expansion of a search over a real collection: multi-hop reach, explain, fallbacks, bad input."""

from __future__ import annotations

import pytest

from lamina.index.errors import InvalidArgument
from lamina.retrieval.collection import Database
from lamina.retrieval.encoders.entities import RegexExtractor, normalise
from lamina.retrieval.query import GraphExpansion, SearchRequest

CORPUS = [
    ("film", "Stellar Voyage is a 1999 film directed by Marla Quist, about a lighthouse keeper."),
    ("bio", "Marla Quist was born in Brindlewood, a small town on the coast of Oregon."),
    ("town", "Brindlewood has a harbour, a lighthouse and a museum of shipwrecks."),
] + [(f"noise{i}", f"The director of the {w} festival was born in a city where films are made every year."
      ) for i, w in enumerate(["summer", "winter", "spring", "harvest", "jazz", "book"])]
QUESTION = "Where was the director of Stellar Voyage born?"


@pytest.fixture
def coll(tmp_path, fake_encoder_loader):
    db = Database(tmp_path, encoder_loader=fake_encoder_loader)
    coll = db.create_collection("g", encoder="hashing", graph={"extractor": "regex"})
    coll.upsert([{"id": i, "text": t} for i, t in CORPUS], wait=True)
    yield coll
    db.close()


def test_regex_extraction_on_a_crafted_text():
    mentions = RegexExtractor().extract(["The Beatles met Yoko Ono in London. Later the Beatles left London, "
                                         "and \"Abbey Road\" was the last record."])[0]
    weights = {m.key: m.weight for m in mentions}
    assert set(weights) == {"beatles", "yoko ono", "london", "abbey road", "later"}
    assert weights["london"] > weights["yoko ono"] == 1.0  # twice: 1 + log 2
    assert normalise("The Beatles'") == normalise("beatles") == "beatles"
    assert normalise("Émile  Zola's") == "emile zola"


def test_graph_reaches_the_second_hop(coll):
    dense = [h.id for h in coll.search(QUESTION, 3)]
    result = coll.query(SearchRequest.simple(QUESTION, 3, mode="graph", explain=True))
    ids = [h.id for h in result.hits]
    assert ids[0] == "film" and "bio" in ids[:2]
    assert "bio" not in dense[:2]  # the dense stage alone does not get it: the graph does
    graph = result.explain["graph"]
    assert [s["entity"] for s in graph["seeds"]] == ["Stellar Voyage"] and graph["seeds"][0]["match"] == "exact"
    bio = next(h for h, hit in zip(graph["hits"], result.hits) if hit.id == "bio")
    assert bio["path"][-1] == "chunk:bio" and "entity:Marla Quist" in bio["path"] and bio["ppr"] > 0


def test_hybrid_graph_and_push_agree_on_the_top(coll):
    exact = coll.query(SearchRequest.simple(QUESTION, 3, mode="hybrid+graph"))
    push = coll.query(SearchRequest.simple(QUESTION, 3, mode="hybrid+graph", graph=GraphExpansion(method="push")))
    assert [h.id for h in exact.hits][:2] == [h.id for h in push.hits][:2]
    rrf = coll.query(SearchRequest.simple(QUESTION, 5, mode="hybrid+graph", graph=GraphExpansion(fusion="rrf")))
    assert {"film", "bio"} <= {h.id for h in rrf.hits}


def test_no_entity_falls_back_to_the_first_stages(coll):
    request = SearchRequest.simple("where are films made every year", 4, mode="hybrid+graph", explain=True)
    result = coll.query(request)
    assert "no entity" in result.explain["graph"]["fallback"]
    plain = coll.query(SearchRequest.simple("where are films made every year", 4, mode="hybrid"))
    assert [h.id for h in result.hits] == [h.id for h in plain.hits]


def test_empty_graph_and_missing_option(tmp_path, fake_encoder_loader):
    db = Database(tmp_path, encoder_loader=fake_encoder_loader)
    empty = db.create_collection("empty", encoder="hashing", graph={"extractor": "regex"})
    empty.upsert([{"id": "x", "text": "lower case words only"}])
    result = empty.query(SearchRequest.simple("Stellar Voyage", 2, mode="hybrid+graph", explain=True))
    assert [h.id for h in result.hits] == ["x"] and "fallback" in result.explain["graph"]
    plain = db.create_collection("plain", encoder="hashing")
    plain.upsert([{"id": "x", "text": "Stellar Voyage"}])
    with pytest.raises(InvalidArgument, match="option graph"):
        plain.search("Stellar Voyage", 2, mode="hybrid+graph")
    with pytest.raises(InvalidArgument, match="graph damping"):
        GraphExpansion(damping=1.5)
    with pytest.raises(InvalidArgument, match="graph extractor"):
        db.create_collection("bad", encoder="hashing", graph={"extractor": "gpt"})
    db.close()


def test_graph_follows_writes_and_survives_a_reopen(tmp_path, fake_encoder_loader):
    db = Database(tmp_path, encoder_loader=fake_encoder_loader)
    coll = db.create_collection("g", encoder="hashing", graph={"extractor": "regex"})
    coll.upsert([{"id": i, "text": t} for i, t in CORPUS], wait=True)
    coll.upsert([{"id": "bio", "text": "Marla Quist retired to Fernhill."}], wait=True)  # replaces bio
    coll.delete(["town"], wait=True)
    before = coll.graph_side.graph.canonical()
    keys = {key for _, key in before["entities"]}
    assert "fernhill" in keys and "brindlewood" not in keys and "oregon" not in keys
    db.close()
    db = Database(tmp_path, encoder_loader=fake_encoder_loader)
    assert db.collection("g").graph_side.graph.canonical() == before
    db.close()


def test_tenants_walk_only_their_part(tmp_path, fake_encoder_loader):
    db = Database(tmp_path, encoder_loader=fake_encoder_loader)
    coll = db.create_collection("g", encoder="hashing", graph={"extractor": "regex"})
    coll.upsert([{"id": "a1", "text": "Zorblax Corp builds wings.", "tenant": "acme"},
                 {"id": "g1", "text": "Zorblax Corp sells drag to Quentin Hale.", "tenant": "globex"},
                 {"id": "g2", "text": "Quentin Hale lives in a tower.", "tenant": "globex"}])
    result = coll.query(SearchRequest.simple("Who does Zorblax Corp sell to?", 5, mode="graph", tenant="acme",
                                             explain=True))
    assert {h.tenant for h in result.hits} == {"acme"}
    assert [s["chunks"] for s in result.explain["graph"]["seeds"]] == [1]  # acme's Zorblax Corp only
    assert result.explain["graph"]["nodes"] == 2  # one entity, one chunk
    admin = coll.query(SearchRequest.simple("Zorblax Corp", 5, mode="graph"))
    assert {h.id for h in admin.hits} >= {"a1", "g1", "g2"}
    db.close()


@pytest.mark.slow
def test_spacy_extraction_on_a_crafted_text():
    pytest.importorskip("spacy")
    from lamina.retrieval.encoders.entities import SpacyExtractor

    mentions = SpacyExtractor().extract(["Which magazine was started first, Arthur's Magazine or First for Women?",
                                         "Barack Obama was born in Honolulu, Hawaii. Obama met Angela Merkel."])
    assert {"arthur magazine", "first for women"} <= {m.key for m in mentions[0]}
    keys = {m.key: m.weight for m in mentions[1]}
    assert {"barack obama", "honolulu", "hawaii", "angela merkel"} <= set(keys) and "which" not in keys
