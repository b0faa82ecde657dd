"""Shards whose host dies come back (issue 18): Ray restarts a killed shard host actor, the router opens
its shards there again, each restores itself from its checkpoint and log, and calls that meet the host
while it restarts are sent again within their time. Real Ray actors, killed with a real SIGKILL."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import ray

from conftest import API_KEY, start_server
from simsearch import Client
from simsearch.cluster import NAMESPACE

pytestmark = pytest.mark.integration
DIM = 16


def _hosts_of(collection: str) -> dict[str, dict]:
    """The shard hosts holding `collection`'s shards: name -> info (pid, node, shards)."""
    out = {}
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a["name"].startswith("shard-host-"):
            info = ray.get(ray.get_actor(a["name"], namespace=NAMESPACE).info.remote(), timeout=60)
            if any(f"/{collection}-" in s for s in info["shards"]):
                out[a["name"]] = info
    return out


def test_a_killed_shard_host_restarts_with_every_acknowledged_write(ray_cluster, tmp_path):
    server = start_server(tmp_path / "data", placement="ray")
    try:
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((3000, DIM)).astype(np.float32)
        with Client(server.address, api_key=API_KEY) as c:
            c.create_collection("docs", DIM, shards=2)
            c.upsert("docs", np.arange(2000), vectors[:2000], progress=False)
            c.build_index("docs")
            c.upsert("docs", np.arange(2000, 2500), vectors[2000:2500], progress=False)  # in the log only
            before = c.search("docs", vectors[:50], 10, no_cache=True)
            hosts = _hosts_of("docs")
            assert len(hosts) == 1  # one node here: one host holds both shards, one process
            (name, info), = hosts.items()
            assert len([s for s in info["shards"] if "/docs-" in s]) == 2
            os.kill(info["pid"], signal.SIGKILL)

            # At once: a search and a write meet the dead host, wait for its restart and succeed.
            after = c.search("docs", vectors[:50], 10, no_cache=True, timeout_ms=60_000)
            c.upsert("docs", np.arange(2500, 3000), vectors[2500:3000], progress=False)
            assert c.count("docs") == 3000
            np.testing.assert_array_equal(after.ids, before.ids)
            restarted = _hosts_of("docs")[name]
            assert restarted["pid"] != info["pid"] and len([s for s in restarted["shards"] if "/docs-" in s]) == 2
            got = c.get("docs", [str(i) for i in range(3000)])
            assert not got.missing
            np.testing.assert_array_equal(got.vectors, vectors)
    finally:
        server.stop()
