"""Benchmarks and datasets: real data, exact ground truth, side-by-side baselines."""
