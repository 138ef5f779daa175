"""The graph-RAG peer of `lamina bench graph`: LightRAG fed the same LLM-free entities.

Not run yet, and reported as such in the benchmark's results: LightRAG (`lightrag-hku` 1.5.7) adds some 30
packages, and its default tokenizer (tiktoken) fetches a file on first use, which this machine cannot; wiring
`insert_custom_kg` with our entities and a local tokenizer is the open work (issue #21).
"""

from __future__ import annotations

from typing import Any

NOT_RUN = ("not run: feeding LightRAG our LLM-free entities through insert_custom_kg is not wired yet "
           "(its default tiktoken tokenizer needs a network download); see bench/RESULTS.md, Graph-RAG")


def run_lightrag(beir: Any, coll: Any, encoder: Any, *, max_queries: int | None = None) -> dict[str, Any]:
    """The peer's result row: today always the reason it did not run."""
    return {"system": "lightrag", "params": {}, "error": NOT_RUN}
