import pytest

from lamina.index.base import CheckedParams
from lamina.index.errors import InvalidArgument


def _counting_check():
    calls = []

    def check(params):
        calls.append(dict(params or {}))
        value = (params or {}).get("n", 1)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InvalidArgument(f"n must be a positive integer, got {value!r}")
        return value

    return check, calls


def test_each_distinct_parameter_set_is_checked_once():
    check, calls = _counting_check()
    checked = CheckedParams(check)
    for _ in range(3):
        assert checked({"n": 4}) == 4
        assert checked(None) == 1
        assert checked({}) == 1  # the same set as None
    assert calls == [{"n": 4}, {}]
    with pytest.raises(InvalidArgument):
        checked({"n": 4.0})  # equal to 4 but another type: checked on its own, and rejected
    with pytest.raises(InvalidArgument):
        checked({"n": 4.0})  # a rejected set is not remembered as valid
    assert len(calls) == 4


def test_unhashable_values_are_checked_every_time_and_the_memo_is_bounded():
    check, calls = _counting_check()
    checked = CheckedParams(check, limit=2)
    for _ in range(2):
        with pytest.raises(InvalidArgument):
            checked({"n": [1]})
    assert len(calls) == 2
    for n in (1, 2, 3, 3):
        checked({"n": n})
    assert len(calls) == 2 + 4  # 3 came after the memo was full: checked again


def test_every_backend_plays_its_role():
    import numpy as np
    from lamina.index.base import SparseVectorIndex, TenantVectorIndex, VectorIndex
    from lamina.index.dense import DenseIndex
    from lamina.index.sparse import SparseIndex
    from lamina.index.spann import SpannIndex
    from lamina.index.tenants import TenantIndex

    for backend in (DenseIndex, SpannIndex):
        assert isinstance(backend.__new__(backend), VectorIndex), backend
    assert isinstance(SparseIndex.__new__(SparseIndex), SparseVectorIndex)
    tenants = TenantIndex(4, "l2")
    assert isinstance(tenants, TenantVectorIndex)
    scores, ids = tenants.search(np.zeros((2, 4), np.float32), 3, "nobody")
    assert ids.shape == (2, 3) and (ids == -1).all() and np.isneginf(scores).all()
    assert tenants.tenant_ids("nobody").dtype == np.int64
