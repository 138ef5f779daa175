"""The global mode: corpus-level themes from community summaries, map-reduced by a generator when given.

Without a generator the answer is extractive: the communities ranked by their relevance to the
question (cosine of the question to the community's entity names, with the dense encoder) or, with
no question, by size, each with its central entities and passages. With a generator (`rag/types.py`'s
`Generator`), each of the top communities is asked the question over its summary and central
passages (map), and one last prompt joins the partial answers (reduce), as GraphRAG's global search does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lamina.rag.graph.communities import Community, CommunityIndex
from lamina.rag.types import Generator, Prompt, PromptPart

MAP_SYSTEM = "Answer from the given passages only. If they do not bear on the question, answer: none."
REDUCE_SYSTEM = "Combine the partial answers into one answer listing the main themes. Skip answers that say none."


@dataclass
class GlobalAnswer:
    themes: list[dict[str, Any]]
    text: str | None = None  # the reduced answer, when a generator was given
    partial: list[str] = field(default_factory=list)


def rank_communities(communities: Sequence[Community], question: str | None, encoder: Any | None) -> list[int]:
    if question is None or encoder is None or not communities:
        return list(range(len(communities)))
    vectors = encoder.encode_documents([c.summary or "-" for c in communities])
    scores = vectors @ encoder.encode_queries([question])[0]
    return np.argsort(-scores, kind="stable").tolist()


def global_themes(index: CommunityIndex, *, tenant: str | None = None, question: str | None = None,
                  texts: Callable[[list[int]], list[str]] | None = None, encoder: Any | None = None,
                  generator: Generator | None = None, top: int = 5, max_new_tokens: int = 256) -> GlobalAnswer:
    """The `top` themes of `tenant`'s part of the graph (refreshing stale communities first)."""
    index.refresh_if_stale()
    communities = index.of(tenant)
    order = rank_communities(communities, question, encoder)[:top]
    themes = []
    for i in order:
        c = communities[i]
        passages = texts(list(c.chunks)) if texts is not None else []
        themes.append({"community": c.id, "entities": list(c.entities), "chunks": list(c.chunks),
                       "passages": passages, "size": c.size})
    if generator is None:
        return GlobalAnswer(themes)
    ask = question or "What are the main themes?"
    partial = []
    for theme in themes:
        parts = [PromptPart(f"Entities: {', '.join(theme['entities'])}\n")]
        parts += [PromptPart(p + "\n") for p in theme["passages"]]
        parts.append(PromptPart(f"Question: {ask}"))
        partial.append(generator.generate(Prompt(tuple(parts), MAP_SYSTEM), max_new_tokens=max_new_tokens).text)
    reduce_parts = tuple(PromptPart(f"Partial answer {j + 1}: {text}\n") for j, text in enumerate(partial))
    final = generator.generate(Prompt(reduce_parts + (PromptPart(f"Question: {ask}"),), REDUCE_SYSTEM),
                               max_new_tokens=max_new_tokens)
    return GlobalAnswer(themes, final.text, partial)
