"""Building a Seismic index: pure kernels, numpy arrays in and out, no I/O.

Seismic (Bruch, Nardini, Rulli, Venturini, "Efficient Inverted Indexes for Approximate
Retrieval over Learned Sparse Representations", SIGIR 2024) organises an inverted index
over learned sparse vectors as follows, and so does this module:

1. a forward index: every document's vector (uint16 term ids where the vocabulary allows,
   float16 weights), for exact scoring;
2. static pruning: each term's posting list keeps only its largest-weight entries
   (`prune_postings`; either a global weight threshold with a per-list cap, as Seismic's
   default, or a fixed number per list);
3. blocking: each pruned list is split into geometrically cohesive blocks by a shallow
   k-means on the documents' forward vectors: centroids drawn at random from the list,
   each document assigned to the centroid of largest inner product (`cluster_postings`,
   Seismic's "random k-means", computed on each vector's top `doc_cut` weights);
4. a summary per block: the coordinate-wise maximum of its documents, quantised to u8
   with one scale per summary and pruned to its largest coordinates holding
   `summary_energy` of its L1 mass (`summarise_blocks`). Rounding is upward, so a kept
   coordinate of a summary is never below any member's weight.

Array layouts (n documents, V terms, B blocks):

    term_blocks   (V + 1,) int64    blocks of term t: term_blocks[t]:term_blocks[t + 1]
    block_ptr     (B + 1,) int64    postings of block b: block_ptr[b]:block_ptr[b + 1]
    postings      (P,)     int32    forward-index rows, grouped by block
    term_summaries (V + 1,) int64   summary coordinates of list t: term_summaries[t]:term_summaries[t + 1]
    summary_terms  (C,)     uint16  coordinate (term id), increasing within a list
    summary_counts (C,)     uint16  entries of the coordinate (they follow each other in list order)
    summary_checkpoints (C / 32 + 1,) int64  offset of the entries of coordinates 0, 32, 64, ...
    summary_blocks (S,)     uint16  block holding the entry, counted from the list's first block
    summary_codes  (S,)     uint8   weight = code * summary_scales[block]
    summary_scales (B,)     float32

The summaries of a list are stored transposed, coordinate by coordinate (as Seismic's
`QuantizedSummary`): scoring every block of a list against a query costs a binary search
per query term among the list's coordinates plus the entries of the shared coordinates,
not a pass over every summary. Counts plus a checkpoint every 32 coordinates
(offset = checkpoint + at most 31 counts) keep a coordinate at 4.25 bytes. uint16 arrays
become int32 where a vocabulary or a list's block count exceeds 65535.

Kernels are numba `@njit(cache=True, nogil=True)`: single-threaded, so that callers can
run several on a thread pool without numba's threading layer (which is not safe to
enter from several Python threads at once).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

import numba
import numpy as np

from lamina.index.sparse.kernels import radix_argsort, sample_positions, top_k_mask

F16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class BuildParams:
    """The knobs of `build_seismic`; see SeismicConfig for their meaning and defaults."""

    n_postings: int
    pruning: str
    max_fraction: float
    centroid_fraction: float
    doc_cut: int
    summary_energy: float
    seed: int


@dataclass(frozen=True)
class SeismicArrays:
    """The static part of a Seismic index: forward index plus blocked, summarised postings."""

    doc_ids: np.ndarray  # (n,) int64, increasing: row order is id order
    fwd_indptr: np.ndarray  # (n + 1,) int64
    fwd_indices: np.ndarray  # (nnz,) uint16, or int32 beyond 65536 terms
    fwd_values: np.ndarray  # (nnz,) float16
    term_blocks: np.ndarray  # (V + 1,) int64
    block_ptr: np.ndarray  # (B + 1,) int64
    postings: np.ndarray  # (P,) int32
    term_summaries: np.ndarray  # (V + 1,) int64
    summary_terms: np.ndarray  # (C,) uint16, or int32 beyond 65536 terms
    summary_counts: np.ndarray  # (C,) uint16, or int32 for lists of more than 65535 blocks
    summary_checkpoints: np.ndarray  # (C // CHECKPOINT + 1,) int64
    summary_blocks: np.ndarray  # (S,) uint16, or int32 for lists of more than 65536 blocks
    summary_codes: np.ndarray  # (S,) uint8
    summary_scales: np.ndarray  # (B,) float32

    @property
    def n_rows(self) -> int:
        return len(self.doc_ids)

    @property
    def vocab_size(self) -> int:
        return len(self.term_blocks) - 1

    @property
    def n_blocks(self) -> int:
        return len(self.block_ptr) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays().values())

    @classmethod
    def empty(cls, vocab_size: int) -> SeismicArrays:
        z64 = np.zeros(1, np.int64)
        return cls(np.empty(0, np.int64), z64, narrow(np.empty(0, np.int32), vocab_size), np.empty(0, np.float16),
                   np.zeros(vocab_size + 1, np.int64), z64.copy(), np.empty(0, np.int32),
                   np.zeros(vocab_size + 1, np.int64), narrow(np.empty(0, np.int32), vocab_size),
                   np.empty(0, np.uint16), z64.copy(), np.empty(0, np.uint16), np.empty(0, np.uint8),
                   np.empty(0, np.float32))


# ---------------------------------------------------------------------------- kernels
@numba.njit(cache=True, nogil=True)
def invert(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, n_terms: int):
    """Posting lists of a CSR batch (a counting sort by term).

    indptr (n + 1,) int64, indices (nnz,) int32, values (nnz,) float32 ->
    term_ptr (n_terms + 1,) int64, rows (nnz,) int32 increasing within a term, weights (nnz,) float32.
    """
    nnz = indices.shape[0]
    term_ptr = np.zeros(n_terms + 1, np.int64)
    for p in range(nnz):
        term_ptr[indices[p] + 1] += 1
    for t in range(n_terms):
        term_ptr[t + 1] += term_ptr[t]
    fill = term_ptr[:-1].copy()
    rows = np.empty(nnz, np.int32)
    weights = np.empty(nnz, np.float32)
    for r in range(indptr.shape[0] - 1):
        for p in range(indptr[r], indptr[r + 1]):
            t = indices[p]
            q = fill[t]
            rows[q] = r
            weights[q] = values[p]
            fill[t] = q + 1
    return term_ptr, rows, weights


@numba.njit(cache=True, nogil=True)
def prune_postings(term_ptr: np.ndarray, rows: np.ndarray, weights: np.ndarray, max_per_term: int,
                   min_weight: float):
    """Static pruning: per term, the entries of weight >= min_weight, then at most max_per_term of the largest.

    Ties at the cut keep the lower row. Kept entries stay in row order.
    Returns term_ptr (V + 1,) int64, rows (P,) int32, weights (P,) float32.
    """
    n_terms = term_ptr.shape[0] - 1
    new_ptr = np.zeros(n_terms + 1, np.int64)
    out_rows = np.empty(rows.shape[0], np.int32)
    out_weights = np.empty(rows.shape[0], np.float32)
    mask = np.empty(rows.shape[0], np.bool_)
    w = 0
    for t in range(n_terms):
        s, e = term_ptr[t], term_ptr[t + 1]
        top_k_mask(weights[s:e], max_per_term, min_weight, mask[s:e])
        for p in range(s, e):
            if mask[p]:
                out_rows[w] = rows[p]
                out_weights[w] = weights[p]
                w += 1
        new_ptr[t + 1] = w
    return new_ptr, out_rows[:w].copy(), out_weights[:w].copy()


@numba.njit(cache=True, nogil=True)
def top_weights(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, cut: int):
    """Each row truncated to its `cut` largest weights (ties: lower term id), in term order.

    The clustering of `cluster_postings` runs on these: Seismic's observation is that a
    few coordinates carry most of a learned sparse vector's inner products.
    Returns indptr (n + 1,) int64, indices int32, values float32.
    """
    n = indptr.shape[0] - 1
    out_ptr = np.zeros(n + 1, np.int64)
    for r in range(n):
        out_ptr[r + 1] = out_ptr[r] + min(cut, indptr[r + 1] - indptr[r])
    out_idx = np.empty(out_ptr[n], np.int32)
    out_val = np.empty(out_ptr[n], np.float32)
    mask = np.empty(indices.shape[0], np.bool_)
    for r in range(n):
        s, e = indptr[r], indptr[r + 1]
        top_k_mask(values[s:e], cut, -np.inf, mask[s:e])
        w = out_ptr[r]
        for p in range(s, e):
            if mask[p]:
                out_idx[w] = indices[p]
                out_val[w] = values[p]
                w += 1
    return out_ptr, out_idx, out_val


@numba.njit(cache=True, nogil=True)
def n_clusters(length: int, centroid_fraction: float) -> int:
    if length == 0:
        return 0
    return min(length, max(1, int(centroid_fraction * length)))


@numba.njit(cache=True, nogil=True)
def assign_to_centroids(members: np.ndarray, centroids: np.ndarray, term: int, cut_indptr: np.ndarray,
                        cut_indices: np.ndarray, cut_values: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Index (c,) of the centroid of largest inner product for each member (L,) of one posting list.

    members: the list's rows; centroids: positions in members; inner products use the
    truncated vectors cut_* without `term` (shared by all members). A member sharing no
    coordinate with any centroid goes to centroid (i mod c). slot (V,) int32 scratch, all -1.
    """
    c = centroids.shape[0]
    # inverted index over the centroids: slot of a term -> (centroid, weight) entries
    n_entries = 0
    for j in range(c):
        r = members[centroids[j]]
        n_entries += cut_indptr[r + 1] - cut_indptr[r]
    slot_terms = np.empty(n_entries, np.int32)
    slot_ptr = np.zeros(n_entries + 1, np.int64)
    n_slots = 0
    for j in range(c):
        r = members[centroids[j]]
        for p in range(cut_indptr[r], cut_indptr[r + 1]):
            u = cut_indices[p]
            if u != term:
                if slot[u] < 0:
                    slot[u] = n_slots
                    slot_terms[n_slots] = u
                    n_slots += 1
                slot_ptr[slot[u] + 1] += 1
    for i in range(n_slots):
        slot_ptr[i + 1] += slot_ptr[i]
    fill = slot_ptr[:n_slots].copy()
    entry_centroid = np.empty(slot_ptr[n_slots], np.int32)
    entry_weight = np.empty(slot_ptr[n_slots], np.float32)
    for j in range(c):
        r = members[centroids[j]]
        for p in range(cut_indptr[r], cut_indptr[r + 1]):
            u = cut_indices[p]
            if u != term:
                q = fill[slot[u]]
                entry_centroid[q] = j
                entry_weight[q] = cut_values[p]
                fill[slot[u]] = q + 1
    scores = np.zeros(c, np.float32)
    seen = np.full(c, -1, np.int64)  # seen[j] == i: centroid j is in touched for member i
    touched = np.empty(c, np.int32)
    assign = np.empty(members.shape[0], np.int32)
    for i in range(members.shape[0]):
        r = members[i]
        n_touched = 0
        for p in range(cut_indptr[r], cut_indptr[r + 1]):
            u = cut_indices[p]
            if u == term or slot[u] < 0:
                continue
            w = cut_values[p]
            for q in range(slot_ptr[slot[u]], slot_ptr[slot[u] + 1]):
                j = entry_centroid[q]
                if seen[j] != i:
                    seen[j] = i
                    touched[n_touched] = j
                    n_touched += 1
                scores[j] += w * entry_weight[q]
        best = i % c
        best_score = np.float32(0.0)
        for m in range(n_touched):
            j = touched[m]
            if scores[j] > best_score or (scores[j] == best_score and j < best):
                best, best_score = j, scores[j]
            scores[j] = 0.0
        assign[i] = best
    for i in range(n_slots):
        slot[slot_terms[i]] = -1
    return assign


@numba.njit(cache=True, nogil=True)
def cluster_postings(term_ptr: np.ndarray, rows: np.ndarray, cut_indptr: np.ndarray, cut_indices: np.ndarray,
                     cut_values: np.ndarray, centroid_fraction: float, seed: int, first_term: int, vocab_size: int):
    """Split every posting list into blocks of documents close in inner product.

    For a list of L documents, c = max(1, centroid_fraction * L) documents drawn at random
    (seeded per term) are the centroids; every document joins the centroid with which its
    truncated vector (`top_weights`) has the largest inner product (`assign_to_centroids`,
    through a small inverted index over the centroids). The list's own term is left out:
    every member shares it, so it says nothing about which members are alike.
    Each non-empty cluster becomes a block.

    term_ptr (T + 1,) int64, rows (P,) int32: the pruned lists of terms first_term .. first_term + T - 1
    (a slice of the vocabulary, so that slices can be clustered in parallel); cut_*: `top_weights`.
    Returns term_blocks (T + 1,) int64, block_ptr (B + 1,) int64, postings (P,) int32.
    """
    n_terms = term_ptr.shape[0] - 1
    max_blocks = 0
    for t in range(n_terms):
        max_blocks += n_clusters(term_ptr[t + 1] - term_ptr[t], centroid_fraction)
    term_blocks = np.zeros(n_terms + 1, np.int64)
    block_ptr = np.zeros(max_blocks + 1, np.int64)
    postings = np.empty(rows.shape[0], np.int32)
    slot = np.full(vocab_size, -1, np.int32)
    n_out = 0
    for t in range(n_terms):
        s, e = term_ptr[t], term_ptr[t + 1]
        c = n_clusters(e - s, centroid_fraction)
        if c <= 1:
            postings[s:e] = rows[s:e]
            if c == 1:
                n_out += 1
                block_ptr[n_out] = e
            term_blocks[t + 1] = n_out
            continue
        term = first_term + t
        centroids = sample_positions(e - s, c, seed * 1_000_003 + term)
        assign = assign_to_centroids(rows[s:e], centroids, term, cut_indptr, cut_indices, cut_values, slot)
        # counting sort of the members by cluster
        sizes = np.zeros(c + 1, np.int64)
        for i in range(e - s):
            sizes[assign[i] + 1] += 1
        for j in range(c):
            sizes[j + 1] += sizes[j]
        fill = sizes[:c].copy()
        for i in range(e - s):
            postings[s + fill[assign[i]]] = rows[s + i]
            fill[assign[i]] += 1
        for j in range(c):
            if sizes[j + 1] > sizes[j]:
                n_out += 1
                block_ptr[n_out] = s + sizes[j + 1]
        term_blocks[t + 1] = n_out
    return term_blocks, block_ptr[:n_out + 1].copy(), postings


@numba.njit(cache=True, nogil=True)
def block_maximum(block_ptr: np.ndarray, postings: np.ndarray, fwd_indptr: np.ndarray, fwd_indices: np.ndarray,
                  fwd_values: np.ndarray, b: int, acc: np.ndarray, touched: np.ndarray) -> int:
    """Coordinate-wise maximum of block b's documents, scattered into acc (V,) (which must hold -1).

    Writes the touched terms into touched (V,) int32 and returns how many there are.
    """
    n_touched = 0
    for p in range(block_ptr[b], block_ptr[b + 1]):
        r = postings[p]
        for q in range(fwd_indptr[r], fwd_indptr[r + 1]):
            u = fwd_indices[q]
            current = acc[u]
            # branch-free: whether u is new is a coin flip the branch predictor would miss
            touched[n_touched] = u
            n_touched += current < 0.0
            acc[u] = max(current, fwd_values[q])
    return n_touched


@numba.njit(cache=True, nogil=True)
def summarise_blocks(block_ptr: np.ndarray, postings: np.ndarray, fwd_indptr: np.ndarray, fwd_indices: np.ndarray,
                     fwd_values: np.ndarray, n_terms: int, summary_energy: float):
    """One quantised summary vector per block.

    The summary of a block is the coordinate-wise maximum of its documents' (float16)
    weights, quantised to u8 codes with one scale per block (weight ~ code * scale, scale =
    max / 255, code = ceil(weight / scale): a coordinate never decodes below the maximum
    it summarises, and at most one scale above), then restricted to its largest codes
    holding `summary_energy` of the L1 mass (Seismic's alpha-mass pruning). The cut is
    made on the codes with a 256-bin histogram rather than a sort, so every coordinate
    tied with the last one kept is kept too.

    fwd_values (nnz,) float32: the forward weights (decoded from float16).
    Returns summary_ptr (B + 1,) int64, summary_terms (S,) int32 (in no particular order
    within a summary), summary_codes (S,) uint8, summary_scales (B,) float32.
    """
    n_blocks = block_ptr.shape[0] - 1
    summary_ptr = np.zeros(n_blocks + 1, np.int64)
    scales = np.zeros(n_blocks, np.float32)
    capacity = max(1024, 16 * n_blocks)
    terms = np.empty(capacity, np.int32)
    codes = np.empty(capacity, np.uint8)
    acc = np.full(n_terms, -1.0, np.float32)
    touched = np.empty(n_terms, np.int32)
    block_codes = np.empty(n_terms, np.int32)
    mass = np.zeros(256, np.int64)
    w = 0
    for b in range(n_blocks):
        n_touched = block_maximum(block_ptr, postings, fwd_indptr, fwd_indices, fwd_values, b, acc, touched)
        top = np.float32(0.0)
        for m in range(n_touched):
            top = max(top, acc[touched[m]])
        scales[b] = np.float32(top / 255.0)
        inverse = 255.0 / top if top > 0.0 else 0.0
        mass[:] = 0
        total = 0
        for m in range(n_touched):
            u = touched[m]
            v = acc[u]
            acc[u] = -1.0
            # ceil keeps the summary an upper bound; a positive weight never codes to 0
            code = max(min(255, int(np.ceil(v * inverse))), int(v > 0.0))
            block_codes[m] = code
            mass[code] += code
            total += code
        # smallest code threshold whose codes at or above it hold summary_energy of the mass
        threshold = 255
        kept_mass = mass[255]
        while threshold > 1 and kept_mass < summary_energy * total:
            threshold -= 1
            kept_mass += mass[threshold]
        if w + n_touched > capacity:
            capacity = max(2 * capacity, w + n_touched)
            grown_t = np.empty(capacity, np.int32)
            grown_c = np.empty(capacity, np.uint8)
            grown_t[:w] = terms[:w]
            grown_c[:w] = codes[:w]
            terms, codes = grown_t, grown_c
        for m in range(n_touched):
            terms[w] = touched[m]
            codes[w] = block_codes[m]
            w += block_codes[m] >= threshold  # branch-free compaction
        summary_ptr[b + 1] = w
    return summary_ptr, terms[:w].copy(), codes[:w].copy(), scales


@numba.njit(cache=True, nogil=True)
def transpose_summaries(term_blocks: np.ndarray, block_summary_ptr: np.ndarray, block_summary_terms: np.ndarray,
                        block_summary_codes: np.ndarray, key_bits: int):
    """Turn block-major summaries (`summarise_blocks`) into each list's coordinate-major layout.

    Returns term_summaries (V + 1,) int64, summary_terms (C,) int32, summary_counts (C,) int32,
    summary_blocks (S,) int32 (block index within its list), summary_codes (S,) uint8.
    key_bits: bits needed for a term id (for the radix sort).
    """
    n_terms = term_blocks.shape[0] - 1
    n_entries = block_summary_terms.shape[0]
    term_summaries = np.zeros(n_terms + 1, np.int64)
    summary_terms = np.empty(n_entries, np.int32)
    summary_counts = np.zeros(n_entries, np.int32)
    summary_blocks = np.empty(n_entries, np.int32)
    summary_codes = np.empty(n_entries, np.uint8)
    n_coords = 0
    for t in range(n_terms):
        first_block = term_blocks[t]
        s, e = block_summary_ptr[first_block], block_summary_ptr[term_blocks[t + 1]]
        local_block = np.empty(e - s, np.int32)
        for b in range(first_block, term_blocks[t + 1]):
            local_block[block_summary_ptr[b] - s:block_summary_ptr[b + 1] - s] = b - first_block
        order = radix_argsort(block_summary_terms[s:e].astype(np.int64), key_bits)  # stable: blocks stay in order
        previous = -1
        for m in range(e - s):
            p = s + order[m]
            u = block_summary_terms[p]
            if u != previous:
                summary_terms[n_coords] = u
                n_coords += 1
                previous = u
            summary_counts[n_coords - 1] += 1
            summary_blocks[s + m] = local_block[order[m]]
            summary_codes[s + m] = block_summary_codes[p]
        term_summaries[t + 1] = n_coords
    return term_summaries, summary_terms[:n_coords].copy(), summary_counts[:n_coords].copy(), summary_blocks, \
        summary_codes


# ---------------------------------------------------------------------------- driver
CHECKPOINT = 32  # coordinates between two stored entry offsets


def summary_checkpoints(counts: np.ndarray) -> np.ndarray:
    """Entry offsets (C // CHECKPOINT + 1,) int64 of coordinates 0, CHECKPOINT, 2 * CHECKPOINT, ..."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets[::CHECKPOINT].copy()


def narrow(values: np.ndarray, bound: int) -> np.ndarray:
    """Non-negative integers below `bound` as uint16 when it allows (summaries are the largest arrays)."""
    return values.astype(np.uint16 if bound <= (1 << 16) else np.int32, copy=False)


def pruning_threshold(weights: np.ndarray, budget: int) -> float:
    """The weight above which `budget` postings survive a global threshold (0 if all fit)."""
    if budget >= len(weights) or len(weights) == 0:
        return 0.0
    cut = len(weights) - budget
    return float(np.partition(weights, cut)[cut])


def build_lists(term_ptr: np.ndarray, rows: np.ndarray, cut: tuple[np.ndarray, np.ndarray, np.ndarray],
                indptr: np.ndarray, indices: np.ndarray, decoded: np.ndarray, vocab_size: int, params: BuildParams,
                max_blocks: int, first_term: int, end_term: int) -> tuple[np.ndarray, ...]:
    """Blocks and coordinate-major summaries of the lists of terms first_term .. end_term - 1.

    Returns term_blocks, block_ptr, postings, summary_scales, term_summaries, summary_terms,
    summary_counts, summary_blocks, summary_codes, all local to the slice (pointers start at
    0) and already narrowed (`narrow`, with max_blocks bounding any list's block count),
    so that the wide intermediate arrays of one slice are freed before the next is joined;
    `stitch_lists` joins slices.
    """
    s, e = term_ptr[first_term], term_ptr[end_term]
    local_ptr = term_ptr[first_term:end_term + 1] - s
    term_blocks, block_ptr, postings = cluster_postings(local_ptr, rows[s:e], *cut, params.centroid_fraction,
                                                       params.seed, first_term, vocab_size)
    block_summary_ptr, block_summary_terms, block_summary_codes, summary_scales = summarise_blocks(
        block_ptr, postings, indptr, indices, decoded, vocab_size, params.summary_energy)
    term_summaries, summary_terms, summary_counts, summary_blocks, summary_codes = transpose_summaries(
        term_blocks, block_summary_ptr, block_summary_terms, block_summary_codes, max(1, (vocab_size - 1).bit_length()))
    del block_summary_ptr, block_summary_terms, block_summary_codes
    return (term_blocks, block_ptr, postings, summary_scales, term_summaries, narrow(summary_terms, vocab_size),
            narrow(summary_counts, max_blocks + 1), narrow(summary_blocks, max_blocks), summary_codes)


def stitch_lists(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """Join `build_lists` results of consecutive term slices into whole-vocabulary arrays."""
    def chain(pointers: list[np.ndarray], sizes: list[int]) -> np.ndarray:
        bases = np.cumsum([0, *sizes[:-1]])
        return np.concatenate([[0], *(p[1:] + base for p, base in zip(pointers, bases, strict=True))])

    cols = list(zip(*parts, strict=True))
    term_blocks = chain(list(cols[0]), [len(b) - 1 for b in cols[1]])
    block_ptr = chain(list(cols[1]), [len(p) for p in cols[2]])
    term_summaries = chain(list(cols[4]), [len(t) for t in cols[5]])
    postings, summary_scales, summary_terms, summary_counts, summary_blocks, summary_codes = (
        np.concatenate(cols[i]) for i in (2, 3, 5, 6, 7, 8))
    return (term_blocks, block_ptr, postings, summary_scales, term_summaries, summary_terms, summary_counts,
            summary_blocks, summary_codes)


def build_seismic(doc_ids: np.ndarray, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray,
                  vocab_size: int, params: BuildParams, *, threads: int = 1) -> SeismicArrays:
    """Build the static index over n documents given in canonical CSR form.

    doc_ids (n,) int64 (any order: rows are stored sorted by id), indptr (n + 1,) int64,
    indices (nnz,) int32, values (nnz,) float32 or float16. `threads` > 1 builds slices of
    the vocabulary on a thread pool (the kernels release the GIL); the result does not
    depend on it.
    """
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    order = np.argsort(doc_ids, kind="stable")
    if np.any(order != np.arange(len(order))):
        from lamina.index.sparse.batch import SparseBatch

        sorted_batch = SparseBatch(indptr, indices, values).take(order)
        indptr, indices, values = sorted_batch.indptr, sorted_batch.indices, sorted_batch.values
        doc_ids = doc_ids[order]
    fwd_values = np.ascontiguousarray(values, dtype=np.float16)
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    if len(doc_ids) == 0:
        return SeismicArrays.empty(vocab_size)
    decoded = fwd_values.astype(np.float32)  # prune and cluster on the weights the forward index will score
    term_ptr, rows, weights = invert(indptr, indices, decoded, vocab_size)
    lengths = np.diff(term_ptr)
    if params.pruning == "global":
        # Seismic's default: one weight threshold over all postings, sized so that lists keep
        # n_postings entries on average, and no list more than max_fraction * n_postings
        budget = params.n_postings * max(1, int(np.count_nonzero(lengths)))
        min_weight = pruning_threshold(weights, budget)
        max_per_term = max(1, int(params.max_fraction * params.n_postings))
    else:
        min_weight, max_per_term = 0.0, params.n_postings
    if min_weight > 0.0 or int(lengths.max(initial=0)) > max_per_term:
        term_ptr, rows, weights = prune_postings(term_ptr, rows, weights, max_per_term, np.float32(min_weight))
    del weights  # blocking and summaries read the forward index
    cut = top_weights(indptr, indices, decoded, params.doc_cut)
    lengths = np.diff(term_ptr)
    max_blocks = int(np.minimum(lengths, np.maximum(1, (params.centroid_fraction * lengths).astype(np.int64))).max())
    # slices of about equal postings; several per thread so that a slow slice does not stall the pool
    n_slices = 1 if threads <= 1 else 4 * threads
    cuts = np.searchsorted(term_ptr, np.linspace(0, term_ptr[-1], n_slices + 1)[1:-1])
    bounds = np.unique(np.r_[0, np.clip(cuts, 0, vocab_size), vocab_size])
    slices = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))

    def work(bound: tuple[int, int]) -> tuple[np.ndarray, ...]:
        return build_lists(term_ptr, rows, cut, indptr, indices, decoded, vocab_size, params, max_blocks, *bound)

    if len(slices) == 1:
        parts = [work(slices[0])]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(work, slices))
    (term_blocks, block_ptr, postings, summary_scales, term_summaries, summary_terms, summary_counts, summary_blocks,
     summary_codes) = stitch_lists(parts)
    del parts
    return SeismicArrays(doc_ids, indptr, narrow(indices, vocab_size), fwd_values, term_blocks, block_ptr, postings,
                         term_summaries, summary_terms, summary_counts, summary_checkpoints(summary_counts),
                         summary_blocks, summary_codes, summary_scales)
