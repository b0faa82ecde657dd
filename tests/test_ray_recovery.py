"""Shard actors that die come back (issue 18): Ray restarts a killed shard actor, which restores itself
from its checkpoint and log, and calls that meet it while it restarts are sent again within their time.
Real Ray actors, killed with a real SIGKILL."""

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


def _shard_pids(collection: str) -> dict[str, int]:
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if f"/{collection}-" in a["name"]]
    return {n: ray.get(ray.get_actor(n, namespace=NAMESPACE).stats.remote())["pid"] for n in names}


def test_a_killed_shard_actor_restarts_with_every_acknowledged_write(ray_cluster, tmp_path):
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
            pids = _shard_pids("docs")
            assert len(pids) == 2 and len(set(pids.values())) == 2
            victim = sorted(pids)[0]
            os.kill(pids[victim], signal.SIGKILL)

            # At once: a search and a write meet the dead actor, wait for its restart and succeed.
            after = c.search("docs", vectors[:50], 10, no_cache=True, timeout_ms=60_000)
            c.upsert("docs", np.arange(2500, 3000), vectors[2500:3000], progress=False)
            assert c.count("docs") == 3000
            np.testing.assert_array_equal(after.ids, before.ids)
            new = _shard_pids("docs")
            assert new[victim] != pids[victim] and new[sorted(pids)[1]] == pids[sorted(pids)[1]]
            got = c.get("docs", [str(i) for i in range(3000)])
            assert not got.missing
            np.testing.assert_array_equal(got.vectors, vectors)
    finally:
        server.stop()
