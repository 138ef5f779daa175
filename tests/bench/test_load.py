"""`lamina bench load`'s arithmetic: the recovery after abandoned queries, the targets, the options."""

from __future__ import annotations

import click
import pytest

from lamina.bench.load import Call, _recovery, targets
from lamina.cli_bench_load import _ints, _mix


def _calls(spans):
    """Calls every 10 ms in each (start, end, latency_s) span."""
    out = []
    for start, end, seconds in spans:
        t = start
        while t < end:
            out.append(Call(t, seconds, "search-vectors", "OK"))
            t += 0.01
    return out


def test_recovery_is_the_end_of_the_last_slow_window_after_the_burst():
    calls = _calls([(0.5, 3.0, 0.010), (3.0, 3.6, 0.200), (3.6, 8.0, 0.011)])
    calls.append(Call(4.0, 0.5, "write", "UNAVAILABLE"))
    result = _recovery(calls, burst_at=3.0, total=8.0)
    assert result["steady_p99_ms"] == pytest.approx(10.0)
    assert result["recovery_s"] == pytest.approx(0.75)  # windows from 0.0 to 0.5 s hold the slow calls
    assert result["errors"] == {"UNAVAILABLE": 1}
    assert _recovery(_calls([(0.5, 8.0, 0.010)]), burst_at=3.0, total=8.0)["recovery_s"] == 0.0


def test_targets_judge_each_figure():
    report = {"levels": [{"clients": 8, "p99_ms": 10.0, "errors": {}},
                         {"clients": 32, "p99_ms": 45.0, "errors": {"RESOURCE_EXHAUSTED": 2}}],
              "abandoned": [{"recovery_s": 0.5, "heavy_query": {"k": 1000, "ef_search": 10_000}}],
              "rss": {"slope_mib_per_min": 1.0}}
    met = targets(report)
    assert met["errors_below_limit"] == {"value": 2, "met": False}
    assert met["p99_32_over_8"] == {"value": 4.5, "met": False}
    assert met["recovery_s_k1000_ef10000"]["met"] and met["rss_slope_mib_per_min"]["met"]


def test_options_parse():
    assert _ints("8,16,32") == [8, 16, 32]
    assert _mix("90:10") == pytest.approx(0.1)
    for bad in ("0,8", "x"):
        with pytest.raises(click.BadParameter):
            _ints(bad)
    with pytest.raises(click.BadParameter):
        _mix("90")
