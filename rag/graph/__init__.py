"""Graph-RAG above retrieval: communities of the entity graph, their summaries, and the global mode."""

from lamina.rag.graph.communities import Community, CommunityIndex, detect_communities
from lamina.rag.graph.global_mode import GlobalAnswer, global_themes

__all__ = ["Community", "CommunityIndex", "GlobalAnswer", "detect_communities", "global_themes"]
