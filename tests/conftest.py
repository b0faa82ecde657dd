"""Real parts only: a local Ray for the session, redis-server processes on free ports,
real gRPC servers on port 0, real ScaNN inside real shard actors.

Every test is exactly one of `unit` (pure logic, real ScaNN or torch in-process: no Ray, no
servers, no subprocesses) or `integration` (real servers, Ray, Redis, subprocesses); see
`pytest_collection_modifyitems`. Ray starts only for tests that ask for `ray_cluster`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pytest
import redis

from simsearch.datasets import fashion_mnist
from simsearch.client import Client
from simsearch.cluster import start_ray, stop_ray
from simsearch.router import EmbeddedServer, ServeConfig

API_KEY = "test-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env() -> dict[str, str]:
    """This environment without the variables that would change what `simsearch serve` or the CLI does."""
    return {k: v for k, v in os.environ.items()
            if k not in ("SIMSEARCH_BOOTSTRAP_KEY", "RAY_ADDRESS", "SIMSEARCH_LOG_LEVEL", "SIMSEARCH_LOG_FORMAT",
                         "SIMSEARCH_API_KEY", "SIMSEARCH_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                         "RAY_AUTH_TOKEN_PATH")}  # the session's private Ray token is its own


@dataclass
class ServeRun:
    proc: subprocess.Popen
    lines: list[str]  # stdout up to and including the banner
    output: str = ""  # all of stdout (stderr too unless sent elsewhere), once the process has ended
    address: str = field(init=False)

    def __post_init__(self) -> None:
        self.address = self.lines[-1].split("listening on ")[1].split(" ")[0]

    @property
    def banner(self) -> str:
        return self.lines[-1]


@contextmanager
def serve_process(data_dir: Path, *args: str, port: int | None = None, key: str = API_KEY,
                  stderr: IO[str] | int = subprocess.STDOUT, env: dict[str, str] | None = None) -> Iterator[ServeRun]:
    """A real `simsearch serve` on data_dir and a free port (or `port`), up to its "listening on" banner;
    stopped with SIGTERM on the way out unless the test already ended it. The run's `output` is set then.
    env: variables added to `serve_env()`."""
    port = free_port() if port is None else port
    proc = subprocess.Popen([sys.executable, "-m", "simsearch", "serve", "--port", str(port), "--data-dir",
                             str(data_dir), "--bootstrap-key", key, *args], env={**serve_env(), **(env or {})},
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: list[str] = []
    run = None
    try:
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                break
        assert lines and "listening on" in lines[-1], "".join(lines)
        run = ServeRun(proc, lines)
        yield run
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        if run is not None:
            run.output = "".join(lines) + (out or "")


class RedisProcess:
    """A real redis-server on a free port, no persistence; kill() simulates an outage."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/setup.sh (apt-get install -y redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


# Using any of these makes a test an integration test.
INTEGRATION_FIXTURES = frozenset({"server", "client", "redis_proc", "ray_cluster"})
_RAY_BEFORE = pytest.StashKey[bool]()


def _ray_running() -> bool:
    ray = sys.modules.get("ray")  # imported by simsearch.cluster, but not started by importing it
    return ray is not None and ray.is_initialized()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    """Marks each test `integration` when it (or its module: `pytestmark`) is marked so or
    uses an integration fixture, directly or through another fixture; `unit` otherwise."""
    for item in items:
        uses = sorted(INTEGRATION_FIXTURES & set(item.fixturenames))
        integration = item.get_closest_marker("integration") is not None or bool(uses)
        if integration and item.get_closest_marker("unit") is not None:
            raise pytest.UsageError(f"{item.nodeid} is marked unit but is an integration test "
                                    f"(integration marker or fixtures {uses})")
        item.add_marker(pytest.mark.integration if integration else pytest.mark.unit)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    item.stash[_RAY_BEFORE] = _ray_running()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    """A unit test (or a fixture it uses) that starts Ray is an error: mark it integration
    and request `ray_cluster`. Checked around the fixtures' teardown, which must still run."""
    running_after_call = _ray_running()
    result = yield
    if item.get_closest_marker("unit") is not None and not item.stash.get(_RAY_BEFORE, True) and (
            running_after_call or _ray_running()):
        stop_ray()
        raise AssertionError(f"{item.nodeid} is a unit test but started Ray")
    return result


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One small local Ray for the session; tests that need Ray (Ray placement, encoder
    replicas, Ray Train, killing actors) request it, directly or through `server`."""
    start_ray(None, num_cpus=2, object_store_bytes=512 << 20)
    yield
    stop_ray()


@pytest.fixture(scope="session")
def redis_proc() -> Iterator[RedisProcess]:
    proc = RedisProcess()
    yield proc
    proc.kill()


@pytest.fixture(scope="module", params=["local", "ray"])
def server(request, tmp_path_factory, redis_proc) -> Iterator[EmbeddedServer]:
    """Every test on this fixture runs against both placements: shards in the router process
    and shards in real Ray actors (only that one starts Ray)."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    config = ServeConfig(port=0, data_dir=tmp_path_factory.mktemp("data"), bootstrap_key=API_KEY,
                         redis_url=redis_proc.url, cache_min_hits=2, placement=request.param)
    with EmbeddedServer(config) as s:
        yield s


@pytest.fixture(scope="module")
def client(server) -> Iterator[Client]:
    with Client(server.address, api_key=API_KEY) as c:
        yield c


@pytest.fixture(scope="session")
def fmnist():
    return fashion_mnist()


def start_server(data_dir: Path, redis_url: str | None = None, port: int = 0, **kw) -> EmbeddedServer:
    return EmbeddedServer(ServeConfig(port=port, data_dir=data_dir, bootstrap_key=API_KEY, redis_url=redis_url,
                                      **kw)).start()


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
