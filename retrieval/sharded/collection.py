"""A sharded collection: N Ray actors, each a single-node `Collection` (`Shard`), behind one router.

    <root>/sharded.json      the layout: collection name, shard count, routing, the config
    <root>/shard-<i>/        shard i's own data directory (RocksDB, indexes, snapshots)

Routing (`lamina.retrieval.sharded.routing`): by a blake2b hash of the id (route "id") or of the
tenant (route "tenant": a tenant's points live on one shard, and a tenant-bound request goes to
that shard alone). The router
- encodes every text and query once (dense model, BM25 query weights) and sends vectors;
- keeps the global BM25 statistics (the sum of the shards' raw counts), and gathers a tenant's
  (`lamina.retrieval.sharded.bm25`), so that query idf (the collection's for an unbound query, the
  tenant's for a tenant-bound one) and the average document lengths every shard's new document
  weights use (a tenant's for its documents, the collection's for the rest) are one node's;
- scatters every first stage to every target shard at once, merges each stage's candidate lists
  (best `limit` by score), then fuses (`fusion.fuse`; a feedback round scatters each dense stage
  again from its moved query, as one node runs it again), reranks (MaxSim over token matrices
  fetched from their shards) and cuts to k exactly as `Collection.query` does on one node;
- sends upserts and deletes to the owning shard; merges Count, Get, facets and tenants.

A shard that is down (its actor dead or restarting) makes a call fail with Unavailable naming the
shard, or, for a search with `allow_partial=True`, answer from the other shards with
`explain["partial"]` set. Ray restarts the actor (max_restarts=-1) and it recovers from its own store.
Writes are atomic per shard, not across shards: a batch that fails with Unavailable may have been
written on the other shards; upserts and deletes are idempotent, so retry it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from lamina.index import deadline as request_deadline
from lamina.index.deadline import Deadline
from lamina.index.errors import InvalidArgument, LaminaError, NotFound, Unavailable
from lamina.index.facets import MAX_FACET_LIMIT, FacetResult, check_bins, check_limit
from lamina.index.filters import Filter, as_filter
from lamina.index.sparse import SparseBatch
from lamina.index.types import (DEFAULT_ENCODER, CollectionConfig, Document, Hit, RowResult, as_document,
                                as_vector, check_name)
from lamina.retrieval import tenant_bm25
from lamina.retrieval.encoders.dense import load_dense_encoder
from lamina.retrieval.encoders.sparse import DEFAULT_SPARSE_ENCODER, BM25Encoder, BM25Stats
from lamina.retrieval.fusion import fuse, rocchio
from lamina.retrieval.query import Query, Rerank, SearchRequest, SearchResult, Stage
from lamina.retrieval.rerank import rerank
from lamina.retrieval.sharded.bm25 import (GlobalTenantStats, bm25_rows, merge_collection, query_terms,
                                           tenant_averages)
from lamina.retrieval.sharded.merge import dense_ids, merge_facets, merge_ranked
from lamina.retrieval.sharded.routing import check_route, group, shard_of, shards_of
from lamina.retrieval.sharded.runtime import (LAYOUT, ensure_ray, plain_options, ray_module, read_layout, shard_class,
                                              write_layout)
from lamina.retrieval.sharded.tokens import ShardTokens

DEFAULT_TIMEOUT_S = 30.0


class ShardedCollection:
    """One collection over N shard actors; the same methods as `Collection` (see the module docstring)."""

    def __init__(self, root: str | Path, layout: Mapping[str, Any], *,
                 encoder_loader: Callable[[str], Any] = load_dense_encoder,
                 token_loader: Callable[[str], Any] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        ray = ray_module()
        ensure_ray()
        self.root = Path(root).resolve()
        self.layout = dict(layout)
        self.shards: int = int(layout["shards"])
        self.route: str = layout["route"]
        self.timeout_s = float(timeout_s)
        self._encoder_loader, self._token_loader = encoder_loader, token_loader
        self._encoder: Any = None
        self._token_encoder: Any = None
        self._bm25: BM25Encoder | None = None
        self._stats: BM25Stats | None = None  # global BM25 statistics, None until gathered
        tag = hashlib.blake2b(str(self.root).encode(), digest_size=6).hexdigest()
        actor = ray.remote(shard_class())
        self.handles = [actor.options(name=f"lamina-shard-{tag}-{i}", get_if_exists=True, max_restarts=-1,
                                      max_task_retries=0, max_concurrency=4, num_cpus=0).remote(
            str(self.root / f"shard-{i}"), layout["collection"], i, int(layout["dim"]), layout["create"],
            token_loader) for i in range(self.shards)]
        self.config = CollectionConfig.from_dict(self._gather(
            [(0, self.handles[0].config.remote())], timeout=max(self.timeout_s, 120.0))[0])
        self._gather([(i, h.ping.remote()) for i, h in enumerate(self.handles)], timeout=max(self.timeout_s, 120.0))

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, root: str | Path, name: str, shards: int = 2, *, route: str = "id", dim: int | None = None,
               encoder: str | None = DEFAULT_ENCODER, encoder_loader: Callable[[str], Any] = load_dense_encoder,
               token_loader: Callable[[str], Any] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
               **options: Any) -> ShardedCollection:
        """A new sharded collection in `root` (or the existing one, when its layout matches).
        `options` are `Database.create_collection`'s (index, sparse, multivector, payload, ...)."""
        check_name(name)
        check_route(route, shards)
        if encoder is None and dim is None:
            raise InvalidArgument("a collection without an encoder needs an explicit dimension")
        if encoder is not None:
            encoder_dim = encoder_loader(encoder).dim
            if dim is not None and dim != encoder_dim:
                raise InvalidArgument(f"encoder {encoder!r} gives dimension {encoder_dim}, the request asks for {dim}")
            dim = encoder_dim
        if options.get("graph"):
            raise InvalidArgument("a sharded collection has no entity graph (graph search is single-node)")
        layout = {"format": 1, "collection": name, "shards": shards, "route": route, "dim": int(dim),
                  "create": {"encoder": encoder, **plain_options(options)}}
        root = Path(root)
        existing = read_layout(root)
        if existing is not None:
            if {k: existing.get(k) for k in ("collection", "shards", "route")} != \
                    {"collection": name, "shards": shards, "route": route}:
                raise InvalidArgument(f"{root} already holds sharded collection {existing['collection']!r} with "
                                      f"{existing['shards']} shards routed by {existing['route']}")
            layout = existing
        else:
            root.mkdir(parents=True, exist_ok=True)
            write_layout(root, layout)
        return cls(root, layout, encoder_loader=encoder_loader, token_loader=token_loader, timeout_s=timeout_s)

    @classmethod
    def open(cls, root: str | Path, **kwargs: Any) -> ShardedCollection:
        layout = read_layout(Path(root))
        if layout is None:
            raise NotFound(f"{root} holds no sharded collection ({LAYOUT} is missing)")
        return cls(root, layout, **kwargs)

    @property
    def name(self) -> str:
        return self.config.name

    # ------------------------------------------------------------------ calls
    def _gather(self, calls: list[tuple[int, Any]], *, timeout: float | None = None) -> dict[int, Any]:
        """Results of remote calls by key (a shard); Unavailable naming the first shard that did not answer."""
        return self._gather_partial(calls, allow_partial=False, timeout=timeout)[0]

    def _gather_partial(self, calls: list[tuple[int, Any]], *, allow_partial: bool = True,
                        timeout: float | None = None) -> tuple[dict[int, Any], list[int]]:
        """The answers of the calls that answered, and the keys of those that did not (with
        allow_partial; else Unavailable naming the first)."""
        ray = ray_module()
        refs = [ref for _, ref in calls]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout or self.timeout_s)
        done = set(ready)
        out: dict[int, Any] = {}
        missing: list[tuple[int, str]] = []
        for shard, ref in calls:
            if ref not in done:
                missing.append((shard, f"no answer within {timeout or self.timeout_s:g} s"))
                ray.cancel(ref)
                continue
            try:
                out[shard] = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, LaminaError):
                    raise cause from None
                raise
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                missing.append((shard, type(exc).__name__))
        if missing and not allow_partial:
            key, why = missing[0]
            shard = key[0] if isinstance(key, tuple) else key
            raise Unavailable(f"shard {shard} of sharded collection {self.layout['collection']!r} is unavailable "
                              f"({why}); Ray restarts it: retry")
        return out, [key for key, _ in missing]

    def _targets(self, tenant: str | None) -> list[int]:
        if self.route == "tenant" and tenant is not None:
            return [shard_of(tenant, self.shards)]
        return list(range(self.shards))

    def _owners(self, ids: Sequence[str], tenants: Sequence[str | None] | None = None) -> np.ndarray:
        if self.route == "tenant" and tenants is not None:
            keys = [t if t is not None else i for i, t in zip(ids, tenants)]
            return shards_of(keys, self.shards)
        return shards_of([i if isinstance(i, str) else "" for i in ids], self.shards)

    # ------------------------------------------------------------------ encoders and statistics
    @property
    def encoder(self) -> Any:
        if self.config.encoder is None:
            raise InvalidArgument(f"collection {self.name!r} has no encoder: send vectors, not text")
        if self._encoder is None:
            self._encoder = self._encoder_loader(self.config.encoder)
        return self._encoder

    @property
    def token_encoder(self) -> Any:
        if self.config.multivector is None:
            raise InvalidArgument(f"collection {self.name!r} keeps no token vectors: it cannot rerank "
                                  "(create it with a multivector field)")
        if self._token_encoder is None:
            from lamina.retrieval.encoders.multivector import load_token_encoder

            self._token_encoder = (self._token_loader or load_token_encoder)(self.config.multivector.encoder)
        return self._token_encoder

    @property
    def _is_bm25(self) -> bool:
        return self.config.sparse is not None and self.config.sparse.encoder == DEFAULT_SPARSE_ENCODER

    @property
    def sparse_encoder(self) -> Any:
        if self.config.sparse is None:
            raise InvalidArgument(f"collection {self.name!r} has no sparse field: search it with mode dense")
        if self._bm25 is None:
            if self._is_bm25:
                self._bm25 = BM25Encoder(idf_side="query")
            else:
                from lamina.retrieval.encoders.sparse import load_sparse_encoder

                self._bm25 = load_sparse_encoder(self.config.sparse.encoder)
        return self._bm25

    def global_stats(self) -> BM25Stats:
        """The BM25 statistics of every shard added up (cached; writes through this router keep it)."""
        if self._stats is None:
            parts = self._gather([(i, h.bm25_stats.remote()) for i, h in enumerate(self.handles)])
            self._stats = merge_collection(parts.values(), self.sparse_encoder.vocab_size)
        return self._stats

    @property
    def _tenant_bm25(self) -> bool:
        """Whether tenants' documents and tenant-bound queries use per-tenant statistics, as on one node."""
        return self._is_bm25 and tenant_bm25.applies(self.sparse_encoder)

    def tenant_stats(self, tenants: Sequence[str], terms: np.ndarray | Sequence[int] = ()) -> GlobalTenantStats:
        """The per-tenant BM25 statistics of `tenants` (documents, total length, document frequencies
        of `terms`) added up over the shards that can hold them; gathered afresh on every call."""
        tenants = list(dict.fromkeys(tenants))
        terms = np.unique(np.asarray(terms, dtype=np.int64))
        targets = sorted({s for t in tenants for s in self._targets(t)})
        parts = self._gather([(s, self.handles[s].tenant_stats.remote(tenants, terms)) for s in targets])
        return GlobalTenantStats(self.sparse_encoder.vocab_size, [p for p in parts.values() if p], terms)

    def _sparse_text_query(self, text: str, tenant: str | None) -> SparseBatch:
        encoder = self.sparse_encoder
        if tenant is not None and self._tenant_bm25:  # weighed by the tenant's global idf
            stats = self.tenant_stats([tenant], query_terms(encoder.counts([text])[0]))
            return tenant_bm25.query_weights(encoder, stats, tenant, text)
        if self._is_bm25:
            encoder.stats = self.global_stats()
        return encoder.encode_queries([text])

    def _stage_query(self, stage: Stage, query: Query, tenant: str | None = None) -> np.ndarray | SparseBatch:
        q = query if stage.query is None else stage.query
        if stage.kind == "dense":
            if isinstance(q, (SparseBatch, Mapping)):
                raise InvalidArgument("a dense stage needs a text or a dense vector, not sparse weights")
            if isinstance(q, str):
                if not q.strip():
                    raise InvalidArgument("query text is empty")
                return np.asarray(self.encoder.encode_queries([q])[0], dtype=np.float32)
            return as_vector(q, self.config.dim, "query vector")
        if isinstance(q, str):
            if not q.strip():
                raise InvalidArgument("query text is empty")
            batch = self._sparse_text_query(q, tenant)
            if batch.nnz == 0:
                raise InvalidArgument(f"query {q[:60]!r} has no terms in the sparse vocabulary")
            return batch
        if self.config.sparse is None:
            raise InvalidArgument(f"collection {self.name!r} has no sparse field: search it with mode dense")
        return q  # given term weights: the shards check them

    # ------------------------------------------------------------------ search
    def search(self, query: Query, k: int = 10, *, mode: str = "dense", params: Mapping[str, Any] | None = None,
               fusion: str = "rrf", rerank: Rerank | int | None = None,
               filter: Filter | Mapping[str, Any] | None = None, tenant: str | None = None,
               with_payload: bool = True, allow_partial: bool = False, deadline: Deadline | None = None) -> list[Hit]:
        request = SearchRequest.simple(query, k, mode=mode, params=params, fusion=fusion, rerank=rerank,
                                       filter=filter, tenant=tenant, with_payload=with_payload)
        return self.query(request, allow_partial=allow_partial, deadline=deadline).hits

    def query(self, request: SearchRequest, *, allow_partial: bool = False,
              deadline: Deadline | None = None) -> SearchResult:
        """`Collection.query` over every shard: scatter each stage, merge its lists, fuse, rerank, cut.
        `deadline` (`lamina.index.deadline`, as on one node) is checked on the router between steps,
        and bounds how long it waits for the shards' stages (DeadlineExceeded once it passes)."""
        with request_deadline.bind(deadline):
            return self._query(request, allow_partial, request_deadline.current())

    def _query(self, request: SearchRequest, allow_partial: bool, deadline: Deadline) -> SearchResult:
        if request.graph is not None:
            raise InvalidArgument("graph expansion is single-node: a sharded collection has no entity graph")
        deadline.check("encoding the query")
        stages = tuple(replace(s, query=self._stage_query(s, request.query, request.tenant)) for s in request.stages)
        query_tokens = None
        if request.rerank is not None:
            if not isinstance(request.query, str):
                raise InvalidArgument("rerank needs a text query: token vectors are encoded from text")
            query_tokens = self.token_encoder.encode_queries([request.query])[0]
        targets = self._targets(request.tenant)
        single = len(stages) == 1 and request.rerank is None
        subs = [SearchRequest(s.query, request.stage_limit(s), (s,), filter=request.filter, tenant=request.tenant,
                              with_payload=request.with_payload and single, explain=request.explain)
                for s in stages]
        deadline.check("the first stages")
        calls = [((t, j), self.handles[t].stage.remote(sub)) for t in targets for j, sub in enumerate(subs)]
        try:  # shards too slow for the deadline: DeadlineExceeded rather than Unavailable
            answers, lost = self._gather_partial(calls, allow_partial=allow_partial,
                                                 timeout=_within(deadline, self.timeout_s))
        finally:
            deadline.check("the shards answered the first stages")
        missing = sorted({t for t, _ in lost})
        explain: dict[str, Any] = {"shards": len(targets), "stages": []}
        if missing:
            explain.update(partial=True, unavailable_shards=missing)
        owner: dict[str, int] = {}
        lists = []
        for j, stage in enumerate(stages):
            parts = [(t, answers[t, j]) for t in targets if (t, j) in answers]
            for t, (ids, _, _, _) in parts:
                owner.update(dict.fromkeys(ids, t))
            lists.append(merge_ranked([(ids, scores) for _, (ids, scores, _, _) in parts], request.stage_limit(stage)))
            explain["stages"].append({"kind": stage.kind, "candidates": len(lists[-1][0]),
                                      "shards": [a[3] for _, a in parts] if request.explain else None})
        if single:
            hits = {h.id: h for _, (_, _, found, _) in answers.items() for h in (found or [])}
            ids, scores = lists[0][0][:request.k], lists[0][1][:request.k]
            out = [hits[i] if i in hits else Hit(i, float(s)) for i, s in zip(ids, scores)]
            return SearchResult(out, explain if (request.explain or missing) else None)
        deadline.check("fusion")
        if len(lists) == 1:
            vocab, ranked = dense_ids([lists[0][0]])
            iids, scores = ranked[0], lists[0][1]
        else:
            limit = max(request.k, request.rerank.kappa if request.rerank else 0)
            vocab, iids, scores, explain["fusion_detail"] = self._fuse(request, subs, targets, lists, owner, limit,
                                                                       allow_partial)
            explain["fusion"] = request.fusion.method
        if request.rerank is not None:
            deadline.check("rerank")
            r = request.rerank
            source = ShardTokens(self, vocab, owner, self.token_encoder.dim)
            iids, scores, stats = rerank(query_tokens, iids, scores, source, k=request.k, kappa=r.kappa,
                                         alpha=r.alpha, beta=r.beta)
            explain["rerank"] = stats.to_dict()
        deadline.check("fetching the hits")
        doc_ids = [str(vocab[i]) for i in iids[:request.k]]
        hits = self._resolve(doc_ids, np.asarray(scores[:request.k]), owner, request.with_payload)
        return SearchResult(hits, explain if (request.explain or missing) else None)

    def _fuse(self, request: SearchRequest, subs: list[SearchRequest], targets: list[int], lists: list[Any],
              owner: dict[str, int], limit: int, allow_partial: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """`Collection._fuse` over the merged lists: fused by `request.fusion`; with feedback, every
        dense stage is scattered again from its query moved by Rocchio towards the best fused
        documents' vectors (from their shards' dense indexes, as one node reads its own), merged and
        fused once more. Returns the id vocabulary, fused positions in it, scores, the explain detail."""
        f = request.fusion
        vocab, ranked = dense_ids([ids for ids, _ in lists])
        ids, scores, detail = fuse(f.method, [(r, sc) for r, (_, sc) in zip(ranked, lists)], weights=f.weights,
                                   rrf_k=f.rrf_k, limit=limit)
        m = f.feedback_docs
        dense = [i for i, sub in enumerate(subs) if sub.stages[0].kind == "dense"]
        if not m or not dense or not len(ids) or f.feedback_weight == 0:
            return vocab, ids, scores, detail
        top = [str(vocab[i]) for i in ids[:m]]
        positions = group(np.array([owner[d] for d in top], dtype=np.int64), self.shards)
        found = self._gather([(s, self.handles[s].vectors.remote([top[i] for i in pos]))
                              for s, pos in enumerate(positions) if len(pos)])
        feedback = np.zeros((len(top), self.config.dim), np.float32)
        for s, rows in found.items():
            feedback[positions[s]] = rows
        lists = list(lists)
        for i in dense:
            moved = rocchio(subs[i].query, feedback, f.feedback_weight)
            sub = replace(subs[i], query=moved, stages=(replace(subs[i].stages[0], query=moved),))
            answers, _ = self._gather_partial([(t, self.handles[t].stage.remote(sub)) for t in targets],
                                              allow_partial=allow_partial)
            for t, (got, _, _, _) in answers.items():
                owner.update(dict.fromkeys(got, t))
            lists[i] = merge_ranked([answers[t][:2] for t in targets if t in answers], sub.k)
        vocab, ranked = dense_ids([ids for ids, _ in lists])
        ids, scores, detail = fuse(f.method, [(r, sc) for r, (_, sc) in zip(ranked, lists)], weights=f.weights,
                                   rrf_k=f.rrf_k, limit=limit)
        return vocab, ids, scores, {**detail, "feedback": {"documents": int(min(m, len(feedback))),
                                                           "weight": f.feedback_weight, "stages": dense}}

    def _resolve(self, doc_ids: list[str], scores: np.ndarray, owner: Mapping[str, int], with_payload: bool) -> list[Hit]:
        if not with_payload:
            return [Hit(d, float(s)) for d, s in zip(doc_ids, scores)]
        owners = np.array([owner[d] for d in doc_ids], dtype=np.int64)
        positions = group(owners, self.shards)
        found = self._gather([(s, self.handles[s].get.remote([doc_ids[i] for i in pos], False, None))
                              for s, pos in enumerate(positions) if len(pos)])
        docs: dict[str, Document] = {}
        for s, pos in enumerate(positions):
            for i, doc in zip(pos, found.get(s, [])):
                if doc is not None:
                    docs[doc_ids[i]] = doc
        return [Hit(d, float(s), docs[d].text, docs[d].metadata, docs[d].tenant)
                for d, s in zip(doc_ids, scores) if d in docs]  # a raced delete drops its hit, as on one node

    # ------------------------------------------------------------------ writes
    def upsert(self, points: Iterable[Document | Mapping[str, Any]], *, wait: bool = False,
               tenant: str | None = None, delete: Sequence[str] = ()) -> list[RowResult]:
        """`Collection.upsert`, each point on its owning shard (texts embedded here, once)."""
        if isinstance(delete, str):
            raise InvalidArgument(f"delete must be a sequence of ids, got the string {delete!r}")
        rows = self._embed(list(points))
        ids = [_row_key(r, "id") for r in rows]
        owners = self._owners(ids, [tenant or _row_key(r, "tenant") for r in rows])
        del_owners = self._delete_targets(list(delete), tenant)
        avgdl, tenant_avgdl, counted = self._write_avgdl(rows, tenant)
        positions = group(owners, self.shards)
        calls = []
        for s, pos in enumerate(positions):
            dels = del_owners.get(s, [])
            if len(pos) or dels:
                calls.append((s, self.handles[s].upsert.remote([rows[i] for i in pos], wait, tenant, dels, avgdl,
                                                               tenant_avgdl)))
        try:
            answers = self._gather(calls)
        except Unavailable:
            self._stats = None  # some shards may have counted their part: gather afresh
            raise
        results = [RowResult(int(positions[s][r.index]), r.id, r.error) for s, part in answers.items() for r in part]
        results.sort(key=lambda r: r.index)
        if counted is not None and all(r.error is None for r in results):
            self._stats.add(*counted)
        elif counted is not None:
            self._stats = None
        return results

    def _embed(self, rows: list[Any]) -> list[Any]:
        """Points with a text and no vector get their dense vector here, in one batch."""
        if self.config.encoder is None:
            return rows
        out, todo = [], []
        for row in rows:
            try:
                doc = as_document(row)
            except LaminaError:
                out.append(row)  # the shard reports what is wrong with it
                continue
            if doc.vector is None and isinstance(doc.text, str):
                todo.append(len(out))
            out.append(doc)
        if todo:
            vectors = self.encoder.encode_documents([out[i].text for i in todo])
            for i, vec in zip(todo, vectors):
                out[i].vector = np.asarray(vec, dtype=np.float32)
        return out

    def _write_avgdl(self, rows: list[Any], tenant: str | None
                     ) -> tuple[float | None, dict[str, float] | None, tuple[Any, Any] | None]:
        """The average document lengths one node would encode this batch with (its texts counted
        in): the collection's (documents without a tenant) and, by tenant, the tenants' (None with
        route "tenant": a tenant's shard holds all of it, its own statistics are the global ones);
        and the batch's counts for the global statistics. (None, None, None) without BM25."""
        if not self._is_bm25:
            return None, None, None
        texts, owners = bm25_rows(rows, tenant)
        stats = self.global_stats()
        if not texts:
            return (stats.avgdl if stats.n_docs else None), None, None
        counts, lengths = self.sparse_encoder.counts(texts)
        n, total = stats.n_docs + len(texts), stats.total_length + int(np.sum(lengths))
        tenant_avgdl = None
        owned = [i for i, t in enumerate(owners) if t is not None]
        if owned and self.route != "tenant" and self._tenant_bm25:
            named = [owners[i] for i in owned]
            tenant_avgdl = tenant_averages(self.tenant_stats(named), named, lengths[owned])
        return total / n, tenant_avgdl, (counts, lengths)

    def _delete_targets(self, ids: list[str], tenant: str | None) -> dict[int, list[str]]:
        if not ids:
            return {}
        if self.route == "tenant":
            return {s: ids for s in self._targets(tenant)}
        owners = self._owners(ids)
        return {s: [ids[i] for i in pos] for s, pos in enumerate(group(owners, self.shards)) if len(pos)}

    def delete(self, ids: Sequence[str], *, wait: bool = False, tenant: str | None = None) -> list[str]:
        targets = self._delete_targets(list(ids), tenant)
        answers = self._gather([(s, self.handles[s].delete.remote(part, wait, tenant)) for s, part in targets.items()])
        gone = {d for part in answers.values() for d in part}
        return [d for d in dict.fromkeys(ids) if d in gone]

    def delete_tenant(self, tenant: str, *, wait: bool = False) -> int:
        answers = self._gather([(s, self.handles[s].delete_tenant.remote(tenant, wait)) for s in self._targets(tenant)])
        return sum(answers.values())

    # ------------------------------------------------------------------ reads
    def get(self, ids: Sequence[str], *, with_vectors: bool = False, tenant: str | None = None) -> list[Document | None]:
        ids = list(ids)
        if self.route == "tenant":
            targets = self._targets(tenant)
            answers = self._gather([(s, self.handles[s].get.remote(ids, with_vectors, tenant)) for s in targets])
            return [next((answers[s][i] for s in targets if answers[s][i] is not None), None) for i in range(len(ids))]
        positions = group(self._owners(ids), self.shards)
        answers = self._gather([(s, self.handles[s].get.remote([ids[i] for i in pos], with_vectors, tenant))
                                for s, pos in enumerate(positions) if len(pos)])
        out: list[Document | None] = [None] * len(ids)
        for s, part in answers.items():
            for i, doc in zip(positions[s], part):
                out[i] = doc
        return out

    def count(self, *, tenant: str | None = None, filter: Filter | Mapping[str, Any] | None = None) -> int:
        flt = as_filter(filter)
        answers = self._gather([(s, self.handles[s].count.remote(tenant, flt)) for s in self._targets(tenant)])
        return sum(answers.values())

    def facet(self, field: str, *, kind: str | None = None, limit: int = 10,
              bins: int | Sequence[float] | None = None, filter: Filter | Mapping[str, Any] | None = None,
              tenant: str | None = None) -> FacetResult:
        """`Collection.facet` merged: every shard counts every value; a bin count becomes the edges
        one node would use (from the global min and max, a first round)."""
        limit, flt, targets = check_limit(limit), as_filter(filter), self._targets(tenant)
        if isinstance(bins, int) and not isinstance(bins, bool):
            check_bins(bins)
            first = self.facet(field, kind=kind, limit=limit, filter=flt, tenant=tenant)
            if first.stats is not None and first.stats.count:
                lo, hi = first.stats.min, first.stats.max
                bins = np.histogram_bin_edges(np.array([lo, hi], dtype=np.float64), bins).tolist()
        answers = self._gather([(s, self.handles[s].facet.remote(field, kind, MAX_FACET_LIMIT, bins, flt, tenant))
                                for s in targets])
        return merge_facets([answers[s] for s in targets], limit)

    def tenants(self) -> dict[str, int]:
        answers = self._gather([(s, h.tenants.remote()) for s, h in enumerate(self.handles)])
        total: dict[str, int] = {}
        for part in answers.values():
            for t, n in part.items():
                total[t] = total.get(t, 0) + n
        return dict(sorted(total.items()))

    def stats(self) -> dict[str, Any]:
        answers = self._gather([(s, h.stats.remote()) for s, h in enumerate(self.handles)])
        return {"documents": sum(a["documents"] for a in answers.values()),
                "shards": [answers[s] for s in range(self.shards)]}

    def snapshot(self) -> None:
        self._gather([(s, h.snapshot.remote()) for s, h in enumerate(self.handles)])

    def close(self) -> None:
        """Snapshot and close every shard, and end its actor."""
        ray = ray_module()
        try:
            self._gather([(s, h.close.remote()) for s, h in enumerate(self.handles)])
        finally:
            for h in self.handles:
                ray.kill(h, no_restart=True)

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _within(deadline: Deadline, timeout_s: float) -> float:
    """How long to wait for the shards: `timeout_s`, or less when the deadline comes first."""
    remaining = deadline.remaining()
    return timeout_s if remaining is None else max(min(timeout_s, remaining), 1e-3)


def _row_key(row: Any, key: str) -> Any:
    if isinstance(row, Document):
        return getattr(row, key)
    if isinstance(row, Mapping):
        return row.get(key, row.get("_id")) if key == "id" else row.get(key)
    return None
