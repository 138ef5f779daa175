"""The shape of a query: first stages, fusion, rerank, filter and tenant (Qdrant's prefetch + fusion).

    SearchRequest
      stages   one or more first stages, each a dense or sparse search with its own limit
               and index parameters, run concurrently
      fusion   how several stages' ranked lists become one (RRF, normalised weighted scores, or
               adaptive: per-query weights and a dense pseudo-relevance feedback round)
      rerank   an optional late-interaction (MaxSim) stage over the fused candidates
      graph    an optional graph expansion after fusion: personalised PageRank over the entity graph,
               seeded from the query's entities and the fused hits (`GraphExpansion`)
      filter   a metadata filter (`lamina.index.filters.Filter`), applied inside every stage
      tenant   restricts every stage to one tenant's documents

`SearchRequest.simple(mode=...)` builds the common shapes: "dense", "sparse" or "hybrid"
(both stages, fused), "hybrid+graph" (hybrid, then the graph expansion) and "graph" (the PPR
ranking from the query's entities alone, the dense stage as its fallback). Everything is validated here, before any index is touched, so a bad
request fails with InvalidArgument naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from lamina.index.errors import InvalidArgument
from lamina.index.filters import Filter, as_filter
from lamina.index.sparse import SparseBatch
from lamina.index.types import Hit, check_k, check_text
from lamina.retrieval.fusion import FUSION_METHODS
from lamina.retrieval.rerank import check_rerank_params

STAGE_KINDS = ("dense", "sparse")
MODES = ("dense", "sparse", "hybrid", "hybrid+graph", "dense+graph", "graph")
GRAPH_FUSIONS = ("ppr", "rrf")
GRAPH_METHODS = ("exact", "push")
FUSIONS = FUSION_METHODS
# The fusion of a hybrid search that names none (bench/RESULTS.md, "Adaptive fusion", has the figures).
DEFAULT_FUSION = "adaptive"
DEFAULT_FEEDBACK = 1  # fused documents whose mean vector moves the dense query, for "adaptive"
MAX_FEEDBACK = 100
MAX_STAGES = 8
DEFAULT_STAGE_LIMIT = 100  # candidates a first stage hands to fusion or rerank

Query = str | np.ndarray | Sequence[float] | SparseBatch | Mapping[int, float] | None


@dataclass(frozen=True)
class Stage:
    """One first stage. `query` None means the request's query; `limit` None means max(k, 100)
    when the stage feeds fusion or rerank, else k. `params`: per-query index knobs (nprobe,
    ef_search, query_cut, heap_factor, max_postings, max_dist_ratio)."""

    kind: str = "dense"
    query: Query = None
    limit: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in STAGE_KINDS:
            raise InvalidArgument(f"unknown stage kind {self.kind!r}; expected one of {', '.join(STAGE_KINDS)}")
        if self.limit is not None:
            check_k(self.limit, 10_000, f"{self.kind} stage limit")
        if not isinstance(self.params, Mapping):
            raise InvalidArgument(f"stage params must be a mapping, got {type(self.params).__name__}")
        for key, value in self.params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise InvalidArgument(f"stage parameter {key!r} must be a number, got {value!r}")
            if not math.isfinite(float(value)) and not (key == "heap_factor" and value > 0):
                raise InvalidArgument(f"stage parameter {key!r} must be finite, got {value!r}")


@dataclass(frozen=True)
class Fusion:
    """How the first stages' lists become one (`lamina.retrieval.fusion`).

    rrf: sum of weight / (rrf_k + rank); weighted: min-max normalised scores, weighted; zscore:
    standardised scores, weighted; adaptive: weighted min-max whose weights are set per query by
    each list's decisiveness, after `feedback` rounds of pseudo-relevance feedback: the dense
    stages search again with their query moved by Rocchio towards the mean vector of the best
    `feedback` fused documents (`feedback_weight` beta), and the lists are fused again.
    `feedback` None means DEFAULT_FEEDBACK for adaptive and 0 (off) for the others.
    """

    method: str = DEFAULT_FUSION
    weights: tuple[float, ...] | None = None
    rrf_k: float = 60.0
    feedback: int | None = None
    feedback_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in FUSIONS:
            raise InvalidArgument(f"unknown fusion {self.method!r}; expected one of {', '.join(FUSIONS)}")
        if self.weights is not None:
            weights = tuple(float(w) for w in self.weights)
            if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
                raise InvalidArgument(f"fusion weights must be finite, >= 0 and not all 0, got {list(weights)}")
            object.__setattr__(self, "weights", weights)
        if not (math.isfinite(self.rrf_k) and self.rrf_k > 0):
            raise InvalidArgument(f"rrf_k must be a positive number, got {self.rrf_k!r}")
        if self.feedback is not None and (isinstance(self.feedback, bool) or not isinstance(self.feedback, int)
                                          or not 0 <= self.feedback <= MAX_FEEDBACK):
            raise InvalidArgument(f"fusion feedback must be an integer in [0, {MAX_FEEDBACK}], got {self.feedback!r}")
        if isinstance(self.feedback_weight, bool) or not isinstance(self.feedback_weight, (int, float)) \
                or not (math.isfinite(self.feedback_weight) and 0 <= self.feedback_weight <= 100):
            raise InvalidArgument(f"fusion feedback_weight must be a number in [0, 100], got {self.feedback_weight!r}")

    @property
    def feedback_docs(self) -> int:
        """Fused documents the feedback round uses (0: no feedback round)."""
        if self.feedback is not None:
            return self.feedback
        return DEFAULT_FEEDBACK if self.method == "adaptive" else 0


@dataclass(frozen=True)
class Rerank:
    """Late-interaction rerank: MaxSim over the best `kappa` fused candidates; `alpha` prunes
    candidates whose first-stage score is below (1 - alpha) times the k-th; `beta` stops after
    that many consecutive candidates fail to enter the top k (Martinico et al., ECIR 2026). Both
    are off by default: on the sets measured they only raised nDCG@10 against unpruned MaxSim (the
    default token vectors' MaxSim is below the hybrid first stage), which cannot show them safe for
    a rerank that helps (bench/RESULTS.md, "Rerank pruning defaults")."""

    kappa: int = 50
    alpha: float | None = None
    beta: int | None = None


@dataclass(frozen=True)
class GraphExpansion:
    """Personalised PageRank over the collection's entity graph, after the first stages (HippoRAG 2).

    The personalisation puts each seed entity's match similarity, divided by the number of chunks
    that mention it, on the entity, and `passage_weight` times the fused hits' min-max normalised
    scores on their chunks (0: the entities alone). Seeds are the query's entities matched by key
    and, with the dense encoder, the `seed_top` entity names nearest each query entity at cosine
    >= `seed_threshold`. fusion "rrf" (the default) fuses the PPR ranking with the fused hits, the
    graph weighing `weight`; "ppr" ranks by PPR mass alone (then the fused hits PPR did not reach),
    as HippoRAG 2 does -- on hotpotqa-dev500 with LLM-free entities it lost 0.06 recall@5 to hybrid,
    where rrf gained 0.009 (bench/RESULTS.md, "Graph-RAG"). method "exact" is
    power iteration, "push" the local push (Andersen et al.) to `eps`. `limit`: chunks PPR ranks.
    """

    limit: int = 100
    damping: float = 0.5
    passage_weight: float = 0.05
    seed_top: int = 5
    seed_threshold: float = 0.8
    fusion: str = "rrf"
    weight: float = 1.0
    method: str = "exact"
    eps: float = 1e-7

    def __post_init__(self) -> None:
        check_k(self.limit, 10_000)
        check_k(self.seed_top, 100)
        for name, low, high in (("damping", 0.0, 0.99), ("passage_weight", 0.0, 1e6), ("seed_threshold", -1.0, 1.0),
                                ("weight", 0.0, 1e6), ("eps", 1e-12, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise InvalidArgument(f"graph {name} must be a number in [{low:g}, {high:g}], got {value!r}")
        if self.fusion not in GRAPH_FUSIONS:
            raise InvalidArgument(f"unknown graph fusion {self.fusion!r}; expected one of {', '.join(GRAPH_FUSIONS)}")
        if self.method not in GRAPH_METHODS:
            raise InvalidArgument(f"unknown graph method {self.method!r}; expected one of {', '.join(GRAPH_METHODS)}")

    @classmethod
    def coerce(cls, value: GraphExpansion | Mapping[str, Any] | None) -> GraphExpansion | None:
        """A GraphExpansion from itself or its options (a pipeline's or a config file's plain data)."""
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise InvalidArgument(f"graph must be a GraphExpansion or its options, got {type(value).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidArgument(f"unknown graph option(s) {', '.join(map(str, unknown))}; "
                                  f"expected {', '.join(sorted(known))}")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchRequest:
    query: Query
    k: int = 10
    stages: tuple[Stage, ...] = (Stage("dense"),)
    fusion: Fusion = field(default_factory=Fusion)
    rerank: Rerank | None = None
    filter: Filter | None = None
    tenant: str | None = None
    with_payload: bool = True
    explain: bool = False
    graph: GraphExpansion | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_k(self.k, 10_000))
        if isinstance(self.query, str):
            check_text(self.query, "query text")
        stages = (self.stages,) if isinstance(self.stages, Stage) else tuple(self.stages)
        if not stages:
            raise InvalidArgument("a search needs at least one first stage")
        if len(stages) > MAX_STAGES:
            raise InvalidArgument(f"a search has {len(stages)} first stages, the limit is {MAX_STAGES}")
        object.__setattr__(self, "stages", stages)
        if self.fusion.weights is not None and len(self.fusion.weights) != len(stages):
            raise InvalidArgument(f"fusion has {len(self.fusion.weights)} weights for {len(stages)} stages")
        if self.rerank is not None:
            check_rerank_params(self.k, self.rerank.kappa, self.rerank.alpha, self.rerank.beta)
        object.__setattr__(self, "filter", as_filter(self.filter))
        if self.tenant is not None and (not isinstance(self.tenant, str) or not self.tenant):
            raise InvalidArgument(f"tenant must be a non-empty string, got {self.tenant!r}")
        if self.graph is not None and not isinstance(self.graph, GraphExpansion):
            raise InvalidArgument(f"graph must be a GraphExpansion, got {type(self.graph).__name__}")

    @classmethod
    def simple(cls, query: Query, k: int = 10, *, mode: str = "dense", params: Mapping[str, Any] | None = None,
               fusion: str | Fusion | None = None, rerank: Rerank | int | None = None,
               filter: Filter | Mapping[str, Any] | None = None, tenant: str | None = None,
               with_payload: bool = True, explain: bool = False,
               graph: GraphExpansion | Mapping[str, Any] | None = None) -> SearchRequest:
        """The usual request: `mode` dense, sparse or hybrid (dense + sparse fused by `fusion`, a
        method name or a `Fusion`; None: DEFAULT_FUSION).

        `params` go to every stage, except a name prefixed with a stage kind ("dense.nprobe",
        "sparse.query_cut"), which goes to that stage only: a hybrid search can set a knob that
        only one of its indexes knows."""
        if mode not in MODES:
            raise InvalidArgument(f"unknown search mode {mode!r}; expected one of {', '.join(MODES)}")
        graph = GraphExpansion.coerce(graph)
        if mode.endswith("graph") and graph is None:
            graph = GraphExpansion(passage_weight=0.0, fusion="ppr") if mode == "graph" else GraphExpansion()
        base = mode.removesuffix("+graph")
        kinds = STAGE_KINDS if base == "hybrid" else ("dense",) if base == "graph" else (base,)
        stages = tuple(Stage(kind, params=_stage_params(params or {}, kind, kinds)) for kind in kinds)
        if fusion is None:
            fusion = Fusion()
        elif isinstance(fusion, str):
            fusion = Fusion(fusion)
        if isinstance(rerank, int) and not isinstance(rerank, bool):
            rerank = Rerank(kappa=rerank)
        return cls(query, k, stages, fusion, rerank, as_filter(filter), tenant, with_payload, explain, graph)

    def stage_limit(self, stage: Stage) -> int:
        if stage.limit is not None:
            return stage.limit
        if len(self.stages) > 1 or self.rerank is not None or self.graph is not None:
            return max(self.k, self.rerank.kappa if self.rerank else 0, DEFAULT_STAGE_LIMIT)
        return self.k


def _stage_params(params: Mapping[str, Any], kind: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    """The params of the `kind` stage: unprefixed names and those prefixed "<kind>." (prefix
    dropped). A prefix naming a kind the search does not run is InvalidArgument."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        prefix, dot, rest = str(name).partition(".")
        if not dot:
            out[name] = value
        elif prefix not in STAGE_KINDS or not rest:
            raise InvalidArgument(f"search parameter {name!r}: a prefix names a stage, 'dense.' or 'sparse.'")
        elif prefix not in kinds:
            raise InvalidArgument(f"search parameter {name!r} is for a {prefix} stage, and this search runs "
                                  f"{' and '.join(kinds)} only")
        elif prefix == kind:
            out[rest] = value
    return out


@dataclass
class SearchResult:
    """Hits best first; `explain` (when asked) says how each stage ran: plan, candidates, timings."""

    hits: list[Hit]
    explain: dict[str, Any] | None = None
