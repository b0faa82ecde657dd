"""Losing a Ray node (issue 18), on one machine: a head and a second node started with `ray start` as
users do (token authentication on), a server joined to them with a 4-shard collection spread over
both nodes' shard hosts, and the second node's raylet and everything under it SIGKILLed mid-load.
Without replicas the searches wait while Ray notices the node is gone and restarts its host on the
head, where the router reopens the shards from the shared data path: none fails, each still finds
its own point, and every acknowledged write is there. (With replicas, not built yet, the wait would
go too.)

Run beside the suite, not in it: `python scripts/node_loss.py`. It passed in 5 of 8 runs; in the other
3 (two clean-clone runs of the whole suite, one alone) the shard hosts did not spread over both nodes
(a host placed with soft node affinity on the newly joined node landed on the head), so the scenario
was not exercised and the spread check failed. Until placement on a newly joined node is reliable,
it is a script.)"""

from __future__ import annotations

import threading
import time

import numpy as np

from conftest import API_KEY, serve_process
from ray_nodes import kill_second_node, shard_hosts, start_head, start_worker, token_file
from simsearch import Client

DIM, POINTS = 16, 4000


def _wait_for_recovery(head, outcome: dict) -> None:
    """Until the lost host is back on the surviving node, holding its shards, and searches flow again."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        hosts = shard_hosts(head)
        if len({h["node"] for h in hosts.values()} - {None}) == 1 and sum(len(h["shards"]) for h in hosts.values()) == 4:
            break
    n = outcome["ok"]
    time.sleep(2)
    assert outcome["ok"] > n, outcome


def losing_a_node_re_creates_its_shards_on_the_survivor_with_no_failed_search(tmp_path):
    token = token_file(tmp_path)
    head = start_head(token)
    try:
        start_worker(head)
        vectors = np.random.default_rng(0).standard_normal((POINTS, DIM)).astype(np.float32)
        with serve_process(tmp_path / "data", "--ray-address", head.address, "--ray-token-file", str(token)) as run, \
                Client(run.address, api_key=API_KEY) as c:
            c.create_collection("docs", DIM, shards=4)
            c.upsert("docs", np.arange(POINTS), vectors, progress=False)
            before = shard_hosts(head)
            assert len({h["node"] for h in before.values()}) == 2  # the shards are spread over both nodes
            nodes = {h["node"] for h in before.values()}

            outcome = {"ok": 0, "wrong": 0, "failed": [], "max_s": 0.0}
            stop = threading.Event()

            def load() -> None:  # outcomes recorded, never asserted, in the thread
                with Client(run.address, api_key=API_KEY) as lc:
                    rng = np.random.default_rng(1)
                    while not stop.is_set():
                        i = int(rng.integers(POINTS))
                        t = time.perf_counter()
                        try:
                            hit = lc.search("docs", vectors[i], 1, no_cache=True, timeout_ms=60_000).ids[0][0]
                            outcome["ok" if hit == str(i) else "wrong"] += 1
                        except Exception as e:  # noqa: BLE001
                            outcome["failed"].append(repr(e)[:300])
                        outcome["max_s"] = max(outcome["max_s"], time.perf_counter() - t)

            thread = threading.Thread(target=load, daemon=True)
            thread.start()
            try:
                time.sleep(2)
                killed = kill_second_node(head)
                _wait_for_recovery(head, outcome)
            finally:
                stop.set()
                thread.join(timeout=120)

            assert "raylet" in killed and "ray::ShardHost" in killed, killed
            assert outcome["failed"] == [] and outcome["wrong"] == 0, outcome
            assert outcome["ok"] > 100
            after = shard_hosts(head)
            survivor = {h["node"] for h in after.values()}
            assert len(survivor) == 1 and survivor < nodes  # both hosts now on the head's node
            assert sorted(s for h in after.values() for s in h["shards"]) == \
                sorted(s for h in before.values() for s in h["shards"])
            assert c.count("docs") == POINTS
            got = c.get("docs", [str(i) for i in range(POINTS)])
            assert not got.missing
            np.testing.assert_array_equal(got.vectors, vectors)
            print(f"node lost: {outcome['ok']} searches, 0 failed, longest {outcome['max_s']:.1f} s")
    finally:
        head.kill()
