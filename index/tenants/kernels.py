"""The pure kernels of the multi-tenant tree (numpy in, numpy out; numba where a loop is hot).

Bloom filter positions, the ancestor table, leaf routing, Curator's best-first walk of a tenant's
sub-tree, and the small array helpers `TenantIndex` builds on (`lamina.index.tenants.index`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numba
import numpy as np
from lamina.index.ids import sorted_member
from lamina.index.topk import pq_pop, pq_push

_FIRST = np.zeros(1, dtype=np.int64)


def bloom_bits(tenants: np.ndarray, n_hashes: int, n_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Bloom filter positions of tenant numbers: (byte (n, h) int64, bit mask (n, h) uint8).

    splitmix64 of (tenant, hash number): well mixed, and the same on every machine, so saved
    filters stay valid.
    """
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps on purpose
        x = (tenants.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)
             + np.arange(1, n_hashes + 1, dtype=np.uint64)[None, :] * np.uint64(0xD1B54A32D192ED03))
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    pos = x % np.uint64(n_bits)
    return (pos >> np.uint64(3)).astype(np.int64), (np.uint64(1) << (pos & np.uint64(7))).astype(np.uint8)


def _groups(keys: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(key, positions) for each distinct key of an int array, keys ascending."""
    if not len(keys):
        return
    if len(keys) == 1:  # the single-vector write path: no sort
        yield int(keys[0]), _FIRST
        return
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    stops = np.concatenate([starts[1:], [len(keys)]])
    for start, stop in zip(starts.tolist(), stops.tolist()):
        yield int(ordered[start]), order[start:stop]


def _nearest(x: np.ndarray, centroids: np.ndarray, metric: str) -> np.ndarray:
    """Index of the nearest centroid (k, d) for each row of x (n, d): (n,) int64."""
    ip = x @ centroids.T
    if metric == "ip":
        return ip.argmax(1)
    return ((centroids * centroids).sum(1)[None, :] - 2 * ip).argmin(1)


def ancestor_table(parent: np.ndarray, level: np.ndarray) -> np.ndarray:
    """(n_nodes, depth+1) int32: row v holds v's ancestor at each level (v itself at its own), -1 below.

    Node ids must be breadth-first (a parent's id below its children's), as `_build_tree` makes them.
    The slots then keep only their leaf: the path of a slot is one row of this small table.
    """
    depth = int(level.max()) if len(level) else 0
    table = np.full((len(parent), depth + 1), -1, dtype=np.int32)
    table[np.arange(len(parent)), level] = np.arange(len(parent))
    for lvl in range(1, depth + 1):  # a loop over levels: each copies the parents' rows
        nodes = np.flatnonzero(level == lvl)
        table[nodes, :lvl] = table[parent[nodes], :lvl]
    return table


@numba.njit(cache=True, nogil=True)
def bloom_path(bloom: np.ndarray, path: np.ndarray, byte: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Whether each node of a root-to-leaf path (int32, -1 padded) has a tenant's filter bits
    (bytes `byte`, masks `mask`) set: (nodes on the path,) bool."""
    depth = 0
    while depth < path.shape[0] and path[depth] >= 0:
        depth += 1
    out = np.empty(depth, dtype=np.bool_)
    for i in range(depth):
        row = bloom[path[i]]
        out[i] = True
        for j in range(byte.shape[0]):
            if row[byte[j]] & mask[j] != mask[j]:
                out[i] = False
                break
    return out


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})  # lets the centroid dots use SIMD
def route_leaves(x: np.ndarray, child0: np.ndarray, nchild: np.ndarray, centroids: np.ndarray,
                 centroid_sq: np.ndarray, ip_metric: bool) -> np.ndarray:
    """The leaf (n,) int32 of each row of x (n, d) float32: from the root, the nearest child
    (largest inner product, or smallest |c|^2 - 2<x, c>) level by level. Children of a node
    are the consecutive ids child0[node] .. child0[node] + nchild[node] - 1."""
    out = np.empty(x.shape[0], dtype=np.int32)
    for i in range(x.shape[0]):
        node = 0
        while nchild[node] > 0:
            best, best_score = child0[node], np.inf
            for child in range(child0[node], child0[node] + nchild[node]):
                dot = 0.0
                for t in range(x.shape[1]):
                    dot += centroids[child, t] * x[i, t]
                score = -dot if ip_metric else centroid_sq[child] - 2.0 * dot
                if score < best_score:
                    best, best_score = child, score
            node = best
        out[i] = node
    return out


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})  # lets the centroid dots use SIMD
def best_first_frontier(query: np.ndarray, child0: np.ndarray, nchild: np.ndarray, bloom: np.ndarray,
                        centroids: np.ndarray, node_bias: np.ndarray, ip_metric: bool,
                        tenant_bytes: np.ndarray, tenant_masks: np.ndarray, frontier_nodes: np.ndarray,
                        frontier_sizes: np.ndarray, budget: int) -> tuple[np.ndarray, bool]:
    """Curator's best-first walk of one tenant's sub-tree, until `budget` vectors are reached.

    query (d,) float32; per node: child0/nchild (n_nodes,) int32 (children are consecutive ids),
    bloom (n_nodes, bytes) uint8, centroids (n_nodes, d) float32, node_bias (n_nodes,) float32
    (|c|^2 - boost * radius for L2, unused for IP); the tenant's filter bytes (h,) int64 and masks
    (h,) uint8; its frontier: the nodes holding its shortlists (m,) int32 sorted, and their sizes
    (m,) int64. A node's priority is its centroid's distance to the query (L2: |c|^2 - 2<q, c>
    - boost * radius; IP: -<q, c>), smallest first; only children whose filter holds the tenant
    are entered. Returns positions into frontier_nodes (visiting order) and whether the walk ran
    out of nodes, i.e. reached every shortlist of the tenant.
    """
    n_frontier = frontier_nodes.shape[0]
    prio = np.empty(child0.shape[0] + 1, dtype=np.float32)  # a node is pushed at most once
    item = np.empty(child0.shape[0] + 1, dtype=np.int32)
    size = pq_push(prio, item, 0, 0.0, 0)
    out = np.empty(n_frontier, dtype=np.int64)
    n_out = 0
    total = 0
    while size > 0 and total < budget:
        node = item[0]
        size = pq_pop(prio, item, size)
        lo, hi = 0, n_frontier  # binary search of the frontier (sorted node ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if frontier_nodes[mid] < node:
                lo = mid + 1
            else:
                hi = mid
        if lo < n_frontier and frontier_nodes[lo] == node:
            out[n_out] = lo
            n_out += 1
            total += frontier_sizes[lo]
            continue  # a leaf of the tenant's sub-tree: nothing of the tenant lies deeper
        first = child0[node]
        for child in range(first, first + nchild[node]):
            held = True
            for j in range(tenant_bytes.shape[0]):
                if bloom[child, tenant_bytes[j]] & tenant_masks[j] != tenant_masks[j]:
                    held = False
                    break
            if not held:
                continue
            dot = np.float32(0.0)
            for t in range(query.shape[0]):
                dot += centroids[child, t] * query[t]
            p = -dot if ip_metric else node_bias[child] - np.float32(2.0) * dot
            size = pq_push(prio, item, size, p, child)
    return out[:n_out], size == 0


def _run_starts(sizes: np.ndarray) -> np.ndarray:
    """Where each of back-to-back runs of these sizes starts (int64): the exclusive prefix sum."""
    starts = np.zeros(len(sizes), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    return starts


def _apply_id_deltas(ids: np.ndarray, deltas: Sequence[tuple[np.ndarray, int]]) -> np.ndarray | None:
    """Sorted unique iids after the net of `deltas` ((iids, +1 gained or -1 lost), in any order);
    None if the deltas do not fit `ids` (an id lost that is absent, or gained that is present)."""
    values = np.concatenate([changed for changed, _ in deltas])
    signs = np.concatenate([np.full(len(changed), sign, dtype=np.int64) for changed, sign in deltas])
    keys, inverse = np.unique(values, return_inverse=True)
    net = np.bincount(inverse, weights=signs, minlength=len(keys))
    lost, gained = keys[net < 0], keys[net > 0]
    if (net < -1).any() or (net > 1).any() or sorted_member(lost, ids).sum() != len(lost) \
            or sorted_member(gained, ids).any():
        return None
    if len(lost):
        ids = np.delete(ids, np.searchsorted(ids, lost))
    if len(gained):
        ids = np.insert(ids, np.searchsorted(ids, gained), gained)
    return ids


@numba.njit(cache=True, nogil=True)
def gather_runs(slots: np.ndarray, starts: np.ndarray, sizes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The runs slots[starts[i]: starts[i] + sizes[i]] for i in `order`, concatenated (int32)."""
    total = 0
    for i in order:
        total += sizes[i]
    out = np.empty(total, dtype=np.int32)
    at = 0
    for i in order:
        start = starts[i]
        for j in range(sizes[i]):
            out[at + j] = slots[start + j]
        at += sizes[i]
    return out
