"""Shards in Ray actors against shards in the server process, in one run on the same data (issue 18).

    python scripts/placement_compare.py [--dataset synthetic-50d] [--shards 4] [--queries 3000]

Builds a `simsearch serve` subprocess per placement (fresh data dir, the same collection), sweeps the
recall knob as `simsearch bench` does (batched QPS, one-query-per-call p50/p99), then at the cheapest
setting with recall@10 >= 0.95 runs 1 and 16 concurrent SDK clients sending one query per call, and
reads the memory per stored point: the server process tree's RSS growth from before the collection
existed (Ray's shard host process is in it), and from the empty collection being open (what the
points cost, without the processes' fixed cost). Writes docs/benchmarks/placement-<dataset>.json and prints the ratios ray / local.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from simsearch.bench.measure import first_at, measure
from simsearch.bench.run import DATASETS, dataset_info, machine
from simsearch.bench.simsearch_system import SimsearchServer
from simsearch.datasets import ground_truth


def run(placement: str, ds, truth, shards: int, clients: tuple[int, ...]) -> dict:
    system = SimsearchServer(shards=shards, placement=placement, batch=1000)
    try:
        measured = measure(system, ds, truth, k=10, single=1000)
        data_bytes = system.data_memory_bytes()
        point = first_at(measured["points"], 0.95) or measured["points"][-1]
        system.set_knob(point["knob"])
        conc = {}
        for c in clients:
            conc[c] = system.concurrent(ds.test[:3000], 10, c)
            print(f"  {placement}: {c} clients {conc[c]['qps']:,.0f} QPS p50 {conc[c]['p50_ms']:.2f} ms "
                  f"p99 {conc[c]['p99_ms']:.2f} ms", flush=True)
        return {"at_recall_0.95": {"knob": point["knob"], "recall": point["recall"],
                                   "batched_qps": point["batched_qps"], "single_p50_ms": point["single"]["p50_ms"],
                                   "single_p99_ms": point["single"]["p99_ms"]},
                "clients": {str(c): {k: v for k, v in r.items() if k != "cdf_ms"} for c, r in conc.items()},
                "bytes_per_point": measured["bytes_per_vector"],
                "data_bytes_per_point": data_bytes / len(ds.train),  # without the empty collection's processes
                "sweep": measured["points"]}
    finally:
        system.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="synthetic-50d")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--queries", type=int, default=3000)
    ap.add_argument("--out", default="docs/benchmarks")
    args = ap.parse_args()
    ds = DATASETS[args.dataset](args.queries)
    truth = ground_truth(ds)[:, :10]
    out = {"dataset": dataset_info(ds), "shards": args.shards, "machine": machine(),
           "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for placement in ("local", "ray"):
        print(f"{placement}:", flush=True)
        out[placement] = run(placement, ds, truth, args.shards, (1, 16))
    loc, ray = out["local"], out["ray"]
    out["ray_over_local"] = {
        "single_p50_ms_difference": ray["at_recall_0.95"]["single_p50_ms"] - loc["at_recall_0.95"]["single_p50_ms"],
        "single_p99_ratio": ray["at_recall_0.95"]["single_p99_ms"] / loc["at_recall_0.95"]["single_p99_ms"],
        "qps_1_client": ray["clients"]["1"]["qps"] / loc["clients"]["1"]["qps"],
        "qps_16_clients": ray["clients"]["16"]["qps"] / loc["clients"]["16"]["qps"],
        "batched_qps": ray["at_recall_0.95"]["batched_qps"] / loc["at_recall_0.95"]["batched_qps"],
        "bytes_per_point": ray["bytes_per_point"] / loc["bytes_per_point"],
        "data_bytes_per_point": ray["data_bytes_per_point"] / loc["data_bytes_per_point"],
    }
    path = Path(args.out) / f"placement-{ds.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out["ray_over_local"], indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
