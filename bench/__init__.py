"""Benchmark harness: datasets, ground truth, sweeps, reports (`lamina bench ...`)."""
