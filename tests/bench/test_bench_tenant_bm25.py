"""`lamina bench tenants --bm25-docs`: the two systems run, and the leak shows in the baseline only."""

import numpy as np
import pytest

from lamina.bench.tenant_bm25 import bm25_lines, run_tenant_bm25, tenant_sizes

WORDS = "shock wave boundary layer heat flux plate nozzle vortex wake drag lift cone jet mach flow".split()


def test_tenant_sizes_are_zipfian_and_sum_to_n():
    sizes = tenant_sizes(1000, 10)
    assert sizes.sum() == 1000 and sizes.min() >= 1 and list(sizes) == sorted(sizes, reverse=True)


@pytest.mark.slow  # two collections, ~10 s on a shared 2-core machine
def test_the_baseline_leaks_and_per_tenant_statistics_do_not():
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 15)))) for _ in range(300)]
    report = run_tenant_bm25(300, 8, 20, texts=texts)
    ours, baseline = report["systems"]["tenant-stats"], report["systems"]["collection-stats"]
    assert ours["leak"]["max_relative_change"] == 0.0 and ours["leak"]["before"]
    assert baseline["leak"]["max_relative_change"] > 0.01
    assert ours["tenant_stats_bytes"] > 0 and report["tenant_stats_entries"] > 0
    assert all(row[f"{m}_p50_ms"] > 0 for row in (ours, baseline) for m in ("sparse", "hybrid"))
    assert len(bm25_lines(report)) == 3
