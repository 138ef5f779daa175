"""Multi-tenant vector search over one shared clustering tree, after Curator.

`index.py` holds `TenantIndex` and its config, `kernels.py` the pure kernels, `format.py` the files. The names that
lived in the old `lamina.index.tenants` module are re-exported here.
"""

from lamina.index.tenants.index import TenantIndex, TenantIndexConfig
from lamina.index.tenants.kernels import ancestor_table, best_first_frontier, bloom_bits, bloom_path, gather_runs, \
    route_leaves
from lamina.index.topk import exact_topk as brute_force_topk
from lamina.index.topk import score_topk

__all__ = [
    "TenantIndex",
    "TenantIndexConfig",
    "ancestor_table",
    "best_first_frontier",
    "bloom_bits",
    "bloom_path",
    "brute_force_topk",
    "gather_runs",
    "route_leaves",
    "score_topk",
]
