"""Benchmark harness: datasets, ground truth, sweeps, reports (`lamina bench ...`).

- `datasets`: vector specs (`synthetic:N:D[:NQ]`, `.npy`, `.fvecs`/`.bvecs`, `beir:DIR`) and BEIR text.
- `groundtruth`: exact top-k by FAISS brute force; recall@k with ann-benchmarks' distance tolerance.
- `harness`: the `Algorithm` protocol, `LaminaDense` and its `FaissPeer`s, grids, `run_sweep`.
- `report`: the one output contract of every subcommand (`make_report`), JSON, table, plot.
- `ann`: `run_ann`, the `lamina bench ann` entry point.
- `quality`: `evaluate_quality` / `quality_report` for anything with `search()`, on BEIR qrels (ranx).

Nothing is imported here, so `import lamina.bench` stays cheap for the CLI.
"""
