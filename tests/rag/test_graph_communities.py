"""Communities of the entity graph (Leiden), their extractive summaries, staleness, and the global mode."""

from __future__ import annotations

import pytest

from lamina.rag.graph import CommunityIndex, global_themes
from lamina.rag.graph.llm import GeneratorExtractor
from lamina.rag.types import Generation
from lamina.retrieval.collection import Database

TOPICS = {
    "space": ["Apollo Eleven", "Neil Armstrong", "Buzz Aldrin", "Saturn Five"],
    "music": ["Abbey Road", "John Lennon", "Paul McCartney", "Ringo Starr"],
}


def corpus():
    docs = []
    for topic, names in TOPICS.items():
        for i in range(6):
            a, b, c = names[i % 4], names[(i + 1) % 4], names[(i + 2) % 4]
            docs.append({"id": f"{topic}{i}", "text": f"{a} met {b} and later {c}."})
    return docs


class EchoGenerator:
    name = "echo"

    def __init__(self):
        self.prompts = []

    def generate(self, prompt, *, max_new_tokens=256):
        self.prompts.append(prompt)
        return Generation(text=f"answer {len(self.prompts)}")

    def stream(self, prompt, *, max_new_tokens=256):
        yield self.generate(prompt).text

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]


@pytest.fixture
def coll(tmp_path, fake_encoder_loader):
    db = Database(tmp_path, encoder_loader=fake_encoder_loader)
    coll = db.create_collection("g", encoder="hashing", graph={"extractor": "regex", "synonym_threshold": 1.0})
    coll.upsert(corpus())
    yield coll
    db.close()


def test_two_topics_are_two_communities(coll):
    index = CommunityIndex(coll.graph_side)
    assert index.refresh_if_stale() and not index.refresh_if_stale()  # fresh until the graph changes
    communities = index.of(None)
    assert len(communities) == 2
    by_names = [set(c.entities) for c in communities]
    assert {frozenset(s) for s in by_names} == {frozenset(v) for v in TOPICS.values()}
    docs = {coll.store.doc_ids("g", list(c.chunks))[0][:5] for c in communities}
    assert docs == {"space", "music"}
    coll.upsert([{"id": f"x{i}", "text": f"Yuri Gagarin met Neil Armstrong {i}."} for i in range(3)])
    assert index.stale()  # 3 new chunks >= 10% of 15: stale, refreshed only when asked (never on the write)
    assert index.refresh_if_stale()


def test_global_mode_extractive_and_map_reduce(coll):
    index = CommunityIndex(coll.graph_side)
    texts = lambda iids: [d.text for d in coll.store.get_documents("g", coll.store.doc_ids("g", iids))]  # noqa: E731
    answer = global_themes(index, question="Who walked on the moon with Armstrong?", texts=texts,
                           encoder=coll.encoder, top=1)
    assert answer.text is None and len(answer.themes) == 1
    assert "Neil Armstrong" in answer.themes[0]["entities"] and answer.themes[0]["passages"]
    generator = EchoGenerator()
    answer = global_themes(index, texts=texts, generator=generator, top=2)
    assert answer.partial == ["answer 1", "answer 2"] and answer.text == "answer 3"
    assert "Partial answer 2: answer 2" in generator.prompts[-1].user


def test_generator_extractor_parses_lines():
    class Lister(EchoGenerator):
        def generate(self, prompt, *, max_new_tokens=256):
            return Generation(text="- Marie Curie\n- Warsaw\n- radium\n\n")

    mentions = GeneratorExtractor(Lister()).extract(["Marie Curie was born in Warsaw."])[0]
    assert {m.key: m.weight for m in mentions} == {"marie curie": 1.0, "warsaw": 0.5, "radium": 0.5}
