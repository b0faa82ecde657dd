"""simsearch as users run it: `simsearch serve` in its own process, driven through the SDK
over gRPC on 127.0.0.1. Besides the common System surface (one query per call, batched
requests), it measures concurrent clients and the hot-query cache.

The knob is leaves_to_search per shard, as a fraction of each shard's leaves (the same
fractions raw ScaNN sweeps over its leaves).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from simsearch.datasets import Dataset
from simsearch.bench.measure import latency
from simsearch.bench.serve_process import ServeProcess
from simsearch.bench.systems import LEAF_FRACTIONS
from simsearch.client import AsyncClient, Client
from simsearch.shard import IndexParams


def wait_idle(pid: int, limit_s: float = 120.0) -> None:
    """Wait until a server process is idle (under 10% of a core) before anything is timed. Without it
    the first setting swept ran at about half the batched speed of the next (4,876 vs 9,852 QPS on
    Fashion-MNIST), which points at work still running after the build returns."""
    proc = psutil.Process(pid)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.cpu_percent(interval=0.5) > 10.0:
        pass


def ids_to_rows(ids: np.ndarray) -> np.ndarray:
    """SDK ids ("17", padded with "") -> int64 rows with -1 for padding."""
    flat = ids.ravel()
    out = np.full(flat.shape, -1, np.int64)
    have = flat != ""
    out[have] = flat[have].astype(np.int64)
    return out.reshape(ids.shape)


@dataclass
class SimsearchServer:
    """A `simsearch serve` subprocess with a fresh data directory, plus one SDK client."""

    shards: int = 1
    placement: str = "local"
    batch: int = 1000
    fractions: tuple[float, ...] = LEAF_FRACTIONS
    name: str = "simsearch (gRPC, SDK)"
    kind: str = "simsearch"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = {"shards": self.shards, "placement": self.placement, "batch": self.batch,
                       "oversample": IndexParams().oversample or "auto", "server": "own process",
                       "durability": "fsync"}
        self.ingest_s = self.index_s = 0.0

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-simsearch-"))
        self.key = "bench-" + secrets.token_hex(8)
        self.server = ServeProcess(self.dir / "data", self.key, ["--placement", self.placement])
        self.server.start()
        self.address = self.server.address
        self.client = Client(self.address, api_key=self.key)
        self.rss_before = self.server.rss()

    def build(self, ds: Dataset) -> None:
        self.start()
        self.dim = ds.train.shape[1]
        self.client.create_collection("bench", ds.train.shape[1], metric=ds.metric, shards=self.shards)
        self.client.count("bench")  # every shard open (with placement "ray": its host process started)
        self.rss_created = self.server.rss()
        t0 = time.perf_counter()
        self.client.upsert("bench", np.arange(len(ds.train)), ds.train, progress=False)
        self.ingest_s = time.perf_counter() - t0  # searchable once acknowledged
        t0 = time.perf_counter()
        info = self.client.build_index("bench")
        self.index_s = time.perf_counter() - t0
        self.leaves = max(s["num_leaves"] for s in info.shard_info)
        self.params["leaves_per_shard"] = self.leaves
        self.wait_idle()
        for q in ds.test[:50]:  # warm the channel
            self.client.search("bench", q, 10, no_cache=True)

    def wait_idle(self, limit_s: float = 120.0) -> None:
        wait_idle(self.server.pid, limit_s)

    def memory_bytes(self) -> int:
        return self.server.rss() - self.rss_before

    def data_memory_bytes(self) -> int:
        """The growth since the empty collection was open: what the points cost, without the fixed cost of
        the processes that hold them (Ray's shard host)."""
        return self.server.rss() - self.rss_created

    def knobs(self) -> list[dict[str, Any]]:
        return [{"leaves_to_search": max(1, math.ceil(self.leaves * f))} for f in self.fractions]

    def set_knob(self, knob: dict[str, Any]) -> None:
        self.probe = knob["leaves_to_search"]

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray:
        return np.concatenate([ids_to_rows(self.client.search("bench", queries[i:i + self.batch], k, no_cache=True,
                                                              leaves_to_search=self.probe).ids)
                               for i in range(0, len(queries), self.batch)])

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return ids_to_rows(self.client.search("bench", query, k, no_cache=True, leaves_to_search=self.probe).ids)[0]

    # ---- beyond the common surface ----------------------------------------------------------

    def concurrent(self, queries: np.ndarray, k: int, clients: int) -> dict[str, Any]:
        """`clients` SDK clients (each its own channel), each sending one query per call back to back over
        the same query list, in this process (the server is elsewhere). Returns QPS and latency."""

        async def one(client: AsyncClient, start: int, lat: list[float]) -> None:
            for i in range(start, len(queries), clients):
                t = time.perf_counter()
                await client.search("bench", queries[i], k, no_cache=True, leaves_to_search=self.probe)
                lat.append(time.perf_counter() - t)

        async def run() -> tuple[float, list[float]]:
            pool = [AsyncClient(self.address, api_key=self.key) for _ in range(clients)]
            for c in pool:  # connect before the clock starts
                await c.search("bench", queries[0], k, no_cache=True)
            lat: list[float] = []
            t0 = time.perf_counter()
            await asyncio.gather(*(one(c, i, lat) for i, c in enumerate(pool)))
            wall = time.perf_counter() - t0
            for c in pool:
                await c.close()
            return wall, lat

        wall, lat = asyncio.run(run())
        return {"clients": clients, "queries": len(lat), "qps": len(lat) / wall, **latency(lat)}

    def transports(self, queries: np.ndarray, k: int) -> dict[str, Any]:
        """One query per call, back to back, over unary Search and over SearchStream: the same
        server, setting and queries, so the difference is the call path alone."""
        out = {}
        for name, stream in (("unary", False), ("stream", True)):
            with Client(self.address, api_key=self.key, stream=stream) as c:
                for q in queries[:50]:  # connect and warm up before the clock starts
                    c.search("bench", q, k, no_cache=True, leaves_to_search=self.probe)
                lat = []
                for q in queries:
                    t = time.perf_counter()
                    c.search("bench", q, k, no_cache=True, leaves_to_search=self.probe)
                    lat.append(time.perf_counter() - t)
            out[name] = {"queries": len(lat), "qps": len(lat) / sum(lat), **latency(lat)}
        return out

    def cache(self, queries: np.ndarray, k: int, hot: int = 200, rounds: int = 3, seed: int = 0) -> dict[str, Any]:
        """Cache hit against miss, on the same queries and interleaved in time.

        The hot queries are sent twice untimed, which admits them. Then each round sends every
        hot query (a hit) followed by the same query with a fresh 1e-4-relative perturbation (a
        different cache key: a miss that looks the cache up and searches exactly as much).
        Interleaving matters on this VM: its speed drifts by tens of percent over minutes, and
        timing all misses before all hits put that drift into the ratio. Reports latency end
        to end and inside the server (its `total` stage)."""
        hot_q = queries[:hot]
        rng = np.random.default_rng(seed)
        scale = 1e-4 * float(np.abs(hot_q).mean())
        for _ in range(2):
            for q in hot_q:
                self.client.search("bench", q, k, leaves_to_search=self.probe)
        hit, hit_in, miss, miss_in = [], [], [], []
        for _ in range(rounds):
            for q in hot_q:
                for probe in (q, q + rng.standard_normal(q.shape).astype(q.dtype) * scale):
                    t = time.perf_counter()
                    r = self.client.search("bench", probe, k, leaves_to_search=self.probe)
                    dt = time.perf_counter() - t
                    (hit if r.cached else miss).append(dt)
                    (hit_in if r.cached else miss_in).append(r.timings_ms.get("total", float("nan")) / 1000)
        return {"hot_queries": hot, "rounds": rounds, "hit": latency(hit), "hit_inside_server": latency(hit_in),
                "miss": latency(miss), "miss_inside_server": latency(miss_in)}

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            try:
                self.server.stop(30)
            except RuntimeError:  # it was killed instead
                pass
            shutil.rmtree(self.dir, ignore_errors=True)
