"""One system, one dataset: build it, then sweep its recall knob and time each setting the
same way for every system (batched throughput over all queries, then a one-query-per-call
loop for latency), so the curves in one run compare.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Callable

import numpy as np
import psutil

from simsearch.datasets import Dataset, recall_at
from simsearch.bench.systems import System

SATURATED = 0.9995  # stop sweeping a knob once recall reaches this: more effort only costs speed


def latency(samples: list[float]) -> dict[str, Any]:
    """p50/p99/mean and a 101-point CDF in ms (NaN when there are no samples)."""
    ms = np.asarray(samples or [np.nan]) * 1000
    return {"n": len(samples), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "cdf_ms": np.percentile(ms, np.arange(101)).round(4).tolist()}


def single_loop(system: System, queries: np.ndarray, k: int, max_queries: int, budget_s: float) -> list[float]:
    """One query per call, back to back: at most max_queries, or as many as fit in budget_s (at least 30)."""
    lat: list[float] = []
    start = time.perf_counter()
    for q in queries[:max_queries]:
        t = time.perf_counter()
        system.search_one(q, k)
        lat.append(time.perf_counter() - t)
        if len(lat) >= 30 and t - start > budget_s:
            break
    return lat


def measure(system: System, ds: Dataset, truth: np.ndarray, *, k: int = 10, single: int = 1000,
            single_budget_s: float = 10.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build, then every knob setting: recall@k and QPS over all queries in batches, p50/p99 one at a time."""
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    system.build(ds)
    build_s = time.perf_counter() - t0
    # services report their server's growth; in-process systems grow this process
    memory = system.memory_bytes() if hasattr(system, "memory_bytes") else psutil.Process().memory_info().rss - rss0
    searchable_s = getattr(system, "ingest_s", 0.0) or build_s
    log(f"{system.name}: built in {build_s:.1f} s, {memory / 2**20:.0f} MiB")
    points = []
    for knob in system.knobs():
        system.set_knob(knob)
        system.search_batch(ds.test[:min(100, len(ds.test))], k)  # warm caches and pools
        t = time.perf_counter()
        found = system.search_batch(ds.test, k)
        batched_s = time.perf_counter() - t
        r = recall_at(found, truth, k)
        lat = single_loop(system, ds.test, k, single, single_budget_s)
        point = {"knob": knob, "recall": r, "batched_qps": len(ds.test) / batched_s,
                 "single_qps": len(lat) / sum(lat), "single": latency(lat)}
        points.append(point)
        log(f"  {knob}: recall@{k} {r:.4f}  batched {point['batched_qps']:,.0f} QPS  "
            f"single p50 {point['single']['p50_ms']:.3f} ms p99 {point['single']['p99_ms']:.3f} ms")
        if r >= SATURATED:
            break
    return {"name": system.name, "kind": system.kind, "params": system.params, "build_s": build_s,
            "searchable_s": searchable_s, "ingest_rows_per_s": len(ds.train) / searchable_s,
            "memory_bytes": int(memory), "bytes_per_vector": memory / len(ds.train), "points": points}


def first_at(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The cheapest swept setting (knobs are ordered cheap to thorough) that reaches the target recall."""
    return next((p for p in points if p["recall"] >= target), None)


def best_at(points: list[dict[str, Any]], target: float, key: str = "batched_qps") -> dict[str, Any] | None:
    """The fastest point (by key) with recall >= target, as ann-benchmarks reads its curves."""
    ok = [p for p in points if p["recall"] >= target]
    return max(ok, key=lambda p: p[key]) if ok else None
