"""A collection's entity graph: nodes, edges and reference counts, kept in the store's "graph" family.

Nodes are entities (per tenant: the same name in two tenants is two nodes) and chunks (a document
version, by its iid). Edges:

    chunk-entity    the entity's salience in the chunk
    entity-entity   co-occurrence in a chunk (among each chunk's `max_cooc` most salient entities),
                    weighted by the number of chunks they share
    synonym         two entities of one tenant whose name vectors have cosine >= `synonym_threshold`

Store records (keys after the collection prefix `name\\0`, column family "graph"):

    g\\0c<iid>        chunk: u32 n, n int64 eids, n float32 weights, then the tenant (utf-8)
    g\\0e<eid>        entity: JSON {"k": key, "n": name, "t": tenant, "r": chunks that mention it}
    g\\0v<eid>        entity name vector (float32), when the collection has an encoder
    g\\0x<a><b>       co-occurrence count (u32) of entities a < b
    g\\0s<a><b>       synonym similarity (float32) of entities a < b
    g\\0next          the next entity id (u64)

A write plans its delta (`plan`) from the chunks it adds and the iids it removes: only the entities
those chunks mention, their co-occurrence pairs and the synonyms of entities born or dying are read or
written, never a scan. The records go into the chunk's own WriteBatch (`Store.write(extra=...)`);
`commit` applies the delta in memory once the batch is durable. An entity lives while a chunk
mentions it; the set of nodes, edges and weights after any sequence of writes is the one a rebuild
from the live chunks gives (entity ids aside), which `canonical` exposes for the tests. An entity's
vector is the encoding of its key, so that it does not depend on which surface form came first.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import scipy.sparse as sp

from lamina.index.graph.kernels import adjacency

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_PAIR = struct.Struct(">QQ")
CHUNK, ENTITY, VECTOR, COOC, SYNONYM, NEXT = b"g\x00c", b"g\x00e", b"g\x00v", b"g\x00x", b"g\x00s", b"g\x00next"
PREFIX = b"g\x00"
Op = tuple[bytes, bytes | None]  # (key after the collection prefix, value; None deletes)


@dataclass(frozen=True)
class ChunkEntities:
    """The entities extracted from one chunk (a document version)."""

    iid: int
    tenant: str | None
    keys: tuple[str, ...]
    names: tuple[str, ...]
    weights: tuple[float, ...]


@dataclass
class GraphDelta:
    ops: list[Op] = field(default_factory=list)
    refs: dict[int, int] = field(default_factory=dict)  # eid -> new reference count (0: dies)
    born: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # eid -> (tenant, key, name)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    cooc: dict[tuple[int, int], int] = field(default_factory=dict)  # pair -> new count (0: gone)
    synonyms: list[tuple[int, int, float]] = field(default_factory=list)
    chunks_added: list[tuple[int, np.ndarray, np.ndarray, str]] = field(default_factory=list)
    chunks_removed: list[int] = field(default_factory=list)
    next_eid: int = 0


def _pack_chunk(eids: np.ndarray, weights: np.ndarray, tenant: str) -> bytes:
    return (_U32.pack(len(eids)) + eids.astype(">i8").tobytes() + weights.astype(">f4").tobytes()
            + tenant.encode())


def _unpack_chunk(raw: bytes) -> tuple[np.ndarray, np.ndarray, str]:
    n = _U32.unpack_from(raw)[0]
    eids = np.frombuffer(raw, ">i8", n, 4).astype(np.int64)
    weights = np.frombuffer(raw, ">f4", n, 4 + 8 * n).astype(np.float32)
    return eids, weights, raw[4 + 12 * n:].decode()


class EntityGraph:
    """The in-memory mirror of a collection's graph records, and its adjacency for PPR."""

    def __init__(self, dim: int | None = None, *, synonym_threshold: float = 0.8, max_cooc: int = 8,
                 cooc_weight: float = 0.2) -> None:
        self.dim = dim
        self.synonym_threshold = synonym_threshold
        self.max_cooc = max_cooc
        self.cooc_weight = cooc_weight
        self.next_eid = 0
        self.keys: dict[tuple[str, str], int] = {}  # (tenant, key) -> eid
        self.by_key: dict[str, set[int]] = {}
        self.entities: dict[int, list] = {}  # eid -> [tenant, key, name, refs]
        self.vectors: dict[int, np.ndarray] = {}
        self.chunks: dict[int, tuple[np.ndarray, np.ndarray, str]] = {}  # iid -> (eids, weights, tenant)
        self.cooc: dict[tuple[int, int], int] = {}
        self.synonyms: dict[int, dict[int, float]] = {}
        self.version = 0
        self.changed = 0  # chunks added or removed since this object was loaded (communities go stale by it)
        self._cache: dict[object, object] = {}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, records: Iterable[tuple[bytes, bytes]], **options) -> EntityGraph:
        """The graph from its store records (keys after the collection prefix)."""
        self = cls(**options)
        for key, value in records:
            kind, rest = key[:3], key[3:]
            if key == NEXT:
                self.next_eid = _U64.unpack(value)[0]
            elif kind == CHUNK:
                self.chunks[_U64.unpack(rest)[0]] = _unpack_chunk(value)
            elif kind == ENTITY:
                rec = json.loads(value)
                eid = _U64.unpack(rest)[0]
                self._birth(eid, rec["t"], rec["k"], rec["n"], rec["r"])
            elif kind == VECTOR:
                self.vectors[_U64.unpack(rest)[0]] = np.frombuffer(value, np.float32).copy()
            elif kind == COOC:
                self.cooc[_PAIR.unpack(rest)] = _U32.unpack(value)[0]
            elif kind == SYNONYM:
                a, b = _PAIR.unpack(rest)
                sim = float(np.frombuffer(value, np.float32)[0])
                self.synonyms.setdefault(a, {})[b] = sim
                self.synonyms.setdefault(b, {})[a] = sim
        return self

    def _birth(self, eid: int, tenant: str, key: str, name: str, refs: int) -> None:
        self.entities[eid] = [tenant, key, name, refs]
        self.keys[(tenant, key)] = eid
        self.by_key.setdefault(key, set()).add(eid)

    # ------------------------------------------------------------------ writes
    def plan(self, added: Sequence[ChunkEntities], removed: Iterable[int],
             encode: Callable[[list[str]], np.ndarray] | None = None) -> GraphDelta:
        """The records and in-memory changes of one write: chunks `added`, iids `removed`.

        `encode` maps entity keys to unit vectors (the collection's dense encoder) for the synonym
        edges and the dense seed search; None keeps no vectors."""
        delta = GraphDelta(next_eid=self.next_eid)
        refs: dict[int, int] = {}
        pending: dict[tuple[str, str], int] = {}
        cooc: dict[tuple[int, int], int] = {}

        def count(eid: int) -> int:
            return refs[eid] if eid in refs else self.entities[eid][3] if eid in self.entities else 0

        def pair_count(pair: tuple[int, int]) -> int:
            return cooc[pair] if pair in cooc else self.cooc.get(pair, 0)

        for iid in removed:
            iid = int(iid)
            if iid not in self.chunks:
                continue
            eids, weights, _ = self.chunks[iid]
            for eid in eids.tolist():
                refs[eid] = count(eid) - 1
            for pair in self._pairs(eids, weights):
                cooc[pair] = pair_count(pair) - 1
            delta.chunks_removed.append(iid)
            delta.ops.append((CHUNK + _U64.pack(iid), None))
        for chunk in added:
            tenant = chunk.tenant or ""
            eids = np.empty(len(chunk.keys), np.int64)
            for j, (key, name) in enumerate(zip(chunk.keys, chunk.names)):
                eid = self.keys.get((tenant, key), pending.get((tenant, key)))
                if eid is None:
                    eid = pending[(tenant, key)] = delta.next_eid
                    delta.next_eid += 1
                    delta.born[eid] = (tenant, key, name)
                eids[j] = eid
                refs[eid] = count(eid) + 1
            weights = np.asarray(chunk.weights, np.float32)
            for pair in self._pairs(eids, weights):
                cooc[pair] = pair_count(pair) + 1
            delta.chunks_added.append((chunk.iid, eids, weights, tenant))
            delta.ops.append((CHUNK + _U64.pack(chunk.iid), _pack_chunk(eids, weights, tenant)))
        self._plan_entities(delta, refs, encode)
        for pair, n in cooc.items():
            delta.cooc[pair] = n
            delta.ops.append((COOC + _PAIR.pack(*pair), _U32.pack(n) if n > 0 else None))
        if delta.next_eid != self.next_eid:
            delta.ops.append((NEXT, _U64.pack(delta.next_eid)))
        return delta

    def _pairs(self, eids: np.ndarray, weights: np.ndarray) -> list[tuple[int, int]]:
        top = eids[np.argsort(-weights, kind="stable")[:self.max_cooc]]
        return [(min(a, b), max(a, b)) for a, b in combinations(top.tolist(), 2)]

    def _plan_entities(self, delta: GraphDelta, refs: dict[int, int],
                       encode: Callable[[list[str]], np.ndarray] | None) -> None:
        """Entity records of the changed counts; births get a vector and their synonyms, deaths lose theirs."""
        for eid, n in refs.items():
            born = delta.born.get(eid)
            if born is not None and n <= 0:  # born and gone within the batch
                continue
            delta.refs[eid] = n
            if n <= 0:
                delta.ops += [(ENTITY + _U64.pack(eid), None), (VECTOR + _U64.pack(eid), None)]
                for other in self.synonyms.get(eid, {}):
                    delta.ops.append((SYNONYM + _PAIR.pack(min(eid, other), max(eid, other)), None))
                continue
            tenant, key, name = born if born is not None else self.entities[eid][:3]
            delta.ops.append((ENTITY + _U64.pack(eid), json.dumps({"k": key, "n": name, "t": tenant,
                                                                   "r": n}).encode()))
        births = [eid for eid in delta.born if delta.refs.get(eid, 0) > 0]
        if encode is None or not births:
            return
        vectors = np.asarray(encode([delta.born[e][1] for e in births]), np.float32)
        for eid, vec in zip(births, vectors):
            delta.vectors[eid] = vec
            delta.ops.append((VECTOR + _U64.pack(eid), vec.tobytes()))
        self._plan_synonyms(delta, births, vectors)

    def _plan_synonyms(self, delta: GraphDelta, births: list[int], vectors: np.ndarray) -> None:
        """Synonym edges of each born entity: every live entity of its tenant (born in this write
        too) whose name vector is within the threshold; a pair of two births is recorded once."""
        dying = np.asarray([e for e, n in delta.refs.items() if n <= 0], np.int64)
        tenant_of = np.asarray([delta.born[e][0] for e in births], dtype=object)
        born_ids = np.asarray(births, np.int64)
        for tenant in sorted(set(tenant_of.tolist())):
            rows = np.flatnonzero(tenant_of == tenant)
            old_eids, old_mat = self.entity_matrix(tenant)
            keep = ~np.isin(old_eids, dying)
            pool = np.concatenate([old_eids[keep], born_ids[rows]])
            sims = vectors[rows] @ np.concatenate([old_mat[keep], vectors[rows]]).T
            hit_rows, hit_cols = np.nonzero(sims >= self.synonym_threshold)
            for r, c in zip(hit_rows.tolist(), hit_cols.tolist()):
                eid, other = int(born_ids[rows[r]]), int(pool[c])
                if other == eid or (c >= keep.sum() and other < eid):
                    continue
                a, b = min(eid, other), max(eid, other)
                sim = float(sims[r, c])
                delta.synonyms.append((a, b, sim))
                delta.ops.append((SYNONYM + _PAIR.pack(a, b), np.float32(sim).tobytes()))

    def commit(self, delta: GraphDelta) -> None:
        """Apply a planned delta whose records are durable."""
        for eid, (tenant, key, name) in delta.born.items():
            if delta.refs.get(eid, 0) > 0:
                self._birth(eid, tenant, key, name, 0)
        for eid, n in delta.refs.items():
            if n > 0:
                self.entities[eid][3] = n
                continue
            tenant, key = self.entities.pop(eid)[:2]
            del self.keys[(tenant, key)]
            self.by_key[key].discard(eid)
            if not self.by_key[key]:
                del self.by_key[key]
            self.vectors.pop(eid, None)
            for other in self.synonyms.pop(eid, {}):
                self.synonyms.get(other, {}).pop(eid, None)
        self.vectors.update(delta.vectors)
        for a, b, sim in delta.synonyms:
            self.synonyms.setdefault(a, {})[b] = sim
            self.synonyms.setdefault(b, {})[a] = sim
        for pair, n in delta.cooc.items():
            if n > 0:
                self.cooc[pair] = n
            else:
                self.cooc.pop(pair, None)
        for iid in delta.chunks_removed:
            del self.chunks[iid]
        for iid, eids, weights, tenant in delta.chunks_added:
            self.chunks[iid] = (eids, weights, tenant)
        self.next_eid = delta.next_eid
        self.version += 1
        self.changed += len(delta.chunks_added) + len(delta.chunks_removed)
        self._cache.clear()

    # ------------------------------------------------------------------ reads
    def __len__(self) -> int:
        return len(self.entities)

    def canonical(self) -> dict[str, object]:
        """Everything but entity ids and display names: what a rebuild from the live chunks must equal."""
        name = {eid: (rec[0], rec[1]) for eid, rec in self.entities.items()}
        return {
            "entities": {name[e]: rec[3] for e, rec in self.entities.items()},
            "chunks": {iid: (tenant, sorted((name[e], round(float(w), 5)) for e, w in zip(eids.tolist(), weights)))
                       for iid, (eids, weights, tenant) in self.chunks.items()},
            "cooc": {tuple(sorted((name[a], name[b]))): n for (a, b), n in self.cooc.items()},
            "synonyms": {tuple(sorted((name[a], name[b]))): round(s, 4)
                         for a, others in self.synonyms.items() for b, s in others.items() if a < b},
        }

    def layout(self) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
        """(entity ids, chunk iids, adjacency): nodes 0..E-1 are the entities, E.. the chunks."""
        cached = self._cache.get("layout")
        if cached is not None:
            return cached  # type: ignore[return-value]
        eids = np.fromiter(self.entities, np.int64, len(self.entities))
        eids.sort()
        iids = np.fromiter(self.chunks, np.int64, len(self.chunks))
        iids.sort()
        n_e = len(eids)
        lengths = np.fromiter((len(self.chunks[i][0]) for i in iids.tolist()), np.int64, len(iids))
        ce_ent = np.concatenate([self.chunks[i][0] for i in iids.tolist()]) if len(iids) else np.empty(0, np.int64)
        ce_w = np.concatenate([self.chunks[i][1] for i in iids.tolist()]) if len(iids) else np.empty(0, np.float32)
        ce_chunk = np.repeat(np.arange(len(iids), dtype=np.int64) + n_e, lengths)
        ce_ent = np.searchsorted(eids, ce_ent)
        pairs = np.fromiter((x for p in self.cooc for x in p), np.int64, 2 * len(self.cooc)).reshape(-1, 2)
        counts = np.fromiter(self.cooc.values(), np.float64, len(self.cooc))
        syn = [(a, b, s) for a, others in self.synonyms.items() for b, s in others.items() if a < b]
        syn_arr = np.asarray([(a, b) for a, b, _ in syn], np.int64).reshape(-1, 2)
        syn_w = np.asarray([s for _, _, s in syn], np.float64)
        src = np.concatenate([ce_chunk, np.searchsorted(eids, pairs[:, 0]), np.searchsorted(eids, syn_arr[:, 0])])
        dst = np.concatenate([ce_ent, np.searchsorted(eids, pairs[:, 1]), np.searchsorted(eids, syn_arr[:, 1])])
        weight = np.concatenate([ce_w.astype(np.float64), self.cooc_weight * counts, syn_w])
        result = (eids, iids, adjacency(n_e + len(iids), src, dst, weight))
        self._cache["layout"] = result
        return result

    def tenant_nodes(self, tenant: str | None) -> np.ndarray | None:
        """The node numbers of `tenant`'s entities and chunks (None: every node, a query of no tenant)."""
        if tenant is None:
            return None
        key = ("nodes", tenant)
        if key not in self._cache:
            eids, iids, _ = self.layout()
            ent = np.fromiter((self.entities[e][0] == tenant for e in eids.tolist()), bool, len(eids))
            chk = np.fromiter((self.chunks[i][2] == tenant for i in iids.tolist()), bool, len(iids))
            self._cache[key] = np.flatnonzero(np.concatenate([ent, chk]))
        return self._cache[key]  # type: ignore[return-value]

    def subgraph(self, tenant: str | None) -> tuple[np.ndarray, sp.csr_matrix]:
        """(node numbers, adjacency) of `tenant`'s part of the graph: no edge leads out of it."""
        eids, iids, matrix = self.layout()
        nodes = self.tenant_nodes(tenant)
        if nodes is None:
            return np.arange(matrix.shape[0]), matrix
        key = ("sub", tenant)
        if key not in self._cache:
            self._cache[key] = matrix[nodes][:, nodes].tocsr()
        return nodes, self._cache[key]  # type: ignore[return-value]

    def entity_matrix(self, tenant: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(eids, unit vectors) of the entities of `tenant` (all, for None) that have a vector."""
        key = ("vectors", tenant)
        if key not in self._cache:
            eids = np.asarray(sorted(e for e in self.vectors if tenant is None or self.entities[e][0] == tenant),
                              np.int64)
            mat = np.stack([self.vectors[e] for e in eids.tolist()]) if len(eids) else \
                np.empty((0, self.dim or 1), np.float32)
            self._cache[key] = (eids, mat)
        return self._cache[key]  # type: ignore[return-value]

    def records(self) -> Iterator[Op]:
        """Every record of the graph as it is in memory (a rebuild writes these)."""
        if self.next_eid:
            yield NEXT, _U64.pack(self.next_eid)
        for iid, (eids, weights, tenant) in self.chunks.items():
            yield CHUNK + _U64.pack(iid), _pack_chunk(eids, weights, tenant)
        for eid, (tenant, key, name, refs) in self.entities.items():
            yield ENTITY + _U64.pack(eid), json.dumps({"k": key, "n": name, "t": tenant, "r": refs}).encode()
        for eid, vec in self.vectors.items():
            yield VECTOR + _U64.pack(eid), vec.tobytes()
        for pair, n in self.cooc.items():
            yield COOC + _PAIR.pack(*pair), _U32.pack(n)
        for a, others in self.synonyms.items():
            for b, sim in others.items():
                if a < b:
                    yield SYNONYM + _PAIR.pack(a, b), np.float32(sim).tobytes()
