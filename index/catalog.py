"""What the data directory acknowledged, kept outside the store: the end-to-end check at open.

RocksDB recovers what its files still hold; it cannot know what they held before a byte flipped or
a file was cut short. So the data directory keeps two small records of its own, beside the store:

    <data_dir>/catalog.json   {"format", "seq", "collections"}: written atomically (temporary file,
                              fsync, rename, fsync of the directory) when a collection is created or
                              dropped and when the database closes
    <data_dir>/catalog.seq    16 bytes, the high-water mark: the sequence number of the last synced
                              write (u64 big-endian), its CRC32 and a magic; overwritten in place after
                              every `sync=True` write, fsynced at each index snapshot and at close

The high-water write is one `pwrite` of 16 bytes after the WAL's own fsync returned (no second
fsync on the write path): it reaches the page cache, which survives a crash of the process, so
damage to the store found after a SIGKILL is measured to the last acknowledged write. After a crash
of the machine it may fall back to its last fsync (the last snapshot or close), never ahead of the
store: it is written only after the store's WAL is durable, so it can never raise a false alarm.

`expected_seq` takes the highest of the catalog, the high-water mark and the index snapshot
manifests; a store whose sequence number is behind it is refused (`StoreCorrupted`), naming the gap.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from lamina.index.errors import StoreCorrupted
from lamina.index.snapshot import MANIFEST, write_atomic

log = logging.getLogger(__name__)

CATALOG = "catalog.json"
HIGHWATER = "catalog.seq"
FORMAT = 1
_MAGIC = b"LMHW"
_RECORD = struct.Struct(">QI4s")  # seq, crc32 of the seq bytes, magic


@dataclass
class Catalog:
    """The collections and the high-water sequence number the data directory last recorded."""

    seq: int = 0
    collections: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, data_dir: Path) -> Catalog | None:
        """The catalog of `data_dir`; None when it has none (a directory from before catalogs) or
        when the file is unreadable (logged: the store stays the source of truth, and the other
        witnesses, the high-water mark and the snapshot manifests, still check it)."""
        path = Path(data_dir) / CATALOG
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_bytes())
            return cls(int(raw["seq"]), sorted(str(c) for c in raw["collections"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("catalog %s is unreadable (%s): checking the store against the other records", path, exc)
            return None

    def write(self, data_dir: Path) -> None:
        body = {"format": FORMAT, "seq": int(self.seq), "collections": sorted(self.collections)}
        write_atomic(Path(data_dir) / CATALOG, json.dumps(body, indent=1).encode())


class HighWater:
    """`catalog.seq`: the last synced sequence number, overwritten in place (see the module doc)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / HIGHWATER
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._seq = 0

    @staticmethod
    def read(data_dir: Path) -> int | None:
        path = Path(data_dir) / HIGHWATER
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) != _RECORD.size:
            log.warning("high-water mark %s has %d bytes, not %d: ignored", path, len(data), _RECORD.size)
            return None
        seq, crc, magic = _RECORD.unpack(data)
        if magic != _MAGIC or crc != zlib.crc32(data[:8]):
            log.warning("high-water mark %s fails its checksum: ignored", path)
            return None
        return seq

    def open(self, seq: int) -> None:
        """Start recording from `seq` (the store's), replacing whatever the file said."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._seq = -1
        self.note(seq)
        self.sync()

    def note(self, seq: int) -> None:
        """Record `seq` (called after a synced write returned): one pwrite, no fsync."""
        with self._lock:
            if self._fd is None or seq <= self._seq:
                return
            self._seq = seq
            os.pwrite(self._fd, _RECORD.pack(seq, zlib.crc32(seq.to_bytes(8, "big")), _MAGIC), 0)

    def sync(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None


def snapshot_seqs(index_root: Path) -> dict[str, int]:
    """The sequence number each collection's current index snapshot covers (readable manifests only:
    a damaged manifest is the index's problem, rebuilt from the store)."""
    out: dict[str, int] = {}
    if not index_root.is_dir():
        return out
    for directory in sorted(index_root.iterdir()):
        try:
            out[directory.name] = int(json.loads((directory / MANIFEST).read_bytes())["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def witnesses(data_dir: Path) -> dict[str, int]:
    """Every record of an acknowledged sequence number kept outside the store, by what it is."""
    data_dir = Path(data_dir)
    out: dict[str, int] = {}
    catalog = Catalog.read(data_dir)
    if catalog is not None:
        out[CATALOG] = catalog.seq
    mark = HighWater.read(data_dir)
    if mark is not None:
        out[HIGHWATER] = mark
    for name, seq in snapshot_seqs(data_dir / "indexes").items():
        out[f"index snapshot of {name!r}"] = seq
    return out


def check_store(data_dir: Path, store_seq: int, store_collections: list[str],
                seen: dict[str, int] | None = None) -> None:
    """Refuse (`StoreCorrupted`) a store behind what the data directory acknowledged (`seen`, default
    `witnesses(data_dir)`), or one that lost a collection the catalog lists; return quietly otherwise."""
    data_dir = Path(data_dir)
    seen = witnesses(data_dir) if seen is None else seen
    remedy = (f"the store's files are damaged or were replaced. Run `lamina store check --data-dir {data_dir}` "
              f"to see the damage, then `lamina store repair --data-dir {data_dir}` to keep what survives "
              f"(it reports what was lost), or `lamina restore BACKUP {data_dir}` from a backup")
    if seen:
        what, expected = max(seen.items(), key=lambda kv: kv[1])
        if store_seq < expected:
            raise StoreCorrupted(f"store at {data_dir / 'store'} is at sequence {store_seq}, but {what} covers "
                                 f"{expected}: {expected - store_seq} acknowledged writes are missing; {remedy}")
    catalog = Catalog.read(data_dir)
    if catalog is not None:
        missing = sorted(set(catalog.collections) - set(store_collections))
        if missing:
            raise StoreCorrupted(f"store at {data_dir / 'store'} lacks collection(s) {', '.join(missing)} "
                                 f"that the catalog lists; {remedy}")
