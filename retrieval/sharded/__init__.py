"""Scale-out on Ray: a collection sharded over N actors, each a single-node `Collection`
(`ShardedCollection`), and a distributed build into it (`lamina.retrieval.sharded.build`)."""

from lamina.retrieval.sharded.collection import ShardedCollection, ensure_ray
from lamina.retrieval.sharded.routing import shard_of

__all__ = ["ShardedCollection", "ensure_ray", "shard_of"]
