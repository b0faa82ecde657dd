"""Real Ray nodes for tests, started with `ray start` as users do: each in a temporary directory of its own,
with token authentication (RAY_AUTH_MODE=token and a token file, as `ray start` sets it up), and taken
down by signalling its own processes (cluster/reaper.py's sweep), never with `ray stop`, which stops
every Ray on the machine, the test session's own included."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import free_port, serve_env
from simsearch.cluster.reaper import sweep

RAY = str(Path(sys.executable).with_name("ray"))


def token_file(directory: Path) -> Path:
    """A fresh Ray token in a 0600 file."""
    path = directory / "ray_token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


def ray_env(token: Path) -> dict[str, str]:
    return {**serve_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


@dataclass
class RayHead:
    temp_dir: Path  # short (/tmp/...): Ray's Unix socket paths live under it
    address: str  # the GCS, host:port
    token: Path

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Signal every process of this node (its GCS, raylet, agents and workers); their count."""
        n = sweep(str(self.temp_dir), sig=sig, grace_s=5.0)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return n


def start_head(token: Path, num_cpus: int = 1) -> RayHead:
    temp_dir = Path(tempfile.mkdtemp(prefix="ssr-"))
    port = free_port()
    out = subprocess.run([RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}",
                          f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats",
                          "--node-ip-address=127.0.0.1"],
                         env=ray_env(token), capture_output=True, text=True, timeout=180)
    head = RayHead(temp_dir, f"127.0.0.1:{port}", token)
    if out.returncode != 0:
        head.kill()
        raise RuntimeError(f"ray start --head failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return head


def start_worker(head: RayHead, num_cpus: int = 1) -> None:
    """A second Ray node on this machine, joined to `head` (it shares the head's temp dir; its raylet's
    socket is `raylet.1`)."""
    out = subprocess.run([RAY, "start", f"--address={head.address}", f"--num-cpus={num_cpus}",
                          "--disable-usage-stats", "--node-ip-address=127.0.0.1"],
                         env=ray_env(head.token), capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"ray start --address failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    deadline = time.monotonic() + 60
    while _driver(head, "NODES") < 2:  # registered with the GCS, so a router placing shards sees it
        assert time.monotonic() < deadline, "the second Ray node did not register within 60 s"
        time.sleep(0.5)
    # and able to start a worker with a shard host's runtime env: a host placed (soft affinity) on a node
    # not ready yet lands on another one
    out = subprocess.run([sys.executable, "-c", WARM, head.address], env=ray_env(head.token),
                         capture_output=True, text=True, timeout=180)
    assert "WARM ok" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


WARM = """
import sys, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address=sys.argv[1], log_to_driver=False)
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
@ray.remote(num_cpus=0)
def node():
    return ray.get_runtime_context().get_node_id()
got = ray.get([node.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False),
                            runtime_env={"env_vars": {"MALLOC_ARENA_MAX": "2"}}).remote() for n in nodes], timeout=120)
print("WARM ok" if got == nodes and len(nodes) == 2 else f"WARM elsewhere {got} {nodes}")
"""


def kill_second_node(head: RayHead) -> list[str]:
    """SIGKILL the second node's raylet and everything under it (its agents and workers: its shard host),
    as a lost machine would; the names of what was killed."""
    import psutil

    raylets = [p for p in psutil.process_iter(["name", "cmdline"]) if p.info["name"] == "raylet"
               and any("sockets/raylet.1" in a and str(head.temp_dir) in a for a in (p.info["cmdline"] or []))]
    assert len(raylets) == 1, [p.pid for p in raylets]
    victims = [raylets[0], *raylets[0].children(recursive=True)]
    names = [p.name() for p in victims]
    for p in victims:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return names


DRIVER = """
import json, sys, ray
ray.init(address=sys.argv[1], namespace="simsearch", include_dashboard=False, log_to_driver=False)
names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True))
print("ACTORS " + json.dumps(names))
hosts = {}
for n in names:
    if n.startswith("shard-host-"):
        try:
            hosts[n] = ray.get(ray.get_actor(n, namespace="simsearch").info.remote(), timeout=10)
        except Exception as e:  # a host that is dead or restarting
            hosts[n] = {"error": type(e).__name__, "node": None, "shards": []}
print("HOSTS " + json.dumps(hosts))
print("NODES " + json.dumps(sum(1 for n in ray.nodes() if n["Alive"])))
print("NODEIDS " + json.dumps({n["NodeID"]: n["RayletSocketName"] for n in ray.nodes() if n["Alive"]}))
"""


def _driver(head: RayHead, tag: str):
    out = subprocess.run([sys.executable, "-c", DRIVER, head.address], env=ray_env(head.token),
                         capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith(tag + " ")]
    assert lines, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(lines[-1][len(tag) + 1:])


def node_ids(head: RayHead) -> tuple[str, list[str]]:
    """(the head's node id, the other alive nodes' ids): the head's raylet socket is `raylet`, others' `raylet.N`."""
    nodes = _driver(head, "NODEIDS")
    first = [n for n, sock in nodes.items() if sock.endswith("/raylet")]
    return first[0], sorted(n for n in nodes if n not in first)


def named_actors(head: RayHead) -> list[str]:
    """The named actors on `head`'s cluster, as a driver holding the token sees them."""
    return _driver(head, "ACTORS")


def shard_hosts(head: RayHead) -> dict[str, dict]:
    """The shard hosts on `head`'s cluster: name -> {pid, node, shards} ({error, node: None, shards: []} for
    one that does not answer: dead or restarting)."""
    return _driver(head, "HOSTS")
