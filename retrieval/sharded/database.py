"""`ShardedDatabase`: a `Database` whose named collections are sharded, for the gRPC servicers.

The servicers reach collections only through `database.collection(name)`; this proxy answers that
with a `ShardedCollection` for the sharded names and delegates everything else (the key store,
other collections, backups) to the single-node `Database` of the data directory. So a sharded
collection is served with the same authentication and tenant scoping as any other: the servicer
binds the caller's tenant before the router sees the request. Creating or dropping a sharded
collection over gRPC is refused (it is made by `lamina build-ray` or `ShardedCollection.create`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lamina.index.errors import FailedPrecondition
from lamina.index.types import CollectionConfig
from lamina.retrieval.collection import Database
from lamina.retrieval.sharded.collection import ShardedCollection


class ShardedDatabase:
    def __init__(self, database: Database, sharded: Mapping[str, ShardedCollection]) -> None:
        self._database = database
        self.sharded = dict(sharded)

    def collection(self, name: str) -> Any:
        if name in self.sharded:
            return self.sharded[name]
        return self._database.collection(name)

    def list_collections(self) -> list[CollectionConfig]:
        return self._database.list_collections() + [c.config for c in self.sharded.values()]

    def create_collection(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self.sharded:
            raise FailedPrecondition(f"collection {name!r} is sharded: it exists already")
        return self._database.create_collection(name, *args, **kwargs)

    def drop_collection(self, name: str) -> None:
        if name in self.sharded:
            raise FailedPrecondition(f"collection {name!r} is sharded: drop it by removing its directory")
        self._database.drop_collection(name)

    def close(self) -> None:
        for coll in self.sharded.values():
            coll.close()
        self._database.close()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._database, attr)
