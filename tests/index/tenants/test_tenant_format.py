"""The tenant index's files: a round trip keeps every array, and each kind of damage is CorruptIndex."""

import json

import numpy as np
import pytest
from lamina.index.errors import CorruptIndex
from lamina.index.tenants import TenantIndex, TenantIndexConfig
from lamina.index.tenants import format as tenant_format


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    index = TenantIndex(8, "l2", TenantIndexConfig(branching=4, leaf_size=16, shortlist_cap=8, train_size=100,
                                                   bloom_bits=256))
    index.add(np.arange(300), rng.normal(size=(300, 8)).astype(np.float32), [f"t{i % 5}" for i in range(300)])
    index.grant(3, "t1")
    index.save(tmp_path)
    return index, tmp_path


def test_round_trip_keeps_the_arrays_and_the_answers(saved):
    index, path = saved
    meta, arrays = tenant_format.read(path)
    assert set(arrays) == set(tenant_format.ARRAYS) and meta["version"] == tenant_format.FORMAT_VERSION
    loaded = TenantIndex.load(path)
    loaded.verify()
    query = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    for tenant in ("t0", "t1"):
        np.testing.assert_array_equal(loaded.search(query, 10, tenant)[1], index.search(query, 10, tenant)[1])
    assert loaded.tenant_ids("t1").tolist() == index.tenant_ids("t1").tolist()


@pytest.mark.parametrize("damage", ["version", "manifest", "missing", "shape", "not json"])
def test_damage_is_corrupt_index(saved, damage):
    _, path = saved
    meta = json.loads((path / "tenants.json").read_text())
    if damage == "version":
        (path / "tenants.json").write_text(json.dumps({**meta, "version": 99}))
    elif damage == "manifest":
        (path / "tenants.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "n"}))
    elif damage == "missing":
        (path / "tenants_bloom.npy").unlink()
    elif damage == "shape":
        np.save(path / "tenants_sl_slots.npy", np.zeros(2, dtype=np.int32))
    else:
        (path / "tenants.json").write_text("[1, 2")
    with pytest.raises(CorruptIndex):
        TenantIndex.load(path)
