"""Lamina: retrieval and vector search.

In-process:

    from lamina import Database
    with Database("./lamina-data") as db:
        docs = db.get_or_create_collection("docs")
        docs.upsert([{"id": "1", "text": "lift of a wing in a slipstream"}], wait=True)
        hits = docs.search("wing lift", k=5, mode="hybrid")

Over gRPC: `lamina.Client("127.0.0.1:50051")` offers the same calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lamina.index import errors
from lamina.index.facets import FacetCount, FacetResult, NumericStats
from lamina.index.filters import Exists, Filter, Match, MatchAny, Range
from lamina.index.types import (
    CollectionConfig,
    Document,
    Hit,
    IndexConfig,
    MultivectorConfig,
    RowResult,
    SparseConfig,
)
from lamina.rag import Pipeline, PromptBuilder, RagResult  # also offers Collection.as_pipeline
from lamina.retrieval.collection import Collection, Database
from lamina.retrieval.query import Fusion, Rerank, SearchRequest, SearchResult, Stage

__all__ = [
    "Client",
    "Collection",
    "CollectionConfig",
    "Database",
    "Document",
    "Exists",
    "FacetCount",
    "FacetResult",
    "Filter",
    "Fusion",
    "Hit",
    "IndexConfig",
    "Match",
    "MatchAny",
    "MultivectorConfig",
    "NumericStats",
    "Pipeline",
    "PromptBuilder",
    "RagResult",
    "Range",
    "Rerank",
    "RowResult",
    "SearchRequest",
    "SearchResult",
    "SparseConfig",
    "Stage",
    "errors",
]

if TYPE_CHECKING:
    from lamina.service.client import Client


def __getattr__(name: str) -> Any:
    # the gRPC client pulls in grpc and the stubs: load it only when asked for
    if name == "Client":
        from lamina.service.client import Client

        return Client
    raise AttributeError(f"module 'lamina' has no attribute {name!r}")
