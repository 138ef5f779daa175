"""The graph-RAG peer of `lamina bench graph`: LightRAG fed the same LLM-free entities, when it is installed."""

from __future__ import annotations

from typing import Any


def run_lightrag(beir: Any, coll: Any, encoder: Any, *, max_queries: int | None = None) -> dict[str, Any]:
    try:
        import lightrag  # noqa: F401
    except ImportError as exc:
        return {"system": "lightrag", "params": {}, "error": f"not run: lightrag-hku is not installed ({exc})"}
    raise NotImplementedError
