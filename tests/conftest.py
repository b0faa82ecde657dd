"""Real parts only: a local Ray for the session, redis-server processes on free ports,
real gRPC servers on port 0, real ScaNN inside real shard actors."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from simsearch.bench.datasets import fashion_mnist
from simsearch.client import Client
from simsearch.cluster import start_ray, stop_ray
from simsearch.router import EmbeddedServer, ServeConfig

API_KEY = "test-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session", autouse=True)
def ray_cluster() -> Iterator[None]:
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
    and shards in real Ray actors."""
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
