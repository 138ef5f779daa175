"""Bounds on the work one search may ask for: ResourceExhausted, naming the field and the bound.

Checked by `Collection.query` before any index is touched, against `lamina.index.limits.current()`:
- `max_ef_k`: for an HNSW dense stage, the beam faiss walks, max(ef_search, limit), times the stage's
  limit (the issue's k = 10,000 at ef 10,000 is 10^8 and ran 2.1 s); for a SPANN dense stage the same
  for its head search, max(ef_search, max_postings) × max_postings;
- `max_candidates`: the candidates a request handles in all, every first stage's limit plus the
  rerank's kappa and the graph's limit.
"""

from __future__ import annotations

from typing import Any

from lamina.index import limits
from lamina.index.errors import ResourceExhausted
from lamina.index.types import IndexConfig
from lamina.retrieval.query import SearchRequest

_SPANN_DEFAULTS = {"max_postings": 64, "ef_search": 32}  # SpannConfig's defaults


def check_search_work(request: SearchRequest, index: IndexConfig) -> None:
    """Raise ResourceExhausted when `request` asks for more work than the limits allow."""
    bound = limits.current()
    candidates = sum(request.stage_limit(stage) for stage in request.stages)
    candidates += request.rerank.kappa if request.rerank is not None else 0
    candidates += request.graph.limit if request.graph is not None else 0
    if candidates > bound.max_candidates:
        raise ResourceExhausted(
            f"the search asks for {candidates:,} candidates in all (stage limits, rerank kappa and graph limit "
            f"summed); the bound max_candidates is {bound.max_candidates:,} (lamina serve --max-candidates)")
    for stage in request.stages:
        if stage.kind != "dense":
            continue
        work, what = _beam_work(stage.params, request.stage_limit(stage), index)
        if work > bound.max_ef_k:
            raise ResourceExhausted(
                f"dense stage {what} = {work:,} exceeds the bound max_ef_k of {bound.max_ef_k:,}: lower k or "
                "the beam, or raise the bound (lamina serve --max-ef-k)")


def _beam_work(params: Any, limit: int, index: IndexConfig) -> tuple[int, str]:
    """(the beam times what it yields, how it was counted) for a dense stage on `index`."""
    if index.kind == "hnsw":
        ef = int(params.get("ef_search", index.ef_search))
        return max(ef, limit) * limit, f"max(ef_search {ef:,}, limit {limit:,}) × limit {limit:,}"
    if index.kind == "spann":
        spann = {**_SPANN_DEFAULTS, **index.spann}
        postings = int(params.get("max_postings", spann["max_postings"]))
        ef = int(params.get("ef_search", spann["ef_search"]))
        return max(ef, postings) * postings, f"max(ef_search {ef:,}, max_postings {postings:,}) × max_postings"
    return 0, ""  # flat and IVF: their cost does not grow with k (nprobe is bounded by nlist)
