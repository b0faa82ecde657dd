"""Benchmarks: real data (from simsearch.datasets) with exact ground truth, side-by-side baselines."""
