"""What replicas cost on one machine (issue 18): ingest, search and memory of a collection with 1, 2 and
3 replicas per shard, side by side in one run of one `simsearch serve --placement ray` (private Ray).

    python scripts/replica_cost.py [--points 20000] [--shards 2] [--writers 4] [--clients 16]

Data: Fashion-MNIST (784-d, Debian's files): the first --points training images, the test images as
queries. For each setting, in turn: a collection is created and filled by --writers concurrent SDK
clients in batches of 500 (fsync durability: each batch acknowledged once durable on the write
quorum), its index built, then --clients concurrent clients send one query per call for --seconds,
then one client alone; and the server tree's resident memory grows by what the collection holds.
Each setting has a fresh server (and private Ray) of its own, started one after the other, in --rounds
passes (every other one in reverse order); the medians are reported.
On one machine a replica buys survival of a process, not more CPU: the figures show what the
redundancy costs, not what spreading reads over machines would gain. JSON: docs/benchmarks/replica-cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from simsearch import AsyncClient, Client
from simsearch.bench.serve_process import ServeProcess
from simsearch.bench.simsearch_system import wait_idle
from simsearch.datasets.fashion_mnist import fashion_mnist

SETTINGS = [("1 replica", 1, 0), ("2 replicas, quorum 2", 2, 0), ("2 replicas, quorum 1", 2, 1),
            ("3 replicas, quorum 2", 3, 0)]
BATCH = 500


def ingest(address: str, key: str, name: str, vectors: np.ndarray, writers: int) -> float:
    """Points per second with `writers` clients each sending every writers-th batch."""
    starts = list(range(0, len(vectors), BATCH))
    errors: list[str] = []

    def writer(w: int) -> None:
        with Client(address, api_key=key) as c:
            for s in starts[w::writers]:
                try:
                    c.upsert(name, np.arange(s, min(s + BATCH, len(vectors))), vectors[s:s + BATCH], progress=False)
                except Exception as e:  # noqa: BLE001 (reported below)
                    errors.append(repr(e)[:200])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} batches failed: {errors[:3]}")
    return len(vectors) / wall


def searches(address: str, key: str, name: str, queries: np.ndarray, clients: int, seconds: float) -> dict:
    async def one(c: AsyncClient, start: int, lat: list[float], stop: float) -> None:
        i = start
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await c.search(name, queries[i % len(queries)], 10, no_cache=True)
            lat.append(time.perf_counter() - t)
            i += clients

    async def run() -> dict:
        pool = [AsyncClient(address, api_key=key) for _ in range(clients)]
        for c in pool:
            await c.search(name, queries[0], 10, no_cache=True)
        lat: list[float] = []
        t0 = time.perf_counter()
        await asyncio.gather(*(one(c, i, lat, t0 + seconds) for i, c in enumerate(pool)))
        wall = time.perf_counter() - t0
        for c in pool:
            await c.close()
        ms = np.asarray(lat) * 1000
        return {"qps": len(lat) / wall, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the settings, every other one reversed")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/replica-cost.json"))
    args = parser.parse_args()
    ds = fashion_mnist()
    vectors, queries = ds.train[: args.points], ds.test[:2000]
    key = "bench-" + secrets.token_hex(8)
    rows = []
    order = [s for r in range(args.rounds) for s in (SETTINGS if r % 2 == 0 else SETTINGS[::-1])]
    for label, replicas, quorum in order:
        server = ServeProcess(Path(tempfile.mkdtemp(prefix="replica-cost-")) / "data", key, ["--placement", "ray"])
        server.start()
        try:
            with Client(server.address, api_key=key) as c:
                name = f"r{replicas}q{quorum}"
                c.create_collection(name, vectors.shape[1], shards=args.shards, replicas=replicas,
                                    write_quorum=quorum)
                c.count(name)  # every replica open (its host process started)
                wait_idle(server.pid)
                rss0 = server.rss()
                rate = ingest(server.address, key, name, vectors, args.writers)
                c.build_index(name)
                wait_idle(server.pid)
                grown = server.rss() - rss0
                many = searches(server.address, key, name, queries, args.clients, args.seconds)
                alone = searches(server.address, key, name, queries, 1, args.seconds / 2)
                states = {r["state"] for s in c.describe_collection(name).shard_info for r in s["replicas"]}
                row = {"setting": label, "replicas": replicas, "write_quorum": quorum or replicas // 2 + 1,
                       "ingest_points_per_s": rate, f"{args.clients}_clients": many, "1_client": alone,
                       "bytes_per_point": grown / len(vectors), "replica_states_after": sorted(states)}
                rows.append(row)
                print(f"{label}: ingest {rate:,.0f} points/s; {args.clients} clients {many['qps']:,.0f} QPS "
                      f"(p50 {many['p50_ms']:.2f} ms, p99 {many['p99_ms']:.2f} ms); 1 client p50 "
                      f"{alone['p50_ms']:.2f} ms; {row['bytes_per_point']:,.0f} bytes per point; replicas "
                      f"{sorted(states)}", flush=True)
        finally:
            server.stop()
        for _, text in server.lines:
            if "replica" in text and ("down" in text or "could not" in text):
                print("  server:", text[:300], flush=True)
    runs, rows = rows, []
    for label, replicas, quorum in SETTINGS:  # the median of the rounds, per setting
        mine = [r for r in runs if r["setting"] == label]
        med = lambda f: float(np.median([f(r) for r in mine]))  # noqa: E731
        rows.append({"setting": label, "replicas": replicas, "write_quorum": mine[0]["write_quorum"],
                     "ingest_points_per_s": med(lambda r: r["ingest_points_per_s"]),
                     "qps": med(lambda r: r[f"{args.clients}_clients"]["qps"]),
                     "p99_ms": med(lambda r: r[f"{args.clients}_clients"]["p99_ms"]),
                     "single_p50_ms": med(lambda r: r["1_client"]["p50_ms"]),
                     "bytes_per_point": med(lambda r: r["bytes_per_point"])})
    base = rows[0]
    for row in rows:
        row["ingest_vs_1_replica"] = row["ingest_points_per_s"] / base["ingest_points_per_s"]
        row["qps_vs_1_replica"] = row["qps"] / base["qps"]
        row["memory_vs_1_replica"] = row["bytes_per_point"] / base["bytes_per_point"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"points": args.points, "shards": args.shards, "writers": args.writers,
                                    "clients": args.clients, "dataset": "fashion-mnist-784", "rounds": args.rounds,
                                    "medians": rows, "runs": runs}, indent=2))
    for row in rows:
        print(f"{row['setting']:>22}: ingest {row['ingest_points_per_s']:,.0f}/s ({row['ingest_vs_1_replica']:.2f}x), "
              f"{args.clients}-client QPS {row['qps']:,.0f} ({row['qps_vs_1_replica']:.2f}x, p99 {row['p99_ms']:.1f} ms), "
              f"1-client p50 {row['single_p50_ms']:.2f} ms, memory {row['memory_vs_1_replica']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
