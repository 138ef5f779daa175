"""`lamina bench facet` on a tiny workload: both systems agree on every case, and the report's shape."""

import json

from lamina.bench.facet import SELECTIVITIES, run_facet, summary_lines
from lamina.bench.report import RESULT_KEYS


def test_both_systems_answer_every_case_alike(tmp_path):
    report = run_facet(3_000, 40, repeats=2, out_dir=tmp_path)
    rows = report["results"]
    timed = [r for r in rows if r["system"] != "lamina-after-write"]
    assert len(timed) == 2 * 2 * len(SELECTIVITIES) and all(r["exact"] for r in timed)
    assert {r["system"] for r in rows} == {"lamina-payload", "numpy-brute-force", "lamina-after-write"}
    assert all(set(RESULT_KEYS) <= set(r) for r in rows)
    smallest = [r["matching"] for r in timed if r["params"]["selectivity"] == min(SELECTIVITIES)]
    assert max(smallest) < 10  # 0.01% of 3,000
    assert json.loads((tmp_path / "facet-synthetic-3000-40.json").read_text())["benchmark"] == "facet"
    assert len(summary_lines(report)) == 2 + len(rows)
