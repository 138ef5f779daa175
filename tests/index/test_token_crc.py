"""Token rows are checked on every read (index/token_crc.py): a byte flipped in a saved segment
after the store opened (its SHA-256 checks passed) is never served; the read fails with
DamagedTokens (a DataLoss) naming the document, and the other documents still read exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lamina.index.errors import DataLoss
from lamina.index.multivector import TokenStore
from lamina.index.snapshot import MANIFEST
from lamina.index.token_crc import CRC_FILE, DamagedTokens

DIM = 8


def matrices(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, 12)), DIM)).astype(np.float32) for _ in range(n)]


def flip(root, victim_row: int, store: TokenStore) -> None:
    """Flip one bit of token row `victim_row` of the store's only segment file."""
    manifest = json.loads((root / MANIFEST).read_text())
    entry = manifest["segments"][0]
    path = root / entry["dir"] / ("codes.npy" if entry["encoded"] else "tokens.npy")
    data = bytearray(path.read_bytes())
    width = store.bytes_per_token
    at = len(data) - (entry["tokens"] - victim_row) * width + 1  # .npy data sits at the end of the file
    data[at] ^= 0x04
    with open(path, "r+b") as fh:  # in place: the open store's memory map sees it
        fh.write(bytes(data))


@pytest.mark.parametrize("codec", ["float16", "pq2x4"])
def test_a_flipped_token_byte_is_never_served(tmp_path, codec):
    ids = np.arange(40, dtype=np.int64) * 5
    docs = matrices(40)
    store = TokenStore.build(ids, docs, codec=codec)
    store.save(tmp_path)
    assert (tmp_path / json.loads((tmp_path / MANIFEST).read_text())["segments"][0]["dir"] / CRC_FILE).exists()
    store = TokenStore.load(tmp_path)  # every file passes its SHA-256 here
    want = store.get(ids)
    offsets = np.concatenate([[0], np.cumsum([len(m) for m in docs])])
    victim = 17
    flip(tmp_path, int(offsets[victim]) + 1 if len(docs[victim]) > 1 else int(offsets[victim]), store)
    with pytest.raises(DamagedTokens) as info:
        store.get_packed(ids)
    assert info.value.ids.tolist() == [int(ids[victim])] and isinstance(info.value, DataLoss)
    with pytest.raises(DamagedTokens):
        store.get(ids[victim: victim + 1])
    with pytest.raises(DamagedTokens):
        list(store.iter_blocks(max_tokens=16))
    others = np.delete(ids, victim)
    for got, expected in zip(store.get(others), want[:victim] + want[victim + 1:]):
        np.testing.assert_array_equal(got, expected)  # undamaged documents still read exactly
    with pytest.raises(DamagedTokens):  # a compaction does not copy the damage into a new segment
        store.compact()
