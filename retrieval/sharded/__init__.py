"""Scale-out on Ray: a collection sharded over N actors, each a single-node `Collection`
(`ShardedCollection`), and a distributed build into it (`lamina.retrieval.sharded.build`)."""

from lamina.retrieval.sharded.collection import ShardedCollection
from lamina.retrieval.sharded.routing import shard_of
from lamina.retrieval.sharded.runtime import ensure_ray

__all__ = ["ShardedCollection", "ensure_ray", "shard_of"]
