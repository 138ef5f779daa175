"""The generator that does not generate: the pipeline then returns the assembled context and its
citations alone (retrieval-only RAG, or a caller that runs its own model)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from lamina.rag.generators.base import config_options, estimate_tokens
from lamina.rag.types import Generation, Prompt


class NoGenerator:
    """Answers every prompt with an empty `Generation` (finish reason "none"), at once."""

    name = "none"

    def generate(self, prompt: Prompt, *, max_new_tokens: int | None = None) -> Generation:
        return Generation(text="", finish_reason="none", ttft_ms=None, total_ms=0.0)

    def stream(self, prompt: Prompt, *, max_new_tokens: int | None = None,
               record: dict[str, Any] | None = None) -> Iterator[str]:
        if record is not None:
            record.update(tokens=0, finish_reason="none", total_ms=0.0)
        return iter(())

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """No tokenizer here: `estimate_tokens` (a context budget still applies to the context returned)."""
        return [estimate_tokens(text) for text in texts]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NoGenerator:
        return cls(**config_options(data, (), cls.name))

    def __repr__(self) -> str:
        return "NoGenerator()"
