"""What the live-recall monitor costs in search throughput (issue 20, item 1: "monitoring at 1 % sampling costs
<= 5 % of search throughput, same run").

    python scripts/monitoring_cost.py [--points 60000] [--rounds 3] [--seconds 10] [--budget 0.02]

One data directory (Fashion-MNIST, 784-d, 2 shards, index built), served by `simsearch serve` started again for
each round with `--recall-sample 0` (off) or `--recall-sample 0.01` (the default), alternating, so both see the same
machine; in each round 1 client and 8 concurrent clients search (k=10, one query per request, cache off) for
`--seconds`. Writes docs/benchmarks/monitoring-cost.json and prints the medians and the ratio, plus how many
searches the monitor re-ran and the live recall it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from simsearch.client import Client
from simsearch.datasets import fashion_mnist

KEY = "monitoring-cost-key-0123456789abcdef"
OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "monitoring-cost{}.json"


def serve(data: Path, sample: float, budget: float = 0.02) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMSEARCH_", "RAY_"))}
    proc = subprocess.Popen([sys.executable, "-m", "simsearch", "serve", "--port", str(port), "--data-dir", str(data),
                             "--bootstrap-key", KEY, "--durability", "none", "--recall-sample", str(sample),
                             "--recall-budget", str(budget)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "listening on" in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, f"127.0.0.1:{port}"
    raise SystemExit("simsearch serve did not start")


def qps(address: str, queries: np.ndarray, clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        rng = np.random.default_rng(i)
        with Client(address, api_key=KEY, timeout=30) as c:
            while time.monotonic() < stop:
                c.search("fm", queries[rng.integers(len(queries), size=1)], k=10, no_cache=True)
                counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=60000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--budget", type=float, default=0.02, help="--recall-budget of the monitored server")
    args = ap.parse_args()
    ds = fashion_mnist()
    x, q = ds.train[:args.points], ds.test
    rows: dict[str, dict[str, list[float]]] = {"off": {"1": [], "8": []}, "0.01": {"1": [], "8": []}}
    monitor: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc, address = serve(data, 0.0)
        with Client(address, api_key=KEY, timeout=600) as c:
            c.create_collection("fm", dim=x.shape[1], shards=2)
            c.upsert("fm", np.arange(len(x)), x, batch_size=5000)
            c.build_index("fm", wait=True)
        proc.terminate()
        proc.wait(120)
        for r in range(args.rounds):
            for name, sample in (("off", 0.0), ("0.01", 0.01)) if r % 2 == 0 else (("0.01", 0.01), ("off", 0.0)):
                proc, address = serve(data, sample, args.budget)
                try:
                    qps(address, q, 1, 2.0)  # warm-up
                    t0 = time.monotonic()
                    rows[name]["1"].append(qps(address, q, 1, args.seconds))
                    rows[name]["8"].append(qps(address, q, 8, args.seconds))
                    if sample:
                        with Client(address, api_key=KEY) as c:
                            lr = c.describe_collection("fm").live_recall
                        # the re-runs' share of the round's time: what they took from 2 cores, at most
                        lr["rerun_share"] = lr["rerun_seconds"] / (time.monotonic() - t0)
                        monitor.append(lr)
                finally:
                    proc.terminate()
                    proc.wait(120)
                print(f"round {r + 1} {name}: 1 client {rows[name]['1'][-1]:.0f} QPS, 8 clients "
                      f"{rows[name]['8'][-1]:.0f} QPS", flush=True)
    med = {n: {c: float(np.median(v)) for c, v in d.items()} for n, d in rows.items()}
    result = {"points": len(x), "dim": int(x.shape[1]), "rounds": args.rounds, "seconds": args.seconds,
              "recall_budget": args.budget,
              "qps": rows, "median": med, "ratio": {c: med["0.01"][c] / med["off"][c] for c in ("1", "8")},
              "monitor": monitor, "load_average": os.getloadavg()}
    out = Path(str(OUT).format("" if args.budget == 0.02 else f"-budget-{args.budget:g}"))
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print("\n| clients | QPS, monitor off | QPS, 1 % re-run exactly | ratio |")
    print("|---|---|---|---|")
    for c in ("1", "8"):
        print(f"| {c} | {med['off'][c]:.0f} | {med['0.01'][c]:.0f} | {result['ratio'][c]:.3f} |")
    last = monitor[-1] if monitor else {}
    print(f"monitor (last round): {last.get('sampled_requests')} requests re-run, {last.get('skipped')} skipped, "
          f"live recall {last.get('recall')}")
    shares = [m["rerun_share"] for m in monitor]
    if shares:
        print(f"exact re-runs took {min(shares):.2%}-{max(shares):.2%} of each monitored round's wall time "
              f"(of one core's worth; 2 cores here)")
        result["rerun_share"] = shares
        out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
