"""Assemble a running server from a ServeConfig: Ray, catalog, tenant bootstrap, cache, engine, gRPC.

`serve()` runs it until SIGINT/SIGTERM; `EmbeddedServer` runs it on a background thread
(its own event loop) for the demo, the benchmarks and the tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from simsearch.cluster import PLACEMENTS, start_ray
from simsearch.router.cache import make_cache
from simsearch.router.catalog import Catalog
from simsearch.router.engine import FACTORIES, Engine
from simsearch.router.server import Server, create_server

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    data_dir: Path = Path("simsearch-data")
    redis_url: str | None = None
    ray_address: str | None = None
    bootstrap_key: str | None = None
    cache_min_hits: int = 2
    cache_window_s: float = 60.0
    cache_ttl_s: float = 300.0
    metrics_port: int = 0
    # Where shards live: "local" hosts them in the router process (no per-query actor hop),
    # "ray" in Ray actors. "auto" is local on one machine and ray when joining a cluster.
    placement: str = "auto"

    @property
    def shard_placement(self) -> str:
        if self.placement == "auto":
            return "ray" if self.ray_address else "local"
        return self.placement

    def __post_init__(self) -> None:
        if self.placement not in ("auto", *PLACEMENTS):
            raise ValueError(f"placement must be one of auto, {', '.join(PLACEMENTS)}; got {self.placement!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.cache_min_hits < 1:
            raise ValueError(f"cache_min_hits must be >= 1, got {self.cache_min_hits}")


async def build(config: ServeConfig) -> tuple[Server, str | None]:
    """Start everything but the serving loop. Returns the server and a generated key (first start only)."""
    if config.shard_placement == "ray" or config.ray_address:  # in-process shards need no Ray; encoder
        start_ray(config.ray_address)                          # replicas start a local one on first use
    catalog = Catalog(config.data_dir)
    key = config.bootstrap_key or os.environ.get("SIMSEARCH_BOOTSTRAP_KEY") or None
    generated = catalog.ensure_default_tenant(key)
    cache = make_cache(config.redis_url, min_hits=config.cache_min_hits, window_s=config.cache_window_s,
                       ttl_s=config.cache_ttl_s)
    engine = Engine(catalog, cache=cache, shard_factory=FACTORIES[config.shard_placement])
    server = create_server(engine, f"{config.host}:{config.port}")
    await server.start()
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, addr=config.host)
    return server, generated


async def serve(config: ServeConfig) -> None:
    server, generated = await build(config)
    if generated:
        print(f"created the default tenant; its API key (shown once): {generated}", flush=True)
    print(f"simsearch listening on {config.host}:{server.port} (data: {config.data_dir}, "
          f"cache: {'redis ' + config.redis_url if config.redis_url else 'in-process'}, "
          f"ray: {config.ray_address or 'local'}, shards: {config.shard_placement})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("shutting down: draining calls and snapshotting shards", flush=True)
    await server.stop(grace=5.0)


class EmbeddedServer:
    """A real server on a background thread: `with EmbeddedServer(cfg) as s: Client(s.address, s.api_key)`."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.api_key = config.bootstrap_key
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="simsearch-server", daemon=True)
        self._server: Server | None = None

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def engine(self) -> Engine:
        assert self._server is not None
        return self._server.engine

    def start(self) -> "EmbeddedServer":
        self._thread.start()
        self._server, generated = asyncio.run_coroutine_threadsafe(build(self.config), self._loop).result()
        self.api_key = self.api_key or generated
        self.port = self._server.port
        return self

    def run(self, coro):
        """Run a coroutine on the server's loop (for tests that poke the engine directly)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self, save: bool = True) -> None:
        if self._server is not None:
            self.run(self._server.stop(grace=1.0, save=save))
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
