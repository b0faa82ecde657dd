"""`simsearch demo`: Fashion-MNIST through the whole stack on embedded defaults.

Starts a real server (shards in-process, in-process cache unless --redis-url), ingests the 60k
train images into a 4-shard l2 collection, searches the 10k test images and prints
recall@10 against exact search, ingest rate and latency figures.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from simsearch.datasets import fashion_mnist, ground_truth, recall_at
from simsearch.client import Client
from simsearch.router import EmbeddedServer, ServeConfig


@contextmanager
def _running(config: ServeConfig, *, save: bool) -> Iterator[EmbeddedServer]:
    """An embedded server, stopped on the way out; snapshots only when the data outlives the demo."""
    server = EmbeddedServer(config).start()
    try:
        yield server
    finally:
        server.stop(save=save)


def _pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def run_demo(*, shards: int = 4, queries: int = 10_000, single: int = 1000, data_dir: Path | None = None,
             redis_url: str | None = None, collection: str = "fashion-mnist") -> dict[str, float]:
    """Without a data_dir the demo works in a temporary directory, removed however it ends
    (finished, failed or interrupted); a given data_dir is kept, with a snapshot of the shards."""
    if data_dir is not None:
        return _demo(shards, queries, single, data_dir, redis_url, collection, keep=True)
    with tempfile.TemporaryDirectory(prefix="simsearch-demo-") as tmp:
        return _demo(shards, queries, single, Path(tmp), redis_url, collection, keep=False)


def _demo(shards: int, queries: int, single: int, data_dir: Path, redis_url: str | None, collection: str, *,
          keep: bool) -> dict[str, float]:
    ds = fashion_mnist()
    test = ds.test[:queries]
    key = "demo-" + secrets.token_hex(8)
    print(f"dataset {ds.name}: {len(ds.train)} x {ds.train.shape[1]} database, {len(test)} queries")
    config = ServeConfig(port=0, data_dir=data_dir, bootstrap_key=key, redis_url=redis_url)
    with _running(config, save=keep) as server, Client(server.address, api_key=key) as client:
        print(f"server on {server.address} (data {data_dir}, cache {'redis' if redis_url else 'in-process'})")
        if collection in client.list_collections():
            client.drop_collection(collection)
        client.create_collection(collection, ds.train.shape[1], metric="l2", shards=shards)

        t0 = time.perf_counter()
        client.upsert(collection, np.arange(len(ds.train)), ds.train, progress=True)
        t_ingest = time.perf_counter() - t0
        t0 = time.perf_counter()
        info = client.build_index(collection)
        t_build = time.perf_counter() - t0
        print(f"ingest {len(ds.train) / t_ingest:,.0f} vectors/s ({t_ingest:.1f}s, searchable on ack); "
              f"index build {t_build:.1f}s, state {info.index_state}, leaves/shard "
              f"{[s['num_leaves'] for s in info.shard_info]}")

        exact = client.search(collection, test, 10, exact=True, no_cache=True)
        t0 = time.perf_counter()
        ann = client.search(collection, test, 10, no_cache=True)
        t_batch = time.perf_counter() - t0
        recall_exact = recall_at(ann.ids, exact.ids, 10)
        truth = ground_truth(ds)[: len(test)].astype(str)
        recall_truth = recall_at(ann.ids, truth, 10)

        lat = []
        for q in test[:single]:
            t0 = time.perf_counter()
            client.search(collection, q, 10, no_cache=True)
            lat.append(time.perf_counter() - t0)
        hits, hit_server = [], []
        for _ in range(200):
            t0 = time.perf_counter()
            r = client.search(collection, test[0], 10)
            if r.cached:
                hits.append(time.perf_counter() - t0)
                hit_server.append(r.timings_ms["total"] / 1000)

    out = {
        "recall@10 vs exact search": recall_exact,
        "recall@10 vs float64 ground truth": recall_truth,
        "ingest vectors/s": len(ds.train) / t_ingest,
        "index build s": t_build,
        "batched QPS": len(test) / t_batch,
        "single-query p50 ms": _pct(lat, 50),
        "single-query p99 ms": _pct(lat, 99),
        "cache-hit p50 ms (end to end)": _pct(hits, 50),
        "cache-hit p50 ms (inside server)": _pct(hit_server, 50),
    }
    width = max(map(len, out))
    print()
    for name, value in out.items():
        print(f"  {name:<{width}}  {value:,.4f}" if value < 10 else f"  {name:<{width}}  {value:,.1f}")
    return out
