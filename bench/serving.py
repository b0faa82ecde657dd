"""Raw in-process ScaNN versus simsearch through the SDK, side by side in one run.

Same data (Fashion-MNIST, 60k x 784, l2), same index parameters: simsearch's shards use
about 100 points per leaf, probe 7% of leaves, asymmetric hashing at 2 dims/block and an
exact re-rank of k x oversample candidates; raw ScaNN gets one index with the same
points per leaf, the same fraction probed and ScaNN's own exact re-order of the same
number of candidates. Reports single-query p50/p99, batched QPS, recall@10 and the
cache-hit path, with the ratios between them. Absolute timings drift by up to +-30%
between runs on these machines; compare within one run.

    python -m simsearch.bench.serving [--queries 10000] [--single 2000] [--out bench-results]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np
import scann

from simsearch.bench.datasets import Dataset, fashion_mnist, ground_truth, recall_at
from simsearch.client import Client
from simsearch.router import EmbeddedServer, ServeConfig
from simsearch.shard import IndexParams


def _lat(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": len(ms)}


def raw_scann(ds: Dataset, queries: np.ndarray, truth: np.ndarray, shards: int, single: int, k: int = 10) -> dict:
    p = IndexParams()
    per_shard = len(ds.train) // shards
    leaves = p.leaves_for(per_shard) * shards  # the same points per leaf as the shards
    probe = max(1, math.ceil(leaves * 0.07))
    t0 = time.perf_counter()
    searcher = (scann.scann_ops_pybind.builder(ds.train, k, "squared_l2")
                .tree(num_leaves=leaves, num_leaves_to_search=probe, training_sample_size=len(ds.train))
                .score_ah(p.block_dims_for(ds.train.shape[1]), anisotropic_quantization_threshold=float("nan"))
                .reorder(k * p.oversample).build())
    build_s = time.perf_counter() - t0
    lat = []
    for q in queries[:single]:
        t = time.perf_counter()
        searcher.search(q, final_num_neighbors=k)
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    rows, _ = searcher.search_batched(queries, final_num_neighbors=k)
    batched_1t = len(queries) / (time.perf_counter() - t)
    t = time.perf_counter()
    searcher.search_batched_parallel(queries, final_num_neighbors=k)
    batched_par = len(queries) / (time.perf_counter() - t)
    return {"num_leaves": leaves, "leaves_to_search": probe, "build_s": build_s, "single": _lat(lat),
            "batched_qps_1thread": batched_1t, "batched_qps_parallel": batched_par,
            "recall@10": recall_at(rows.astype(str), truth, k)}


def simsearch_sdk(ds: Dataset, queries: np.ndarray, truth: np.ndarray, shards: int, single: int,
                  batch: int, k: int = 10, placement: str = "auto") -> dict:
    key = "bench-" + secrets.token_hex(8)
    config = ServeConfig(port=0, data_dir=Path(tempfile.mkdtemp(prefix="simsearch-bench-")), bootstrap_key=key,
                         placement=placement)
    with EmbeddedServer(config) as server, Client(server.address, api_key=key) as c:
        c.create_collection("fm", ds.train.shape[1], metric="l2", shards=shards)
        t0 = time.perf_counter()
        c.upsert("fm", np.arange(len(ds.train)), ds.train)
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        c.build_index("fm")
        build_s = time.perf_counter() - t0
        for q in queries[:50]:  # warm the channel and the actors
            c.search("fm", q, k, no_cache=True)
        lat, server_ms = [], []
        for q in queries[:single]:
            t = time.perf_counter()
            r = c.search("fm", q, k, no_cache=True)
            lat.append(time.perf_counter() - t)
            server_ms.append(r.timings_ms["total"] / 1000)
        t = time.perf_counter()
        found = [c.search("fm", queries[i : i + batch], k, no_cache=True).ids for i in range(0, len(queries), batch)]
        batched = len(queries) / (time.perf_counter() - t)
        hits, hits_server = [], []
        for _ in range(500):
            t = time.perf_counter()
            r = c.search("fm", queries[0], k)
            if r.cached:
                hits.append(time.perf_counter() - t)
                hits_server.append(r.timings_ms["total"] / 1000)
        return {"shards": shards, "ingest_vectors_per_s": len(ds.train) / ingest_s, "build_s": build_s,
                "single": _lat(lat), "single_inside_server": _lat(server_ms), "batched_qps": batched,
                "batch_size": batch, "recall@10": recall_at(np.concatenate(found), truth, k),
                "cache_hit": _lat(hits), "cache_hit_inside_server": _lat(hits_server)}


def report(raw: dict, ours: dict) -> str:
    rows = [
        ("recall@10 (vs float64 exact)", f"{raw['recall@10']:.4f}", f"{ours['recall@10']:.4f}", ""),
        ("single-query p50 (ms)", f"{raw['single']['p50_ms']:.3f}", f"{ours['single']['p50_ms']:.3f}",
         f"{ours['single']['p50_ms'] / raw['single']['p50_ms']:.1f}x"),
        ("single-query p99 (ms)", f"{raw['single']['p99_ms']:.3f}", f"{ours['single']['p99_ms']:.3f}",
         f"{ours['single']['p99_ms'] / raw['single']['p99_ms']:.1f}x"),
        ("batched QPS (raw: 2 threads)", f"{raw['batched_qps_parallel']:,.0f}", f"{ours['batched_qps']:,.0f}",
         f"{ours['batched_qps'] / raw['batched_qps_parallel']:.2f}x"),
        ("batched QPS (raw: 1 thread)", f"{raw['batched_qps_1thread']:,.0f}", "", 
         f"{ours['batched_qps'] / raw['batched_qps_1thread']:.2f}x"),
        ("index build (s)", f"{raw['build_s']:.1f}", f"{ours['build_s']:.1f}", ""),
    ]
    lines = ["| measure | raw ScaNN in-process | simsearch via SDK | simsearch / raw |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    miss, hit = ours["single"]["p50_ms"], ours["cache_hit"]["p50_ms"]
    lines += ["", "| cache path | p50 (ms) | p99 (ms) |", "|---|---|---|",
              f"| miss, end to end | {miss:.3f} | {ours['single']['p99_ms']:.3f} |",
              f"| miss, inside the server | {ours['single_inside_server']['p50_ms']:.3f} | {ours['single_inside_server']['p99_ms']:.3f} |",
              f"| hit, end to end | {hit:.3f} | {ours['cache_hit']['p99_ms']:.3f} |",
              f"| hit, inside the server | {ours['cache_hit_inside_server']['p50_ms']:.3f} | {ours['cache_hit_inside_server']['p99_ms']:.3f} |",
              "", f"Cache hit / miss p50 end to end: {hit / miss:.2f}. "
              f"Bulk ingest: {ours['ingest_vectors_per_s']:,.0f} vectors/s (searchable on acknowledgement)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--single", type=int, default=2000, help="queries timed one per call")
    ap.add_argument("--batch", type=int, default=1000, help="queries per batched request")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--placement", choices=("auto", "local", "ray"), default="auto")
    ap.add_argument("--out", default="bench-results")
    args = ap.parse_args(argv)
    ds = fashion_mnist()
    queries = ds.test[: args.queries]
    truth = ground_truth(ds)[: len(queries)].astype(str)
    raw = raw_scann(ds, queries, truth, args.shards, args.single)
    ours = simsearch_sdk(ds, queries, truth, args.shards, args.single, args.batch, placement=args.placement)
    table = report(raw, ours)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ours["placement"] = args.placement
    (out / "serving.json").write_text(json.dumps({"dataset": ds.name, "machine": platform.processor() or platform.machine(),
                                                  "raw_scann": raw, "simsearch": ours}, indent=2))
    (out / "serving.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
