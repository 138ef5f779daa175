"""Sorted-id set algebra against Python sets."""

import numpy as np
import pytest
from lamina.index import ids


def _sets(seed: int, n: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (np.unique(rng.integers(0, span, size=n)).astype(np.int64),
            np.unique(rng.integers(0, span, size=n // 2 + 1)).astype(np.int64))


@pytest.mark.parametrize("n, span", [(0, 10), (1, 5), (50, 60), (500, 10_000)])
def test_set_algebra_matches_python_sets(n, span):
    a, b = _sets(n, n, span)
    if n == 0:
        a = a[:0]
    sa, sb = set(a.tolist()), set(b.tolist())
    assert ids.intersect_sorted(a, b).tolist() == sorted(sa & sb)
    assert ids.difference_sorted(a, b).tolist() == sorted(sa - sb)
    assert ids.union_sorted([a, b, a[:3]]).tolist() == sorted(sa | sb)
    assert ids.sorted_member(b, a).tolist() == [x in sa for x in b.tolist()]
    assert [ids.in_sorted(a, x) for x in range(-1, span + 1)] == [x in sa for x in range(-1, span + 1)]


@pytest.mark.parametrize("n, span", [(10, 100), (5000, 8000), (5000, 100_000), (5000, 10**9)])
def test_unique_ids_every_path_matches_sorted_set(n, span):
    raw = np.random.default_rng(n + span).integers(7, 7 + span, size=n).astype(np.int64)
    assert ids.unique_ids(raw).tolist() == sorted(set(raw.tolist()))
    assert ids.sort_unique(raw).tolist() == sorted(set(raw.tolist()))
    assert ids.as_id_array(raw).tolist() == sorted(set(raw.tolist()))


def test_payload_keeps_its_old_names():
    from lamina.index import payload
    assert payload.intersect_sorted is ids.intersect_sorted and payload.sorted_member is ids.sorted_member
