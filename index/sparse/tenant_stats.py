"""Per-tenant corpus statistics of a lexical (BM25) sparse field, so that a tenant's scores depend on
its own documents only (issue #23, "tenant-blind statistics").

For each tenant: its number of documents, their total length, and a document frequency per term,
kept as a sparse tenant x term count matrix: sorted int64 keys `tenant * vocab_size + term` with
their counts, plus a small sorted delta that absorbs new keys and is merged into the main arrays
once it outgrows an eighth of them (so a write costs O(delta) and never a copy of the whole matrix).
Per internal id it keeps the tenant and the length of the version counted, so that a removal
subtracts exactly what its addition added; the removed versions' terms come from the caller (the
sparse index's forward rows, which are the documents' distinct terms).

Pure numpy, no I/O apart from `save` / `load`. Writes must be serialised by the caller (the
collection's write lock); `df` must not run during a write (the collection's read lock), while
`corpus` and `average_lengths` may: the per-tenant arrays are replaced, never changed in place, and
a write changes only its own tenants' entries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lamina.index.errors import CorruptIndex, InvalidArgument
from lamina.index.sparse.batch import SparseBatch

FORMAT_VERSION = 1
FILES = ("tenant_stats.json", "keys.npy", "counts.npy", "n_docs.npy", "total_length.npy", "iids.npy",
         "iid_tenant.npy", "iid_length.npy")
_MIN_DELTA = 4096


def merge_counts(keys_a: np.ndarray, counts_a: np.ndarray, keys_b: np.ndarray,
                 counts_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sum of two (sorted unique keys, counts) maps as one, zero counts dropped."""
    keys = np.concatenate([keys_a, keys_b])
    counts = np.concatenate([counts_a, counts_b])
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=counts, minlength=len(unique)).astype(np.int64)
    keep = summed != 0
    return unique[keep], summed[keep]


def lookup_counts(keys: np.ndarray, counts: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """counts[keys == w] for each w of `wanted` (0 where absent), vectorised by binary search."""
    if not len(keys):
        return np.zeros(len(wanted), np.int64)
    pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[pos] == wanted, counts[pos], 0)


class TenantCorpusStats:
    """Documents, total length and document frequencies per tenant (see the module notes)."""

    def __init__(self, vocab_size: int) -> None:
        if vocab_size <= 0:
            raise InvalidArgument(f"vocab_size must be positive, got {vocab_size!r}")
        self.vocab_size = int(vocab_size)
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self.n_docs = np.zeros(0, np.int64)  # per tenant code
        self.total_length = np.zeros(0, np.int64)
        self._keys = np.zeros(0, np.int64)  # main: sorted unique tenant * V + term
        self._counts = np.zeros(0, np.int64)
        self._dkeys = np.zeros(0, np.int64)  # delta, the same layout
        self._dcounts = np.zeros(0, np.int64)
        self._iid_tenant = np.full(0, -1, np.int32)  # by iid: tenant code of the counted version, -1 none
        self._iid_length = np.zeros(0, np.int32)

    # ------------------------------------------------------------------ reads
    @property
    def tenants(self) -> list[str]:
        return list(self._names)

    def code(self, tenant: str) -> int:
        """The tenant's code, -1 when no document of it was ever counted."""
        return self._codes.get(tenant, -1)

    def corpus(self, tenant: str) -> tuple[int, int]:
        """(documents, total length) of the tenant's counted documents."""
        c = self.code(tenant)
        return (0, 0) if c < 0 else (int(self.n_docs[c]), int(self.total_length[c]))

    def df(self, tenant: str, terms: np.ndarray) -> np.ndarray:
        """Document frequencies (m,) int64 of `terms` (m,) among the tenant's documents."""
        terms = np.asarray(terms, dtype=np.int64)
        c = self.code(tenant)
        if c < 0:
            return np.zeros(len(terms), np.int64)
        wanted = c * self.vocab_size + terms
        return lookup_counts(self._keys, self._counts, wanted) + lookup_counts(self._dkeys, self._dcounts, wanted)

    def average_lengths(self, tenants: Sequence[str], lengths: np.ndarray) -> np.ndarray:
        """Per document of a batch about to be counted: the average length of its tenant's
        documents with the batch's counted in, (n,) float64 (what its weights are normalised by)."""
        lengths = np.asarray(lengths, dtype=np.float64)
        names, group = np.unique(np.asarray(list(tenants), dtype=object), return_inverse=True)
        base = np.array([self.corpus(str(t)) for t in names], dtype=np.float64).reshape(-1, 2)
        n = base[:, 0] + np.bincount(group, minlength=len(names))
        total = base[:, 1] + np.bincount(group, weights=lengths, minlength=len(names))
        return (total / np.maximum(n, 1))[group]

    def holds(self, iids: np.ndarray) -> np.ndarray:
        """Whether each iid's version is counted, (n,) bool."""
        iids = np.asarray(iids, dtype=np.int64)
        inside = iids < len(self._iid_tenant)
        out = np.zeros(len(iids), bool)
        out[inside] = self._iid_tenant[iids[inside]] >= 0
        return out

    def __len__(self) -> int:
        return int(self.n_docs.sum())

    def memory_bytes(self) -> int:
        return int(sum(a.nbytes for a in (self.n_docs, self.total_length, self._keys, self._counts, self._dkeys,
                                          self._dcounts, self._iid_tenant, self._iid_length))
                   + sum(len(n) + 50 for n in self._names))

    # ------------------------------------------------------------------ writes
    def add(self, iids: np.ndarray, tenants: Sequence[str], terms: SparseBatch, lengths: np.ndarray) -> None:
        """Count documents: iids (n,), their tenants, their distinct terms (n rows) and lengths (n,).
        Versions counted already are skipped (a replay may offer them again)."""
        iids = np.asarray(iids, dtype=np.int64).reshape(-1)
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if not (len(iids) == len(tenants) == len(terms) == len(lengths)):
            raise InvalidArgument(f"{len(iids)} iids, {len(tenants)} tenants, {len(terms)} term rows and "
                                  f"{len(lengths)} lengths: one each per document")
        if not len(iids):
            return
        new = ~self.holds(iids)
        if len(np.unique(iids)) != len(iids):
            raise InvalidArgument("duplicate iids in one add")
        rows = np.flatnonzero(new)
        if not len(rows):
            return
        codes = np.array([self._code_for(tenants[i]) for i in rows], dtype=np.int64)
        self._grow(int(iids.max()) + 1)
        self._iid_tenant[iids[rows]] = codes
        self._iid_length[iids[rows]] = lengths[rows]
        self._apply(codes, terms.take(rows), lengths[rows], 1)

    def remove(self, iids: np.ndarray, terms: SparseBatch) -> None:
        """Uncount versions: iids (n,) and their distinct terms (n rows); uncounted iids are ignored."""
        iids = np.asarray(iids, dtype=np.int64).reshape(-1)
        if len(iids) != len(terms):
            raise InvalidArgument(f"{len(iids)} iids for {len(terms)} term rows")
        rows = np.flatnonzero(self.holds(iids))
        if not len(rows):
            return
        held = iids[rows]
        codes = self._iid_tenant[held].astype(np.int64)
        lengths = self._iid_length[held].astype(np.int64)
        self._iid_tenant[held] = -1
        self._iid_length[held] = 0
        self._apply(codes, terms.take(rows), lengths, -1)

    def _code_for(self, tenant: str) -> int:
        if not isinstance(tenant, str):
            raise InvalidArgument(f"tenant must be a string, got {tenant!r}")
        code = self._codes.get(tenant)
        if code is None:  # the arrays first, the code last: a reader holding the code finds its entries
            code = len(self._names)
            self.n_docs = np.concatenate([self.n_docs, [0]])
            self.total_length = np.concatenate([self.total_length, [0]])
            self._names.append(tenant)
            self._codes[tenant] = code
        return code

    def _grow(self, size: int) -> None:
        if size <= len(self._iid_tenant):
            return
        size = max(size, 2 * len(self._iid_tenant), 1024)
        tenant = np.full(size, -1, np.int32)
        tenant[: len(self._iid_tenant)] = self._iid_tenant
        length = np.zeros(size, np.int32)
        length[: len(self._iid_length)] = self._iid_length
        self._iid_tenant, self._iid_length = tenant, length

    def _apply(self, codes: np.ndarray, terms: SparseBatch, lengths: np.ndarray, sign: int) -> None:
        """Add (sign 1) or subtract (-1) documents' counts: codes (n,), terms (n rows), lengths (n,)."""
        n = len(self._names)
        self.n_docs = self.n_docs + sign * np.bincount(codes, minlength=n)
        self.total_length = self.total_length + sign * np.bincount(codes, weights=lengths, minlength=n).astype(np.int64)
        keys = np.repeat(codes, terms.row_lengths()) * self.vocab_size + terms.indices.astype(np.int64)
        unique, counts = np.unique(keys, return_counts=True)
        counts = sign * counts.astype(np.int64)
        if len(self._keys):  # keys the main arrays hold are counted in place
            pos = np.minimum(np.searchsorted(self._keys, unique), len(self._keys) - 1)
            found = self._keys[pos] == unique
            self._counts[pos[found]] += counts[found]  # unique keys: no position repeats
            if sign < 0 and (self._counts[pos[found]] < 0).any():
                raise InvalidArgument("tenant corpus statistics would become negative: removed documents "
                                      "that were never counted")
            unique, counts = unique[~found], counts[~found]
        if len(unique):
            self._dkeys, self._dcounts = merge_counts(self._dkeys, self._dcounts, unique, counts)
        if len(self._dkeys) > max(_MIN_DELTA, len(self._keys) // 8):
            self._keys, self._counts = merge_counts(self._keys, self._counts, self._dkeys, self._dcounts)
            self._dkeys, self._dcounts = np.zeros(0, np.int64), np.zeros(0, np.int64)
        if (self.n_docs < 0).any() or (self.total_length < 0).any() or (self._dcounts < 0).any():
            raise InvalidArgument("tenant corpus statistics would become negative: removed documents "
                                  "that were never counted")

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        """Write `FILES` into `directory` (the caller publishes the snapshot)."""
        directory = Path(directory)
        keys, counts = merge_counts(self._keys, self._counts, self._dkeys, self._dcounts)
        held = np.flatnonzero(self._iid_tenant >= 0)
        for name, array in (("keys", keys), ("counts", counts), ("n_docs", self.n_docs),
                            ("total_length", self.total_length), ("iids", held.astype(np.int64)),
                            ("iid_tenant", self._iid_tenant[held]), ("iid_length", self._iid_length[held])):
            np.save(directory / f"{name}.npy", array)
        meta = {"format": FORMAT_VERSION, "vocab_size": self.vocab_size, "tenants": self._names}
        (directory / "tenant_stats.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> TenantCorpusStats:
        """Read what `save` wrote; CorruptIndex when a file is missing or the arrays disagree."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / "tenant_stats.json").read_text())
            arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False)
                      for name in ("keys", "counts", "n_docs", "total_length", "iids", "iid_tenant", "iid_length")}
            self = cls(int(meta["vocab_size"]))
            names = [str(t) for t in meta["tenants"]]
        except Exception as exc:  # OSError, ValueError, KeyError, InvalidArgument, ...
            raise CorruptIndex(f"tenant statistics in {directory} are unreadable: {exc}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise CorruptIndex(f"tenant statistics in {directory} have format {meta.get('format')!r}, "
                               f"this version reads {FORMAT_VERSION}")
        self._check(arrays, names, directory)
        self._names, self._codes = names, {t: i for i, t in enumerate(names)}
        self.n_docs, self.total_length = arrays["n_docs"].astype(np.int64), arrays["total_length"].astype(np.int64)
        self._keys, self._counts = arrays["keys"].astype(np.int64), arrays["counts"].astype(np.int64)
        iids = arrays["iids"].astype(np.int64)
        self._grow(int(iids.max()) + 1 if len(iids) else 0)
        self._iid_tenant[iids] = arrays["iid_tenant"]
        self._iid_length[iids] = arrays["iid_length"]
        return self

    def _check(self, arrays: dict[str, np.ndarray], names: list[str], directory: Path) -> None:
        n, keys, iids, codes = len(names), arrays["keys"], arrays["iids"], arrays["iid_tenant"]
        problems = []
        if len(arrays["n_docs"]) != n or len(arrays["total_length"]) != n or len(set(names)) != n:
            problems.append("per-tenant arrays do not match the tenant list")
        if len(keys) != len(arrays["counts"]) or (len(keys) > 1 and np.any(np.diff(keys) <= 0)) \
                or (len(keys) and (keys[0] < 0 or keys[-1] >= n * self.vocab_size)):
            problems.append("document frequency keys")
        if len(iids) != len(codes) or len(iids) != len(arrays["iid_length"]) \
                or (len(iids) and (iids.min() < 0 or codes.min() < 0 or codes.max() >= n)):
            problems.append("per-version arrays")
        elif not problems and not np.array_equal(np.bincount(codes, minlength=n), arrays["n_docs"]):
            problems.append("document counts disagree with the versions counted")
        if problems:
            raise CorruptIndex(f"tenant statistics in {directory} are inconsistent: {', '.join(problems)}")
