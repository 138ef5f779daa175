"""Optional LLM roles for the graph, behind the same Protocols as the LLM-free ones, using the RAG generator.

`GeneratorExtractor` is an `EntityExtractor` (lamina.retrieval.encoders.entities) that asks a
`Generator` for each chunk's entities, one per line; plug it in with
`collection.graph_side.extractor = GeneratorExtractor(generator)`. `GeneratorSummariser` writes a
community's summary from its central entities and passages. Neither is on any default path: the graph
is built and summarised without an LLM unless one is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lamina.rag.graph.communities import Community
from lamina.rag.types import Generator, Prompt, PromptPart
from lamina.retrieval.encoders.entities import CHUNK_WEIGHT, NER_WEIGHT, Mention, _collect

EXTRACT_SYSTEM = ("List the named entities and key noun phrases of the text, one per line, most important "
                  "first. No numbering, no commentary.")
SUMMARY_SYSTEM = "Summarise in two sentences what these passages and names have in common."


class CommunitySummariser(Protocol):
    def summarise(self, community: Community, passages: Sequence[str]) -> str: ...


class GeneratorExtractor:
    name = "llm"

    def __init__(self, generator: Generator, *, max_new_tokens: int = 128) -> None:
        self.generator = generator
        self.max_new_tokens = max_new_tokens

    def extract(self, texts: Sequence[str]) -> list[list[Mention]]:
        out = []
        for text in texts:
            answer = self.generator.generate(Prompt((PromptPart(text, None),), EXTRACT_SYSTEM),
                                             max_new_tokens=self.max_new_tokens).text
            lines = [line.strip(" -*\t") for line in answer.splitlines() if line.strip(" -*\t")]
            # the first half of the list as entities, the rest as weaker phrases
            half = max(1, len(lines) // 2)
            out.append(_collect([(ln, NER_WEIGHT if i < half else CHUNK_WEIGHT) for i, ln in enumerate(lines)]))
        return out


class GeneratorSummariser:
    def __init__(self, generator: Generator, *, max_new_tokens: int = 96) -> None:
        self.generator = generator
        self.max_new_tokens = max_new_tokens

    def summarise(self, community: Community, passages: Sequence[str]) -> str:
        parts = (PromptPart(f"Names: {', '.join(community.entities)}\n"),) + tuple(PromptPart(p + "\n") for p in passages)
        return self.generator.generate(Prompt(parts, SUMMARY_SYSTEM), max_new_tokens=self.max_new_tokens).text
