"""Disk-resident clustered vector index: SPANN (Chen et al., NeurIPS'21; microsoft/SPTAG) with
SPFresh-style in-place updates (Xu et al., SOSP'23).

Heads (about 12 % of the vectors, chosen by hierarchical balanced k-means) sit in memory in a
faiss index; every other vector lives in the page-aligned posting lists of a few nearby heads
(RNG rule) in one file on disk. A query reads the lists of its nearest heads, pruned by distance.

Modules: `clustering` (head selection) and `assign` (placement, capping, pruning) are pure
numpy; `postings` is the posting file format, `files` the directory of generations and its
manifest, `heads` the in-memory head index, `index` the `SpannIndex` that ties them together.
"""

from lamina.index.spann.config import SpannConfig
from lamina.index.spann.index import SpannIndex, SpannStats, verify

__all__ = ["SpannConfig", "SpannIndex", "SpannStats", "verify"]
