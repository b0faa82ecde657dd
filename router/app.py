"""Assemble a running server from a ServeConfig: Ray, catalog, tenant bootstrap, cache, engine, gRPC.

`serve()` runs it until SIGINT/SIGTERM; `EmbeddedServer` runs it on a background thread
(its own event loop) for the demo, the benchmarks and the tests.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import signal
import socket
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from simsearch.cluster import PLACEMENTS, start_ray
from simsearch.cluster.runtime import on_ray_start
from simsearch.router.cache import make_cache
from simsearch.router.tenancy import BootstrapMismatch
from simsearch.router.catalog import Catalog, CatalogError
from simsearch.router.dirlock import DirLock, DirLocked
from simsearch.router.drift_monitor import DriftSettings
from simsearch.router.recall_monitor import RecallSettings
from simsearch.router.engine import FACTORIES, CollectionDamaged, Engine
from simsearch.router.server import Server, TlsFiles, create_server
from simsearch.shard import memory

log = logging.getLogger(__name__)
REDIS_PING_TIMEOUT_S = 3.0
DURABILITY = ("fsync", "interval", "none")
DURABILITY_INTERVAL_MS = (1, 10_000)
MAX_LOG_MB = (1, 65_536)


class StartupError(Exception):
    """A fault that stops the server before it serves; the message names the problem and the fix,
    in one line (`simsearch serve` prints it as is, without a traceback)."""


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    data_dir: Path = Path("simsearch-data")
    redis_url: str | None = None
    ray_address: str | None = None
    ray_token_file: Path | None = None  # the cluster's Ray token when joining (cluster/runtime.py)
    bootstrap_key: str | None = None
    cache_min_hits: int = 2
    cache_window_s: float = 60.0
    cache_ttl_s: float = 300.0
    metrics_port: int = 0
    # Where shards live: "local" hosts them in the router process (no per-query actor hop),
    # "ray" in Ray actors. "auto" is local on one machine and ray when joining a cluster.
    placement: str = "auto"
    # When an acknowledged write is on disk: "fsync" before the reply (survives kill -9 and power
    # loss), "interval" fsynced every durability_interval_ms (a power loss loses up to that much),
    # "none" left to the OS (tests and benchmarks). A process crash loses nothing in any mode.
    durability: str = "fsync"
    durability_interval_ms: int = 100
    # Each shard's write-ahead log past this size forces a checkpoint (as do index builds and idle
    # time): bounds the log's disk use and the replay after a crash (Postgres' max_wal_size).
    max_log_mb: int = 128
    # A collection whose files cannot be loaded stops start-up (the message names it and the file);
    # with skip_damaged the server starts without it and reports it unavailable, with the reason.
    skip_damaged: bool = False
    # TLS: a PEM certificate chain and its key; with tls_client_ca, clients must present a certificate
    # that CA signed (mTLS). Without TLS on an address other than loopback, the start logs a warning.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # The Prometheus page's own address: loopback unless asked (it names tenants and collections).
    metrics_host: str = "127.0.0.1"
    # The read-only web dashboard (router/dashboard/): None = not served, 0 = any free port; behind the API
    # keys, on loopback unless asked, over TLS with the gRPC certificate when one is given.
    dashboard_port: int | None = None
    dashboard_host: str = "127.0.0.1"
    # How often each collection's recent queries and writes are compared with their reference samples
    # (router/drift_monitor.py).
    drift_interval_s: float = 30.0
    # The share of live searches re-run exactly to measure recall (router/recall_monitor.py); 0 = off.
    recall_sample: float = 0.01
    recall_cpu_budget: float = 0.02  # the most of one core the exact re-runs of one collection may take

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
        if self.durability not in DURABILITY:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY)}; got {self.durability!r}")
        low, high = DURABILITY_INTERVAL_MS
        if not low <= self.durability_interval_ms <= high:
            raise ValueError(f"durability_interval_ms must be in [{low}, {high}], got {self.durability_interval_ms}")
        low, high = MAX_LOG_MB
        if not low <= self.max_log_mb <= high:
            raise ValueError(f"max_log_mb must be in [{low}, {high}], got {self.max_log_mb}")
        if self.dashboard_port is not None and not 0 <= self.dashboard_port <= 65535:
            raise ValueError(f"dashboard_port must be None (off) or in [0, 65535], got {self.dashboard_port}")
        if not 0.0 <= self.recall_sample <= 1.0:
            raise ValueError(f"recall_sample must be in [0, 1], got {self.recall_sample}")
        if not 0.001 <= self.recall_cpu_budget <= 1.0:
            raise ValueError(f"recall_cpu_budget must be in [0.001, 1], got {self.recall_cpu_budget}")
        if not 0.1 <= self.drift_interval_s <= 86_400:
            raise ValueError(f"drift_interval_s must be in [0.1, 86400], got {self.drift_interval_s}")

    @property
    def durability_banner(self) -> str:
        if self.durability == "interval":
            return f"interval ({self.durability_interval_ms} ms loss window)"
        if self.durability == "none":
            return "NONE (acknowledged writes can be lost: tests and benchmarks only)"
        return self.durability


def _check_data_dir(path: Path) -> None:
    fix = "pass --data-dir a writable directory"
    if path.exists() and not path.is_dir():
        raise StartupError(f"data dir {path} is a file, not a directory; {fix}")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:  # key digests, the server secret, every tenant's data: the server's user only
            path.chmod(mode & 0o700)
            log.warning("data dir %s was readable by others (mode %o); set it to %o", path, mode, mode & 0o700)
    except OSError as e:
        raise StartupError(f"cannot create data dir {path}: {e.strerror or e}; {fix}") from e
    try:  # a real write: os.access says yes to root on a read-only file system
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise StartupError(f"data dir {path} is not writable: {e.strerror or e}; {fix}") from e


def _lock_data_dir(path: Path) -> DirLock:
    """The data dir's one owner (router/dirlock.py): a second server on it fails here."""
    try:
        return DirLock.acquire(path)
    except DirLocked as e:
        raise StartupError(f"data dir {path} is in use by another simsearch server ({e.owner}); stop that "
                           f"server or pass another --data-dir") from e
    except OSError as e:
        raise StartupError(f"cannot lock data dir {path} ({e.strerror or e}); pass --data-dir a writable "
                           f"directory") from e


def _check_port(host: str, port: int, flag: str) -> None:
    """Fail before anything starts when host:port cannot be bound. The probe socket sets SO_REUSEADDR
    (as gRPC and the metrics server do) but not SO_REUSEPORT, so it also collides with a server
    that shares its port through SO_REUSEPORT (gRPC's default)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise StartupError(f"--host {host} does not resolve ({e.strerror}); pass an address of this machine, "
                           f"e.g. --host 127.0.0.1 or --host 0.0.0.0") from e
    bound = 0  # port 0 binds too: it still tells a local address from a foreign one
    for family, kind, proto, _, sockaddr in addresses:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(sockaddr)
                bound += 1
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise StartupError(f"port {port} on {host} is in use ({flag}); stop what holds it or pick "
                                       f"another {flag} (0 = any free port)") from e
                if e.errno == errno.EACCES:
                    raise StartupError(f"no permission to listen on port {port} ({flag}): ports below 1024 need "
                                       f"root; pick another {flag}") from e
    if not bound:
        raise StartupError(f"cannot listen on {host}:{port}: not an address of this machine; pass --host "
                           f"127.0.0.1 or 0.0.0.0")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


async def _check_redis(url: str) -> None:
    """A malformed or unreachable --redis-url fails start-up within seconds (once serving, an
    outage only bypasses the cache)."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    try:
        client = aioredis.Redis.from_url(url, socket_timeout=REDIS_PING_TIMEOUT_S,
                                         socket_connect_timeout=REDIS_PING_TIMEOUT_S)
    except ValueError as e:
        raise StartupError(f"--redis-url {_redacted(url)!r} is not a Redis URL ({e}); use "
                           f"redis://HOST:PORT/DB, or leave it out for the in-process cache") from e
    try:
        await asyncio.wait_for(client.ping(), REDIS_PING_TIMEOUT_S + 1)
    except (RedisError, OSError, asyncio.TimeoutError) as e:
        reason = str(e) or type(e).__name__
        raise StartupError(f"cannot reach Redis at {_redacted(url)} ({reason}); start redis-server there, fix "
                           f"--redis-url, or leave it out for the in-process cache") from e
    finally:
        await client.aclose()


def _start_ray(address: str | None, token_file: Path | None) -> None:
    try:
        start_ray(address, token_file=token_file)
    except (ConnectionError, RuntimeError, TimeoutError) as e:  # the probe; ray.init: no cluster, a version mismatch
        raise StartupError(f"{e}; check --ray-address (a head node's host:6379, or ray://host:10001), or "
                           f"leave it out to use this machine only") from e


def _open_catalog(config: ServeConfig) -> tuple[Catalog, str | None]:
    """The data dir's catalog (created, or imported from catalog.json, on first start) and the default
    tenant; returns a generated key to print once (first start without a bootstrap key)."""
    try:
        catalog = Catalog(config.data_dir)
    except CatalogError as e:  # missing while collection data exists, or damaged: names the file and the fix
        raise StartupError(str(e)) from e
    except OSError as e:
        raise StartupError(f"cannot open the catalog in {config.data_dir} ({e.strerror or e}); pass --data-dir a "
                           f"writable directory") from e
    key = config.bootstrap_key or os.environ.get("SIMSEARCH_BOOTSTRAP_KEY") or None
    try:
        return catalog, catalog.bootstrap(key)
    except BootstrapMismatch as e:
        catalog.close()
        raise StartupError(str(e)) from e
    except sqlite3.Error as e:
        catalog.close()
        raise StartupError(f"cannot store the default tenant in {catalog.path} ({e}); check that its disk is "
                           f"writable and not full") from e


async def _abandon(server: Server) -> None:
    """Undo a half-built server: release its port and shards, write nothing."""
    await server.server.stop(None)
    await server.engine.close(save=False)


async def build(config: ServeConfig) -> tuple[Server, str | None]:
    """Start everything but the serving loop. Returns the server and a generated key (first start only).

    Faults a user can fix (data dir, its owner, ports, Redis, Ray address) raise StartupError, cheapest
    first, before anything is started where possible. The server holds the data dir's lock until it
    stops; a start that fails releases it."""
    memory.limit_arenas()  # before gRPC's threads make their own heaps (shard/memory.py)
    _check_data_dir(config.data_dir)
    lock = _lock_data_dir(config.data_dir)
    try:
        server, generated = await _build_locked(config)
    except BaseException:
        lock.release()
        raise
    server.on_stop.append(lock.release)
    return server, generated


def _tls(config: ServeConfig) -> TlsFiles | None:
    """The TLS files, read before anything starts (a missing or unreadable one is a start-up fault)."""
    if config.tls_cert is None and config.tls_key is None:
        if config.tls_client_ca is not None:
            raise StartupError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is TLS with client certificates)")
        if not _is_loopback(config.host):
            log.warning("listening on %s without TLS: API keys and data cross the network in plaintext; pass "
                        "--tls-cert and --tls-key", config.host)
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise StartupError("TLS needs both --tls-cert and --tls-key")
    try:
        return TlsFiles(config.tls_cert.read_bytes(), config.tls_key.read_bytes(),
                        config.tls_client_ca.read_bytes() if config.tls_client_ca is not None else None)
    except OSError as e:
        raise StartupError(f"cannot read {e.filename} ({e.strerror}); pass readable PEM files to --tls-cert, "
                           f"--tls-key and --tls-client-ca") from e


def _is_loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except (OSError, ValueError):
        return False


async def _build_locked(config: ServeConfig) -> tuple[Server, str | None]:
    tls = _tls(config)
    _check_port(config.host, config.port, "--port")
    if config.metrics_port:
        _check_port(config.metrics_host, config.metrics_port, "--metrics-port")
    if config.dashboard_port:
        _check_port(config.dashboard_host, config.dashboard_port, "--dashboard-port")
    if config.redis_url:
        await _check_redis(config.redis_url)
    if config.shard_placement == "ray" or config.ray_address:  # in-process shards need no Ray; encoder
        _start_ray(config.ray_address, config.ray_token_file)  # replicas start a local one on first use
    catalog, generated = _open_catalog(config)
    cache = make_cache(config.redis_url, min_hits=config.cache_min_hits, window_s=config.cache_window_s,
                       ttl_s=config.cache_ttl_s)
    engine = Engine(catalog, cache=cache, shard_factory=FACTORIES[config.shard_placement],
                    durability=config.durability, durability_interval_ms=config.durability_interval_ms,
                        checkpoint_log_bytes=config.max_log_mb << 20,
                    drift=DriftSettings(interval_s=config.drift_interval_s),
                    recall=RecallSettings(fraction=config.recall_sample, cpu_budget=config.recall_cpu_budget))
    try:
        await engine.open(skip_damaged=config.skip_damaged)
    except BaseException as e:
        await engine.close(save=False)  # the collections started so far: write nothing
        if isinstance(e, CollectionDamaged):
            raise StartupError(f"{e}. To serve the other collections meanwhile, start with --skip-damaged (this "
                               f"one is then listed as unavailable, and can be dropped)") from e
        raise
    try:
        server = create_server(engine, f"{config.host}:{config.port}", tls=tls)
    except (OSError, RuntimeError) as e:  # gRPC raises RuntimeError("Failed to bind to address ...")
        await engine.close(save=False)
        raise StartupError(f"cannot listen on {config.host}:{config.port} ({e}); pick another --port "
                           f"(0 = any free port) or --host") from e
    if config.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(config.metrics_port, addr=config.metrics_host)
        except OSError as e:
            await _abandon(server)
            raise StartupError(f"cannot serve metrics on {config.metrics_host}:{config.metrics_port} "
                               f"({e.strerror or e}); pick another --metrics-port") from e
    if config.dashboard_port is not None:
        await _start_dashboard(config, server)
    await server.start()
    return server, generated


async def _start_dashboard(config: ServeConfig, server: Server) -> None:
    """The web dashboard on the server's loop, sharing its engine (router/dashboard/)."""
    from simsearch.router.dashboard import DashboardServer, bind

    try:
        sock = bind(config.dashboard_host, config.dashboard_port or 0)
    except OSError as e:
        await _abandon(server)
        raise StartupError(f"cannot serve the dashboard on {config.dashboard_host}:{config.dashboard_port} "
                           f"({e.strerror or e}); pick another --dashboard-port (0 = any free port)") from e
    if config.tls_cert is None and not _is_loopback(config.dashboard_host):
        log.warning("dashboard on %s without TLS: API keys and session cookies cross the network in plaintext; "
                    "pass --tls-cert and --tls-key", config.dashboard_host)
    try:
        dashboard = DashboardServer(server.engine, sock, tls_cert=config.tls_cert, tls_key=config.tls_key)
        await dashboard.start()
    except BaseException:
        sock.close()
        await _abandon(server)
        raise
    server.before_close.append(dashboard.stop)
    server.dashboard_port = dashboard.port


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set `stop` (drain, then checkpoint), now and after Ray starts in this process:
    ray.init, which an encoder's first use may call in a worker thread long after start-up, replaces
    SIGTERM's handler (tests/test_startup.py kills a server that started Ray). Returns the undo."""
    def install() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)  # (re)sets the process's handler: signal.signal underneath

    def after_ray_start() -> None:
        try:
            loop.call_soon_threadsafe(install)  # signal handlers are set on the main thread, the loop's
        except RuntimeError:  # the loop has closed: the server is gone
            pass

    install()
    return on_ray_start(after_ray_start)


async def serve(config: ServeConfig) -> None:
    server, generated = await build(config)
    stop = asyncio.Event()
    # before the banner: a signal sent on seeing it stops cleanly
    forget_ray_hook = _stop_on_signals(asyncio.get_running_loop(), stop)
    try:
        await _run(config, server, generated, stop)
    finally:
        forget_ray_hook()


async def _run(config: ServeConfig, server: Server, generated: str | None, stop: asyncio.Event) -> None:
    if generated:
        print(f"created the default tenant; its API key (shown once): {generated}", flush=True)
    if server.dashboard_port:  # before the banner, which stays the last line of start-up
        scheme = "https" if config.tls_cert else "http"
        print(f"dashboard on {scheme}://{config.dashboard_host}:{server.dashboard_port}/", flush=True)
    print(f"simsearch listening on {config.host}:{server.port} (data: {config.data_dir}, "
          f"cache: {'redis ' + config.redis_url if config.redis_url else 'in-process'}, "
          f"ray: {config.ray_address or 'local'}, shards: {config.shard_placement}, "
          f"durability: {config.durability_banner})", flush=True)
    await stop.wait()
    print("shutting down: draining calls and snapshotting shards", flush=True)
    await server.stop(grace=5.0)


class EmbeddedServer:
    """A real server on a background thread: `with EmbeddedServer(cfg) as s: Client(s.address, s.api_key)`."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.api_key = config.bootstrap_key
        self.port = 0
        self.dashboard_port = 0  # with config.dashboard_port set: where the dashboard listens
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
        try:
            self._server, generated = asyncio.run_coroutine_threadsafe(build(self.config), self._loop).result()
        except BaseException:  # a StartupError: leave no loop thread behind
            self.stop()
            raise
        self.api_key = self.api_key or generated
        self.port = self._server.port
        self.dashboard_port = self._server.dashboard_port
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
