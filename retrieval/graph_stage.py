"""The graph side of a collection: entities on the write path, PPR expansion on the read path.

Write path (`GraphSide.write_ops`): each chunk's text is run through the collection's entity
extractor when it is encoded, new entity names are embedded with the dense encoder, and the graph's
records go into the chunk's own WriteBatch (`Store.write(extra=...)`); `commit` applies them in
memory once the batch is durable. Read path (`GraphSide.expand`): seeds from the query, PPR over the
tenant's part of the graph, the PPR ranking fused with the first stages, and what `explain` shows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamina.index.graph import ChunkEntities, EntityGraph, GraphDelta, ppr_power, ppr_push
from lamina.index.store import Store
from lamina.index.types import GraphConfig
from lamina.retrieval.encoders.base import DenseEncoder
from lamina.retrieval.encoders.entities import EntityExtractor, Mention, load_extractor
from lamina.retrieval.fusion import min_max_normalise, reciprocal_rank_fusion
from lamina.retrieval.query import GraphExpansion

MAX_EXPLAINED_SEEDS = 20


class GraphSide:
    """A collection's entity graph, its extractor, and the encoder its entity names are embedded with."""

    def __init__(self, store: Store, name: str, config: GraphConfig, encoder: DenseEncoder | None,
                 extractor: EntityExtractor | None = None) -> None:
        self.config = config
        self.encoder = encoder
        self.extractor = extractor or load_extractor(config.extractor)
        options = {"dim": encoder.dim if encoder is not None else None, "synonym_threshold": config.synonym_threshold,
                   "max_cooc": config.max_cooc, "cooc_weight": config.cooc_weight}
        self.graph = EntityGraph.load(store.iter_graph(name), **options)
        self.timings = {"extract_s": 0.0, "vectors_s": 0.0, "plan_s": 0.0}  # the write path's, summed

    # ------------------------------------------------------------------ writes
    def extract(self, texts: Sequence[str | None]) -> list[list[Mention]]:
        started = time.perf_counter()
        idx = [i for i, t in enumerate(texts) if t]
        found = self.extractor.extract([texts[i] for i in idx]) if idx else []
        self.timings["extract_s"] += time.perf_counter() - started
        out: list[list[Mention]] = [[] for _ in texts]
        for i, mentions in zip(idx, found):
            out[i] = mentions
        return out

    def prepare_vectors(self, mentions: Sequence[Sequence[Mention]]) -> dict[str, np.ndarray]:
        """Vectors of the keys the graph does not hold yet (outside the write lock: encoding is slow)."""
        if self.encoder is None:
            return {}
        started = time.perf_counter()
        keys = sorted({m.key for ms in mentions for m in ms if m.key not in self.graph.by_key})
        vectors = dict(zip(keys, self.encoder.encode_documents(keys))) if keys else {}
        self.timings["vectors_s"] += time.perf_counter() - started
        return vectors

    def write_ops(self, chunks: Sequence[tuple[str | None, Sequence[Mention]]], vectors: dict[str, np.ndarray],
                  holder: list[GraphDelta]):
        """The `extra` of `Store.write`: `chunks` (tenant, mentions) line up with the iids it adds."""
        def extra(added: np.ndarray, removed: np.ndarray):
            entities = [ChunkEntities(int(iid), tenant, tuple(m.key for m in ms), tuple(m.name for m in ms),
                                      tuple(m.weight for m in ms)) for iid, (tenant, ms) in zip(added, chunks)]
            started = time.perf_counter()
            delta = self.graph.plan(entities, removed, self._encoder_with(vectors))
            self.timings["plan_s"] += time.perf_counter() - started
            holder.append(delta)
            return delta.ops
        return extra

    def _encoder_with(self, vectors: dict[str, np.ndarray]):
        if self.encoder is None:
            return None

        def encode(keys: list[str]) -> np.ndarray:
            missing = [k for k in keys if k not in vectors]
            if missing:
                vectors.update(zip(missing, self.encoder.encode_documents(missing)))
            return np.stack([vectors[k] for k in keys]).astype(np.float32)
        return encode

    def commit(self, holder: list[GraphDelta]) -> None:
        started = time.perf_counter()
        for delta in holder:
            self.graph.commit(delta)
        self.timings["plan_s"] += time.perf_counter() - started

    # ------------------------------------------------------------------ reads
    def seeds(self, query: str, tenant: str | None, expansion: GraphExpansion) -> dict[int, tuple[float, str]]:
        """eid -> (similarity, how matched) of the query's seed entities."""
        graph = self.graph
        mentions = self.extract([query])[0]
        seeds: dict[int, tuple[float, str]] = {}
        for m in mentions:
            for eid in graph.by_key.get(m.key, ()):
                if tenant is None or graph.entities[eid][0] == tenant:
                    seeds[eid] = (1.0, "exact")
        eids, matrix = graph.entity_matrix(tenant)
        if self.encoder is not None and mentions and len(eids):
            sims = self.encoder.encode_queries([m.key for m in mentions]) @ matrix.T
            top = np.argsort(-sims, axis=1)[:, :expansion.seed_top]
            for row, cols in enumerate(top):
                for col in cols[sims[row, cols] >= expansion.seed_threshold].tolist():
                    eid, sim = int(eids[col]), float(sims[row, col])
                    if eid not in seeds or (seeds[eid][1] != "exact" and seeds[eid][0] < sim):
                        seeds[eid] = (min(sim, 1.0), "dense")
        return seeds

    def expand(self, query: Any, tenant: str | None, expansion: GraphExpansion, ids: np.ndarray, scores: np.ndarray,
               allowed: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """The first stages' fused (ids, scores) after the graph expansion, and its explain."""
        started = time.perf_counter()
        info: dict[str, Any] = {"kind": "graph", "method": expansion.method, "fusion": expansion.fusion}
        graph = self.graph
        seeds = self.seeds(query, tenant, expansion) if isinstance(query, str) else {}
        info["seeds"] = [{"entity": graph.entities[e][2], "similarity": round(s, 4), "match": how,
                          "chunks": graph.entities[e][3]}
                         for e, (s, how) in sorted(seeds.items(), key=lambda kv: -kv[1][0])[:MAX_EXPLAINED_SEEDS]]
        eids, iids, _ = graph.layout()
        nodes, matrix = graph.subgraph(tenant)
        info["nodes"], info["edges"] = int(matrix.shape[0]), int(matrix.nnz // 2)
        if not seeds:
            info["fallback"] = ("the query names no entity of the graph: the first stages' ranking" if len(eids)
                                else "the graph is empty: the first stages' ranking")
            info["ms"] = round(1e3 * (time.perf_counter() - started), 3)
            return ids, scores, info
        personal = np.zeros(matrix.shape[0])
        seed_eids = np.fromiter(seeds, np.int64, len(seeds))
        refs = np.fromiter((max(graph.entities[e][3], 1) for e in seed_eids.tolist()), np.float64, len(seeds))
        sims = np.fromiter((s for s, _ in seeds.values()), np.float64, len(seeds))
        personal[self._local(nodes, np.searchsorted(eids, seed_eids))] = sims / refs
        if expansion.passage_weight > 0 and len(ids):
            pos = np.searchsorted(iids, ids)
            held = (pos < len(iids)) & (iids[np.minimum(pos, len(iids) - 1)] == ids)
            if held.any():
                local = self._local(nodes, len(eids) + pos[held])
                np.add.at(personal, local, expansion.passage_weight * min_max_normalise(scores[held]).astype(np.float64))
        if expansion.method == "push":
            mass, _ = ppr_push(matrix, personal, damping=expansion.damping, eps=expansion.eps)
        else:
            mass = ppr_power(matrix, personal, damping=expansion.damping)
        chunk_rows = np.flatnonzero(nodes >= len(eids))
        chunk_iids = iids[nodes[chunk_rows] - len(eids)]
        chunk_mass = mass[chunk_rows]
        keep = chunk_mass > 0
        if allowed is not None:
            keep &= np.isin(chunk_iids, allowed)
        order = np.argsort(-chunk_mass[keep], kind="stable")[:expansion.limit]
        g_ids, g_scores = chunk_iids[keep][order], chunk_mass[keep][order].astype(np.float32)
        info["reached"] = int(keep.sum())
        if expansion.fusion == "rrf":
            out_ids, out_scores = reciprocal_rank_fusion([(ids, scores), (g_ids, g_scores)],
                                                         weights=(1.0, expansion.weight), limit=max(k, len(ids)))
        else:
            rest = ~np.isin(ids, g_ids)
            floor = float(g_scores[-1]) if len(g_scores) else 1.0
            tail = floor * (1.0 - np.arange(1, rest.sum() + 1) / (rest.sum() + 1.0))
            out_ids = np.concatenate([g_ids, ids[rest]])
            out_scores = np.concatenate([g_scores, tail.astype(np.float32)])
        info["_paths"] = (nodes, matrix, mass, personal, eids, iids)
        info["ms"] = round(1e3 * (time.perf_counter() - started), 3)
        return out_ids, out_scores, info

    @staticmethod
    def _local(nodes: np.ndarray, global_nodes: np.ndarray) -> np.ndarray:
        if len(nodes) == 0 or nodes[-1] == len(nodes) - 1:  # the whole graph
            return global_nodes
        return np.searchsorted(nodes, global_nodes)

    def paths(self, info: dict[str, Any], hit_iids: np.ndarray, doc_ids) -> list[dict[str, Any]]:
        """For each hit: its PPR mass and the path that brought it in (seed -> entity -> chunk);
        `doc_ids` maps chunk iids to document ids."""
        nodes, matrix, mass, personal, eids, iids = info.pop("_paths")

        def name(row: int) -> str:
            node = int(nodes[row])
            if node < len(eids):
                return "entity:" + self.graph.entities[int(eids[node])][2]
            return f"chunk:{doc_ids(iids[node - len(eids): node - len(eids) + 1])[0]}"
        out = []
        for iid in hit_iids.tolist():
            pos = int(np.searchsorted(iids, iid))
            if pos >= len(iids) or iids[pos] != iid:
                out.append({"iid": iid, "ppr": 0.0, "path": [], "why": "not in the graph (no entity)"})
                continue
            row = int(self._local(nodes, np.asarray([len(eids) + pos]))[0])
            entry = {"iid": iid, "ppr": float(mass[row])}
            if personal[row] > 0:
                entry["why"] = "a first-stage hit"
            path, seen = [name(row)], {row}
            for _ in range(2):  # up to two steps back towards what the walk started from
                prev = self._best_neighbour(matrix, mass, row, seen)
                if prev is None:
                    break
                path.append(name(prev))
                row = prev
                seen.add(prev)
                if personal[prev] > 0:
                    break
            entry["path"] = path[::-1]
            out.append(entry)
        return out

    @staticmethod
    def _best_neighbour(matrix, mass: np.ndarray, row: int, seen: set[int]) -> int | None:
        """The neighbour that sent `row` the most mass (mass x edge weight / its degree in edges)."""
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        cols = matrix.indices[start:end]
        flow = mass[cols] * matrix.data[start:end] / np.maximum(matrix.indptr[cols + 1] - matrix.indptr[cols], 1)
        flow[np.isin(cols, list(seen))] = -1.0
        if not len(cols) or flow.max() <= 0:
            return None
        return int(cols[np.argmax(flow)])
