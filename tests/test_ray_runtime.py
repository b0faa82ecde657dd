"""Ray as users run it (issue 18): joining a cluster that `ray start` set up with token authentication,
a private local Ray that nothing else can use and that dies with the server, even after a kill -9.
Every cluster here is one the test started itself (tests/ray_nodes.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import re
import sys
import tempfile
import time

import numpy as np
import psutil
import pytest

from conftest import API_KEY, free_port, serve_env, serve_process
from ray_nodes import named_actors, ray_env, start_head, token_file
from simsearch import Client

pytestmark = pytest.mark.integration
DIM = 8


def _hosts(actors: list[str]) -> set[str]:
    """The shard host actors among named actors (cluster/shard_host.py: one per node and router)."""
    return {a for a in actors if a.startswith("shard-host-")}


def _use(address: str, collection: str) -> None:
    vectors = np.random.default_rng(0).standard_normal((200, DIM)).astype(np.float32)
    with Client(address, api_key=API_KEY) as c:
        c.create_collection(collection, DIM, shards=2)
        c.upsert(collection, np.arange(200), vectors, progress=False)
        assert c.search(collection, vectors[7], 1).ids[0] == "7"


def test_serve_joins_a_token_cluster_and_keeps_its_private_ray_otherwise(tmp_path):
    token = token_file(tmp_path)
    head = start_head(token)
    try:
        with serve_process(tmp_path / "joined", "--ray-address", head.address, "--ray-token-file", str(token)) as run:
            _use(run.address, "joined")
            assert len(_hosts(named_actors(head))) == 1  # the shards run on that cluster, in a host of its node

        # A wrong token: refused in seconds (Ray's connect timeout shortened for the test), saying why.
        wrong = tmp_path / "wrong"
        wrong.write_text("0" * 64)
        out = subprocess.run([sys.executable, "-m", "simsearch", "serve", "--port", str(free_port()), "--data-dir",
                              str(tmp_path / "refused"), "--bootstrap-key", API_KEY, "--ray-address", head.address,
                              "--ray-token-file", str(wrong)], env={**serve_env(), "RAY_py_gcs_connect_timeout_s": "5"},
                             capture_output=True, text=True, timeout=180)
        assert out.returncode != 0, out.stdout + out.stderr
        assert f"the cluster refused the token from {wrong}" in out.stderr, out.stderr[-3000:]
        assert "Traceback" not in out.stderr

        # Without --ray-address, a private Ray, even with $RAY_ADDRESS naming the running cluster and its token
        # at hand: nothing of it lands on that cluster.
        before = _hosts(named_actors(head))
        with serve_process(tmp_path / "private", "--placement", "ray",
                           env={"RAY_ADDRESS": head.address, **{k: v for k, v in ray_env(token).items()
                                                                 if k.startswith("RAY_AUTH")}}) as run:
            assert "ray: local" in run.banner
            _use(run.address, "private")
            assert _hosts(named_actors(head)) <= before
    finally:
        head.kill()


def _ray_tree(server: psutil.Process) -> list[psutil.Process]:
    return [p for p in server.children(recursive=True) if p.name() != "python" or "reaper" not in " ".join(p.cmdline())]


def test_the_private_ray_needs_its_own_token_and_goes_with_a_killed_server(tmp_path):
    with serve_process(tmp_path / "data", "--placement", "ray") as run:
        _use(run.address, "docs")
        server = psutil.Process(run.proc.pid)
        tree = _ray_tree(server)
        gcs = [p for p in tree if p.name() == "gcs_server"]
        assert len(gcs) == 1, [p.name() for p in tree]
        ports = {str(c.laddr.port) for c in gcs[0].net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
        assert len(ports) == 1, ports
        port = ports.pop()
        prefix = os.path.join(tempfile.gettempdir(), "simsearch-ray-")
        temp_dirs = set(re.findall(re.escape(prefix) + r"[^/\s]+", " ".join(gcs[0].cmdline())))

        # Another local user (or host) that reaches the port but lacks this server's token is refused.
        env = {**serve_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "1" * 64, "RAY_py_gcs_connect_timeout_s": "5"}
        probe = subprocess.run([sys.executable, "-c", "import ray; ray.init(address='127.0.0.1:" + port + "')"],
                               env=env, capture_output=True, text=True, timeout=120)
        assert probe.returncode != 0 and "InvalidAuthToken" in probe.stdout + probe.stderr, probe.stderr[-2000:]

        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
                                               or any(os.path.exists(d) for d in temp_dirs)):
            time.sleep(0.5)
        left = [f"{p.pid} {p.name()}" for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert left == [], left  # every Ray process of the killed server is gone
        assert temp_dirs and not any(os.path.exists(d) for d in temp_dirs)
