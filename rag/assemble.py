"""Prompt assembly: the chosen chunks in order, a Jinja2 template, and numbered citations.

Haystack's PromptBuilder is the model: the template is checked when the builder is made (a
variable it references that the builder does not provide is an InvalidArgument then, not a
blank in a prompt later), and rendering is strict. The template sees

    question   the user's question
    chunks     the chosen chunks in prompt order, each with number (its citation, from 1), text,
               id, parent, source, page, section, score
    ...        any extra variables declared with `variables=`

Each chunk's text is inserted verbatim, so the rendered message splits into `PromptPart`s at
chunk boundaries: a part that is one chunk names it, which is what a chunk-KV cache reuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.meta
from lamina.index.errors import InvalidArgument
from lamina.rag.postprocess import Candidate
from lamina.rag.types import Prompt, PromptPart

DEFAULT_SYSTEM = ("You answer questions from the numbered context passages you are given. Answer briefly, "
                  "cite the passages you use as [n], and say so when the context does not contain the answer.")
DEFAULT_TEMPLATE = """Context:
{% for chunk in chunks %}[{{ chunk.number }}] {{ chunk.text }}
{% endfor %}
Question: {{ question }}
Answer:"""
ORDERS = ("rank", "document", "sandwich")
BUILTIN_VARIABLES = frozenset({"question", "chunks"})
_MARK = "\x00lamina-chunk-{}\x00"  # stands for a chunk's text while rendering; never in user text


@dataclass(frozen=True)
class Citation:
    """Where a numbered context passage comes from."""

    number: int
    chunk_id: str
    parent: str
    start: int
    end: int
    score: float
    source: str | None = None
    page: int | None = None
    section: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Assembled:
    """A prompt ready for a generator, its citations in number order, and the chunks as placed."""

    prompt: Prompt
    citations: list[Citation]
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def context(self) -> str:
        """The rendered user message: context passages and question."""
        return self.prompt.user


def order_candidates(candidates: Sequence[Candidate], order: str) -> list[Candidate]:
    """rank: best first; document: by parent, then position (reads like the sources);
    sandwich: best at both ends and the weakest in the middle (models attend least to the middle,
    Liu et al., "Lost in the Middle", 2023)."""
    if order == "rank":
        return list(candidates)
    if order == "document":
        return sorted(candidates, key=lambda c: (c.chunk.parent, c.chunk.position))
    return list(candidates[0::2]) + list(candidates[1::2])[::-1]


class PromptBuilder:
    """Renders chunks and a question into a `Prompt` through a Jinja2 template."""

    def __init__(self, template: str = DEFAULT_TEMPLATE, *, system: str | None = DEFAULT_SYSTEM,
                 order: str = "rank", variables: Mapping[str, Any] | None = None) -> None:
        if order not in ORDERS:
            raise InvalidArgument(f"unknown chunk order {order!r}; expected one of {', '.join(ORDERS)}")
        self.template_source = template
        self.system = system
        self.order = order
        self.variables = dict(variables or {})
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
        try:
            parsed = env.parse(template)
        except jinja2.TemplateSyntaxError as exc:
            raise InvalidArgument(f"prompt template line {exc.lineno}: {exc.message}") from None
        unknown = jinja2.meta.find_undeclared_variables(parsed) - BUILTIN_VARIABLES - set(self.variables)
        if unknown:
            raise InvalidArgument(
                f"prompt template references unknown variable(s) {', '.join(sorted(unknown))}; it may use "
                f"{', '.join(sorted(BUILTIN_VARIABLES | set(self.variables)))} (declare others with variables=)")
        self._template = env.from_string(template)

    def build(self, question: str, candidates: Sequence[Candidate]) -> Assembled:
        placed = order_candidates(candidates, self.order)
        chunks = [{"number": i + 1, "text": _MARK.format(i), "id": c.chunk.id, "parent": c.chunk.parent,
                   "source": c.chunk.source, "page": c.chunk.page, "section": c.chunk.section, "score": c.score}
                  for i, c in enumerate(placed)]
        try:
            rendered = self._template.render(question=question, chunks=chunks, **self.variables)
        except jinja2.TemplateError as exc:
            raise InvalidArgument(f"prompt template failed to render: {exc}") from None
        parts = _split_parts(rendered, placed)
        citations = [Citation(i + 1, c.chunk.id, c.chunk.parent, c.chunk.start, c.chunk.end, c.score,
                              c.chunk.source, c.chunk.page, c.chunk.section) for i, c in enumerate(placed)]
        return Assembled(Prompt(tuple(parts), system=self.system), citations, placed)

    def to_dict(self) -> dict[str, Any]:
        return {"template": self.template_source, "system": self.system, "order": self.order,
                "variables": self.variables}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptBuilder:
        return cls(data.get("template", DEFAULT_TEMPLATE), system=data.get("system", DEFAULT_SYSTEM),
                   order=data.get("order", "rank"), variables=data.get("variables"))


def _split_parts(rendered: str, placed: Sequence[Candidate]) -> list[PromptPart]:
    """Cut the rendered text at the chunk marks: literal runs and one part per chunk occurrence."""
    parts: list[PromptPart] = []
    rest = rendered
    while True:
        cut = rest.find("\x00lamina-chunk-")
        if cut < 0:
            break
        end = rest.index("\x00", cut + 1)
        number = int(rest[cut + len("\x00lamina-chunk-"):end])
        if cut:
            parts.append(PromptPart(rest[:cut]))
        chunk = placed[number].chunk
        parts.append(PromptPart(chunk.text, chunk.id))
        rest = rest[end + 1:]
    if rest:
        parts.append(PromptPart(rest))
    return parts
