"""Fixtures of the RAG tests: a small text collection over the hashing encoder, and fake generators
that implement the Generator Protocol deterministically (the real ones are tested in generators/)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pytest
from lamina.rag.types import Generation, GenerationError, Prompt
from lamina.retrieval.collection import Database

PASSAGES = {
    "wings": "The lift of a wing grows with its angle of attack until the flow separates and the wing stalls.",
    "heat": "Heat transfer in a laminar boundary layer is slower than in a turbulent one.",
    "shock": "A normal shock wave raises the pressure and lowers the Mach number of a supersonic flow.",
    "drag": "Induced drag falls as the wing span grows, which is why gliders have long wings.",
    "sort": "Python's sorted function returns a new list; list.sort sorts a list in place.",
}


class WordCounter:
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(re.findall(r"\S+", t)) for t in texts]


class EchoGenerator(WordCounter):
    """Answers with the first passage it was given, word by word; records the prompts it saw."""

    name = "echo"

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []

    def _answer(self, prompt: Prompt) -> str:
        chunks = [p.text for p in prompt.parts if p.chunk_id is not None]
        return chunks[0] if chunks else "I do not know."

    def generate(self, prompt: Prompt, *, max_new_tokens: int = 256) -> Generation:
        self.prompts.append(prompt)
        text = " ".join(self._answer(prompt).split()[:max_new_tokens])
        return Generation(text, tokens=len(text.split()), ttft_ms=1.0, prefill_ms=0.5, total_ms=2.0,
                          stats={"kv_hits": 0})

    def stream(self, prompt: Prompt, *, max_new_tokens: int = 256) -> Iterator[str]:
        self.prompts.append(prompt)
        words = self._answer(prompt).split()[:max_new_tokens]
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
        return Generation(" ".join(words), tokens=len(words), total_ms=2.0, stats={"kv_hits": 0})


class DownGenerator(WordCounter):
    """An endpoint that is down: generate reports it, stream fails after one piece."""

    name = "down"

    def generate(self, prompt: Prompt, *, max_new_tokens: int = 256) -> Generation:
        return Generation("", error="endpoint http://127.0.0.1:9/v1/chat/completions refused the connection")

    def stream(self, prompt: Prompt, *, max_new_tokens: int = 256) -> Iterator[str]:
        yield "The"
        raise GenerationError("endpoint http://127.0.0.1:9/v1/chat/completions closed the stream")


@pytest.fixture
def rag_db(tmp_path, fake_encoder_loader):
    db = Database(tmp_path / "data", encoder_loader=fake_encoder_loader)
    yield db
    db.close()


@pytest.fixture
def passages(rag_db):
    collection = rag_db.create_collection("docs", encoder="hashing", payload={"parent": "keyword"})
    collection.upsert([{"id": key, "text": text, "tenant": "acme" if key != "sort" else "globex"}
                       for key, text in PASSAGES.items()], wait=True)
    return collection
