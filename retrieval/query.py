"""The shape of a query: first stages, fusion, rerank, filter and tenant (Qdrant's prefetch + fusion).

    SearchRequest
      stages   one or more first stages, each a dense or sparse search with its own limit
               and index parameters, run concurrently
      fusion   how several stages' ranked lists become one (RRF or normalised weighted scores)
      rerank   an optional late-interaction (MaxSim) stage over the fused candidates
      filter   a metadata filter (`lamina.index.filters.Filter`), applied inside every stage
      tenant   restricts every stage to one tenant's documents

`SearchRequest.simple(mode=...)` builds the common shapes: "dense", "sparse" or "hybrid"
(both stages, fused). Everything is validated here, before any index is touched, so a bad
request fails with InvalidArgument naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from lamina.index.errors import InvalidArgument
from lamina.index.filters import Filter, as_filter
from lamina.index.sparse import SparseBatch
from lamina.index.types import Hit, check_k, check_text
from lamina.retrieval.rerank import check_rerank_params

STAGE_KINDS = ("dense", "sparse")
MODES = ("dense", "sparse", "hybrid")
FUSIONS = ("rrf", "weighted")
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
    """rrf: sum of weight / (rrf_k + rank); weighted: min-max normalised scores, weighted."""

    method: str = "rrf"
    weights: tuple[float, ...] | None = None
    rrf_k: float = 60.0

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


@dataclass(frozen=True)
class Rerank:
    """Late-interaction rerank: MaxSim over the best `kappa` fused candidates; `alpha` prunes
    candidates whose first-stage score is below (1 - alpha) times the k-th; `beta` stops after
    that many consecutive candidates fail to enter the top k (Martinico et al., ECIR 2026)."""

    kappa: int = 50
    alpha: float | None = None
    beta: int | None = None


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

    @classmethod
    def simple(cls, query: Query, k: int = 10, *, mode: str = "dense", params: Mapping[str, Any] | None = None,
               fusion: str | Fusion = "rrf", rerank: Rerank | int | None = None,
               filter: Filter | Mapping[str, Any] | None = None, tenant: str | None = None,
               with_payload: bool = True, explain: bool = False) -> SearchRequest:
        """The usual request: `mode` dense, sparse or hybrid (dense + sparse fused).

        `params` go to every stage, except a name prefixed with a stage kind ("dense.nprobe",
        "sparse.query_cut"), which goes to that stage only: a hybrid search can set a knob that
        only one of its indexes knows."""
        if mode not in MODES:
            raise InvalidArgument(f"unknown search mode {mode!r}; expected one of {', '.join(MODES)}")
        kinds = STAGE_KINDS if mode == "hybrid" else (mode,)
        stages = tuple(Stage(kind, params=_stage_params(params or {}, kind, kinds)) for kind in kinds)
        if isinstance(fusion, str):
            fusion = Fusion(fusion)
        if isinstance(rerank, int) and not isinstance(rerank, bool):
            rerank = Rerank(kappa=rerank)
        return cls(query, k, stages, fusion, rerank, as_filter(filter), tenant, with_payload, explain)

    def stage_limit(self, stage: Stage) -> int:
        if stage.limit is not None:
            return stage.limit
        if len(self.stages) > 1 or self.rerank is not None:
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
