"""Communities of a collection's entity graph (Leiden), with extractive summaries, refreshed in the background.

`detect_communities` runs Leiden (`leidenalg`, RB configuration model, on `igraph`) over the chunk-entity
graph of one tenant (chunks and entities together: a community is a set of passages and the names they
share). Each community's summary is extractive, no LLM: its most central entities and chunks, by
PageRank inside the community's own subgraph.

`CommunityIndex` keeps the communities of a collection's graph. It never runs on the write path: a
write only bumps the graph's change counter (`EntityGraph.changed`), and `refresh_if_stale` -- called
by the background thread `start` launches, or by hand -- recomputes once the chunks added or removed
since the last refresh reach `stale_fraction` of the graph.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from lamina.index.graph import ppr_power

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Community:
    id: int
    tenant: str | None
    entities: tuple[str, ...]  # most central first (display names)
    chunks: tuple[int, ...]  # iids, most central first
    size: int  # nodes (entities + chunks)
    weight: float = 0.0  # total edge weight inside

    @property
    def summary(self) -> str:
        return ", ".join(self.entities)


def detect_communities(matrix: sp.csr_matrix, *, resolution: float = 1.0, seed: int = 0) -> np.ndarray:
    """Leiden community labels (int64, one per node) of a symmetric weighted adjacency matrix."""
    import igraph as ig
    import leidenalg

    upper = sp.triu(matrix, k=1).tocoo()
    graph = ig.Graph(n=matrix.shape[0], edges=np.column_stack([upper.row, upper.col]).tolist(), directed=False)
    partition = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition,
                                         weights=upper.data.tolist(), resolution_parameter=resolution, seed=seed)
    return np.asarray(partition.membership, dtype=np.int64)


def summarise(matrix: sp.csr_matrix, members: np.ndarray, n_entities: int, *, top_entities: int = 8,
              top_chunks: int = 3) -> tuple[np.ndarray, np.ndarray, float]:
    """(central entity nodes, central chunk nodes, inner weight) of one community: PageRank over its subgraph."""
    sub = matrix[members][:, members]
    rank = ppr_power(sub, np.ones(len(members)), damping=0.85) if sub.nnz else np.ones(len(members))
    order = members[np.argsort(-rank, kind="stable")]
    return order[order < n_entities][:top_entities], order[order >= n_entities][:top_chunks], float(sub.sum() / 2)


@dataclass
class CommunityIndex:
    """The communities of a `GraphSide`'s graph, per tenant, recomputed when enough of the graph changed."""

    side: Any  # lamina.retrieval.graph_stage.GraphSide
    stale_fraction: float = 0.1
    resolution: float = 1.0
    min_size: int = 3
    communities: dict[str | None, list[Community]] = field(default_factory=dict)
    _seen: int = -1
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def stale(self) -> bool:
        graph = self.side.graph
        if self._seen < 0:
            return True
        return graph.changed - self._seen >= self.stale_fraction * max(len(graph.chunks), 1)

    def refresh_if_stale(self) -> bool:
        if not self.stale():
            return False
        self.refresh()
        return True

    def refresh(self) -> None:
        graph = self.side.graph
        seen = graph.changed
        tenants = sorted({rec[0] for rec in graph.entities.values()})
        fresh = {tenant or None: self._detect(tenant or None) for tenant in tenants}
        with self._lock:
            self.communities, self._seen = fresh, seen

    def _detect(self, tenant: str | None) -> list[Community]:
        graph = self.side.graph
        eids, iids, _ = graph.layout()
        nodes, matrix = graph.subgraph(tenant if tenant is not None else "")
        if not len(nodes):
            return []
        labels = detect_communities(matrix, resolution=self.resolution)
        n_local_entities = int((nodes < len(eids)).sum())  # entity nodes come first in `nodes`
        out = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            if len(members) < self.min_size:
                continue
            ents, chunks, weight = summarise(matrix, members, n_local_entities)
            names = tuple(graph.entities[int(eids[nodes[e]])][2] for e in ents.tolist())
            chunk_iids = tuple(int(iids[nodes[c] - len(eids)]) for c in chunks.tolist())
            out.append(Community(int(label), tenant, names, chunk_iids, len(members), weight))
        out.sort(key=lambda c: (-c.size, c.id))
        return out

    def of(self, tenant: str | None) -> list[Community]:
        with self._lock:
            return list(self.communities.get(tenant, []))

    def start(self, every_s: float = 30.0) -> threading.Thread:
        """A daemon thread that refreshes whenever the graph went stale (checked every `every_s`)."""
        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.refresh_if_stale()
                except Exception:  # noqa: BLE001 - a failed refresh keeps the old communities
                    log.exception("community refresh failed")
        thread = threading.Thread(target=loop, name="lamina-communities", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
