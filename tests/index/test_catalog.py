"""The catalog and high-water mark kept beside the store (`lamina.index.catalog`)."""

from __future__ import annotations

import json

import pytest

from lamina.index.catalog import CATALOG, HIGHWATER, Catalog, HighWater, check_store, witnesses
from lamina.index.errors import StoreCorrupted


def test_high_water_mark_round_trip_and_damage(tmp_path):
    mark = HighWater(tmp_path)
    mark.open(5)
    mark.note(9)
    mark.note(7)  # never backwards
    assert HighWater.read(tmp_path) == 9
    mark.close()
    raw = bytearray((tmp_path / HIGHWATER).read_bytes())
    raw[3] ^= 1
    (tmp_path / HIGHWATER).write_bytes(bytes(raw))
    assert HighWater.read(tmp_path) is None  # a damaged mark is ignored, not trusted
    HighWater(tmp_path).open(2)  # reopening replaces it with the store's number
    assert HighWater.read(tmp_path) == 2


def test_check_names_the_gap_and_the_witness(tmp_path):
    Catalog(40, ["a", "b"]).write(tmp_path)
    snap = tmp_path / "indexes" / "a"
    snap.mkdir(parents=True)
    (snap / "CURRENT").write_text(json.dumps({"dir": "snap-1", "seq": 55, "files": {}}))
    assert witnesses(tmp_path) == {CATALOG: 40, "index snapshot of 'a'": 55}
    check_store(tmp_path, 55, ["a", "b"])  # level with every witness: fine
    with pytest.raises(StoreCorrupted, match=r"sequence 30, but index snapshot of 'a' covers 55: 25 acknowledged"):
        check_store(tmp_path, 30, ["a", "b"])
    with pytest.raises(StoreCorrupted, match="lacks collection"):
        check_store(tmp_path, 60, ["a"])


def test_an_unreadable_catalog_falls_back_to_the_other_witnesses(tmp_path):
    (tmp_path / CATALOG).write_bytes(b"{not json")
    assert Catalog.read(tmp_path) is None
    check_store(tmp_path, 0, [])  # nothing else acknowledged anything
