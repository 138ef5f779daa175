"""The entity graph of a collection: its storage format in the store and its PPR kernels."""

from lamina.index.graph.graph import ChunkEntities, EntityGraph, GraphDelta
from lamina.index.graph.kernels import adjacency, ppr_power, ppr_push

__all__ = ["ChunkEntities", "EntityGraph", "GraphDelta", "adjacency", "ppr_power", "ppr_push"]
