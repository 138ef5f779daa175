"""Learned-sparse first stage: a Seismic-style blocked inverted index over sparse vectors.

- `batch`: `SparseBatch` (CSR arrays) and input checks;
- `build`: pruning, blocking, summaries (pure numba kernels);
- `search`: query processing, exact scoring, the scipy reference `exact_search`;
- `index`: `SparseIndex` (delta, tombstones, persistence) and `SeismicConfig`;
- `tenant_stats`: `TenantCorpusStats`, BM25 corpus statistics per tenant (tenant-bound scoring).
"""

from lamina.index.sparse.batch import SparseBatch, canonical_batch, check_queries
from lamina.index.sparse.index import SeismicConfig, SparseIndex
from lamina.index.sparse.search import exact_search
from lamina.index.sparse.tenant_stats import TenantCorpusStats

__all__ = ["SeismicConfig", "SparseBatch", "SparseIndex", "canonical_batch", "TenantCorpusStats", "check_queries",
           "exact_search"]
