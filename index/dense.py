"""Dense first-stage index over FAISS: exact (Flat), IVF-Flat and HNSW, inner product or L2.

- flat: `IndexIDMap2(IndexFlat)`; exact; deletes remove the rows.
- ivf: IVF-Flat, trained once `train_size` vectors exist (until then an exact flat buffer
  answers, so a small collection is exact, never a badly trained IVF); `nlist` 0 means
  4*sqrt(n) lists; an id hashtable (faiss's `DirectMap`) finds an id's list entry, so deletes
  remove entries without scanning the lists and `vectors_of` reads vectors by id.
- hnsw: `IndexIDMap2(IndexHNSWFlat)`; HNSW cannot unlink nodes, so deletes are tombstones
  excluded through an `IDSelector` at search time, and the graph is rebuilt from its own
  vectors when tombstones pass a quarter of it.

Every kind also keeps scan codes (`lamina.index.scan`, unless the config turns them off): PQ
codes by id, trained once `train_size` vectors exist, which the planner scans before it scores a
filter's ids exactly.

Scores are larger-is-better: the inner product, or minus the squared L2 distance.
Training k-means runs on the GPU when `faiss.get_num_gpus() > 0` (and the config allows it);
search stays on the CPU, where `IDSelector` filtering works for every index kind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.kmeans import gpu_count, train_kmeans  # noqa: F401 (moved: re-exported)
from lamina.index.scan import MIN_TRAIN, ScanCodes
from lamina.index.types import IndexConfig

_TOMBSTONE_REBUILD_FRACTION = 0.25


BITMAP_MIN_IDS = 4096  # from this many allowed ids on, a bitmap selector is cheaper to build than a hash set


def allow_list_selector(allowed: np.ndarray) -> faiss.IDSelector:
    """A selector admitting exactly the ids of `allowed` (int64, >= 0).

    A few ids go into a hash set (IDSelectorBatch); many go into a bitmap over [0, max id]
    (IDSelectorBitmap: one bit per id, built by numpy in one pass, looked up without hashing).
    """
    allowed = np.ascontiguousarray(allowed, dtype=np.int64)
    if len(allowed) < BITMAP_MIN_IDS or allowed.min() < 0:
        return faiss.IDSelectorBatch(allowed)
    bits = np.zeros(int(allowed.max()) + 1, dtype=bool)
    bits[allowed] = True
    bitmap = np.packbits(bits, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    selector.referenced_objects = [bitmap]  # the selector reads the array in place
    return selector


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def auto_nlist(n: int) -> int:
    """FAISS's rule of thumb: about 4*sqrt(n) lists, at least 39 training points per list."""
    return int(max(1, min(4 * math.sqrt(max(n, 1)), n // 39)))


class DenseIndex:
    """A FAISS index of one kind with int64 external ids, tombstones and a selector hook."""

    FILES = ("index.faiss", "tombstones.npy", "dense.json")

    def __init__(self, dim: int, metric: str = "ip", config: IndexConfig | None = None, *,
                 train_size: int = 10_000) -> None:
        self.dim = dim
        self.metric = metric
        self.config = config or IndexConfig()
        self.train_size = train_size
        self.codes: ScanCodes | None = None  # trained with the first train_size vectors
        self._set_index(self._empty_index())  # also resets the tombstones (sorted; HNSW only)

    # ------------------------------------------------------------------ construction
    def _flat(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlat(self.dim, faiss_metric(self.metric)))

    def _empty_index(self) -> faiss.Index:
        if self.config.kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss_metric(self.metric))
            hnsw.hnsw.efConstruction = self.config.ef_construction
            return faiss.IndexIDMap2(hnsw)
        return self._flat()  # flat, and the exact buffer of an untrained IVF

    @property
    def trained_ivf(self) -> bool:
        return self._ivf

    def _set_index(self, index: faiss.Index, tombstones: np.ndarray | None = None) -> None:
        """Swap the FAISS index; the flags and cached search objects derive from it."""
        self._index = index
        ivf = faiss.downcast_index(index)
        self._ivf = isinstance(ivf, faiss.IndexIVF)
        if self._ivf and ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # new, or written before IVFs kept one
        self._set_tombstones(np.empty(0, dtype=np.int64) if tombstones is None else tombstones)
        self._default_params: dict[tuple[str, int], faiss.SearchParameters] = {}

    def _set_tombstones(self, tombstones: np.ndarray) -> None:
        self._tombstones = np.ascontiguousarray(tombstones, dtype=np.int64)
        self._dead: faiss.IDSelector | None = None
        if len(self._tombstones):  # built once per delete, not once per query
            batch = faiss.IDSelectorBatch(self._tombstones)
            self._dead = faiss.IDSelectorNot(batch)
            self._dead.referenced_objects = [batch]

    def _train_ivf(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        nlist = self.config.nlist or auto_nlist(len(vectors))
        centroids = train_kmeans(vectors, nlist, self.metric, use_gpu=self.config.gpu)
        quantizer = faiss.IndexFlat(self.dim, faiss_metric(self.metric))
        quantizer.add(centroids)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, len(centroids), faiss_metric(self.metric))
        ivf.own_fields = True
        quantizer.this.disown()
        ivf.is_trained = True
        ivf.add_with_ids(vectors, ids)
        self._set_index(ivf)

    # ------------------------------------------------------------------ VectorIndex
    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self._tombstones)

    def add(self, ids: np.ndarray, vectors: np.ndarray, *, skip_held: bool = False, train: bool = True) -> None:
        """Add vectors (n, d) under ids (n,). With `skip_held` (a replay of the store's log), an id
        the index holds with the same vector is skipped, and one held with another vector is an
        InvalidArgument; without it the caller guarantees new ids (the write path). With `train`
        False, crossing `train_size` only sets `training_due` (a collection trains a new index in
        the background and swaps it in, `lamina.retrieval.maintenance`)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise InvalidArgument(f"vectors have shape {vectors.shape}, the index expects (n, {self.dim})")
        if len(ids) != len(vectors):
            raise InvalidArgument(f"{len(ids)} ids for {len(vectors)} vectors")
        if skip_held and len(ids):
            ids, vectors = self._without_held(ids, vectors)
        if not len(ids):
            return
        if self._ivf:
            # an id added twice would leave its first entry behind the id hashtable, out of reach
            # of deletes (which go through it): adding replaces
            self._remove(ids)
        self._index.add_with_ids(vectors, ids)
        if self.codes is not None:
            self.codes.add(ids, vectors)
        train_codes, train_ivf = self._due()
        if train and (train_codes or train_ivf):  # both learn from everything added so far: read it once
            all_ids, all_vectors = self._flat_contents(self._index)
            if train_codes:
                self.codes = ScanCodes(self.dim, self.metric)
                self.codes.train(all_vectors)
                self.codes.add(all_ids, all_vectors)
            if train_ivf:
                self._train_ivf(all_ids, all_vectors)

    def _due(self) -> tuple[bool, bool]:
        """(scan codes, IVF) that the vectors held are enough to train and are not trained yet."""
        ntotal = self._index.ntotal
        codes = (self.codes is None and self.config.scan_codes and not self._ivf
                 and ntotal >= max(self.train_size, MIN_TRAIN))
        return codes, self.config.kind == "ivf" and not self._ivf and ntotal >= self.train_size

    @property
    def training_due(self) -> bool:
        """Whether an `add(train=True)` would train now (scan codes or the IVF)."""
        return any(self._due())

    def _without_held(self, ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        held = np.isin(ids, self._ivf_ids() if self._ivf else self._ids())
        if len(self._tombstones):
            held &= ~np.isin(ids, self._tombstones)
        if not held.any():
            return ids, vectors
        stored = self.vectors_of(ids[held])
        same = np.zeros(int(held.sum()), dtype=bool) if stored is None else (stored == vectors[held]).all(axis=1)
        if not same.all():
            raise InvalidArgument(f"id {int(ids[held][~same][0])} is already in the index with another vector; "
                                  "ids are never reused")
        return ids[~held], vectors[~held]

    def delete(self, ids: np.ndarray) -> None:
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if not len(ids):
            return
        if self.config.kind == "hnsw":
            present = ids[np.isin(ids, self._ids())]
            self._set_tombstones(np.union1d(self._tombstones, present))
            if len(self._tombstones) > _TOMBSTONE_REBUILD_FRACTION * max(self._index.ntotal, 1):
                self.compact()
            return
        self._remove(ids)

    def _remove(self, ids: np.ndarray) -> None:
        """Remove `ids` (contiguous int64) from a flat or IVF index; absent ids are ignored."""
        if self._ivf:  # the id hashtable finds each entry; it accepts the ids as an array only
            self._index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(ids))

    def vectors_of(self, ids: np.ndarray) -> np.ndarray | None:
        """The indexed vectors (n, dim) float32 of `ids`, copied out of the FAISS structures (the
        flat storage, the HNSW graph's, or an IVF's lists through its id hashtable): exact brute
        force over a filter's ids reads them here instead of from the store. None when one of the
        ids is not in the index or is a tombstone, so that the caller can fall back."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return np.empty((0, self.dim), dtype=np.float32)
        if len(self._tombstones) and np.isin(ids, self._tombstones).any():
            return None
        try:
            return self._index.reconstruct_batch(ids)
        except RuntimeError:  # an id the index does not hold
            return None

    def compact(self) -> None:
        """Rebuild an HNSW graph without its tombstoned nodes (no-op for other kinds)."""
        if self.config.kind != "hnsw" or not len(self._tombstones):
            return
        ids = self._ids()
        vectors = self._index.index.reconstruct_n(0, self._index.ntotal)
        keep = ~np.isin(ids, self._tombstones)
        self._set_index(self._empty_index())
        self._index.add_with_ids(vectors[keep], ids[keep])

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.shape[1] != self.dim:
            raise InvalidArgument(f"query has dimension {queries.shape[1]}, the index expects {self.dim}")
        search_params = self._search_params(params or {}, self._selector(allowed), k, allowed)
        scores, ids = self._index.search(queries, k, params=search_params)
        if self.metric == "l2":
            np.negative(scores, out=scores)
        empty = ids < 0
        if empty.any():
            scores[empty] = -np.inf
        return scores, ids

    def _selector(self, allowed: np.ndarray | None) -> faiss.IDSelector | None:
        """The caller's allow-list and the tombstones as one selector (None: no restriction)."""
        if allowed is None:
            return self._dead
        sel = allow_list_selector(allowed)
        if self._dead is None:
            return sel
        both = faiss.IDSelectorAnd(sel, self._dead)
        both.referenced_objects = [sel, self._dead]  # SWIG selectors do not own their children
        return both

    def _search_params(self, params: Mapping[str, Any], selector: faiss.IDSelector | None, k: int,
                       allowed: np.ndarray | None) -> faiss.SearchParameters | None:
        unknown = set(params) - {"nprobe", "ef_search"}
        if unknown:
            raise InvalidArgument(f"unknown search parameter(s): {', '.join(sorted(unknown))}")
        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise InvalidArgument(f"search parameter {name} must be a positive integer, got {value!r}")
        if self._ivf:
            knob, value = "nprobe", int(params.get("nprobe", self.config.nprobe))
        elif self.config.kind == "hnsw":
            knob, value = "ef_search", int(params.get("ef_search", self.config.ef_search))
            if allowed is not None:
                # a filtered traversal meets an allowed node every ntotal/|allowed| steps:
                # widen the beam so about 2k of them are reached (the planner of the retrieval
                # layer sends very selective filters to brute force instead)
                wanted = 2 * k * self._index.ntotal / max(len(allowed), 1)
                value = int(min(max(value, wanted), max(self._index.ntotal, 1)))
        elif selector is None:
            return None
        else:
            knob, value = "", 0
        if selector is None and (knob, value) in self._default_params:
            return self._default_params[knob, value]  # SWIG objects cost more to make than to search
        sp = {"nprobe": faiss.SearchParametersIVF, "ef_search": faiss.SearchParametersHNSW}.get(
            knob, faiss.SearchParameters)()
        if knob == "nprobe":
            sp.nprobe = value
        elif knob == "ef_search":
            sp.efSearch = value
        if selector is None:
            self._default_params[knob, value] = sp
        else:
            sp.sel = selector
            sp.referenced_objects = [selector]
        return sp

    # ------------------------------------------------------------------ contents
    def _ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def _ivf_ids(self) -> np.ndarray:
        """Every id of a trained IVF, list by list (a replay check, not a query path)."""
        lists = faiss.extract_index_ivf(self._index).invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(lists.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    @staticmethod
    def _flat_contents(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        return ids, index.index.reconstruct_n(0, index.ntotal)

    def memory_bytes(self) -> int:
        """Serialized size of the index: the resident size of its FAISS structures."""
        codes = self.codes.memory_bytes() if self.codes is not None else 0
        return int(faiss.serialize_index(self._index).nbytes) + self._tombstones.nbytes + codes

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        faiss.write_index(self._index, str(directory / "index.faiss"))
        np.save(directory / "tombstones.npy", self._tombstones)
        if self.codes is not None:
            self.codes.save(directory)
        meta = {"dim": self.dim, "metric": self.metric, "config": self.config.to_dict(),
                "train_size": self.train_size, "ntotal": int(self._index.ntotal)}
        (directory / "dense.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path, dim: int, metric: str, config: IndexConfig,
             *, train_size: int = 10_000) -> DenseIndex:
        """Load a snapshot written by `save`; raise CorruptIndex if it does not match the config."""
        try:
            meta = json.loads((directory / "dense.json").read_text())
            index = faiss.read_index(str(directory / "index.faiss"))
            tombstones = np.load(directory / "tombstones.npy")
        except Exception as exc:  # faiss raises RuntimeError, numpy ValueError, ...
            raise CorruptIndex(f"dense index in {directory} is unreadable: {exc}") from None
        if meta["dim"] != dim or meta["metric"] != metric or meta["config"]["kind"] != config.kind:
            raise CorruptIndex(f"dense index in {directory} was built for {meta}, not dim={dim} {metric} {config.kind}")
        if index.ntotal != meta["ntotal"] or index.d != dim:
            raise CorruptIndex(f"dense index in {directory} holds {index.ntotal} vectors, manifest says {meta['ntotal']}")
        self = cls(dim, metric, config, train_size=train_size)
        self._set_index(index, tombstones)
        if (directory / "scan.json").exists():  # absent: disabled, too few vectors, or an older snapshot
            self.codes = ScanCodes.load(directory, dim, metric)
        return self
