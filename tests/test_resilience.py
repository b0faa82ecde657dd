"""Failures that must not reach the client: Redis going away, a shard dying, a restart."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch import Client, Unavailable

from conftest import API_KEY, RedisProcess, random_vectors, start_server

pytestmark = pytest.mark.integration  # real servers, redis-server processes, Ray actors


def test_searches_succeed_after_redis_is_killed_mid_run(tmp_path):
    redis = RedisProcess()
    server = start_server(tmp_path, redis_url=redis.url, cache_min_hits=1)
    try:
        with Client(server.address, api_key=API_KEY) as c:
            c.create_collection("r", 16, shards=2)
            vecs = random_vectors(500, 16)
            c.upsert("r", np.arange(500), vecs)
            c.search("r", vecs[:1], 5)
            assert c.search("r", vecs[:1], 5).cached  # Redis is serving hits
            redis.kill()
            for i in range(20):
                res = c.search("r", vecs[i : i + 1], 5)
                assert res.ids[0, 0] == str(i) and not res.cached
            c.upsert("r", ["after"], vecs[:1] + 100)  # writes are unaffected too
            assert c.search("r", vecs[:1] + 100, 1).ids[0, 0] == "after"
        assert server.engine.cache.failures >= 1
    finally:
        server.stop()
        redis.kill()


def test_clean_restart_keeps_every_point(tmp_path, fmnist):
    db = fmnist.train[:6000]
    server = start_server(tmp_path)
    with Client(server.address, api_key=API_KEY) as c:
        c.create_collection("keep", 784, shards=2)
        c.upsert("keep", np.arange(6000), db)
        c.build_index("keep")
        c.upsert("keep", ["late-1", "late-2"], db[:2] + 1)  # fresh, not yet indexed
        c.delete("keep", ["10", "11"])
        before = c.search("keep", fmnist.test[:50], 10, no_cache=True)
    server.stop()

    server = start_server(tmp_path)
    try:
        with Client(server.address, api_key=API_KEY) as c:
            info = c.describe_collection("keep")
            assert info.points == 6000 and info.index_state == "partial"  # the two late points wait for a build
            assert [sum(s[k] for s in info.shard_info) for k in ("indexed", "fresh")] == [5998, 2]
            got = c.get("keep", [str(i) for i in range(6000)] + ["late-1", "late-2"])
            assert got.missing == ["10", "11"]
            assert np.array_equal(got.vectors[:10], db[:10])
            after = c.search("keep", fmnist.test[:50], 10, no_cache=True)
            assert np.array_equal(before.ids, after.ids)
    finally:
        server.stop()


@pytest.mark.parametrize("placement", ["ray", "local"])
def test_a_dead_shard_is_unavailable_or_flagged_when_partial_is_allowed(tmp_path, placement, request):
    if placement == "ray":
        request.getfixturevalue("ray_cluster")
    server = start_server(tmp_path, placement=placement)
    try:
        with Client(server.address, api_key=API_KEY) as c:
            c.create_collection("frail", 8, shards=3)
            vecs = random_vectors(300, 8)
            c.upsert("frail", np.arange(300), vecs)
            live = server.engine._live[("default", "frail")]
            live.shards[1].kill()  # the shard is stopped (in-process, or on its Ray host)
            with pytest.raises(Unavailable, match="1 of 3 shards did not answer"):
                c.search("frail", vecs[:4], 5, no_cache=True)
            res = c.search("frail", vecs[:4], 5, allow_partial=True, no_cache=True)
            assert res.partial and res.missing_shards == (1,)
            assert res.ids.shape == (4, 5)
            info = c.describe_collection("frail")
            assert [s["available"] for s in info.shard_info] == [True, False, True]
            # A write spanning the dead shard says what was applied where, instead of failing as a whole.
            with pytest.raises(Unavailable, match=r"this write was applied on shard\(s\) 0, 2 and not on 1: "
                                                  r"sending it again is safe") as e:
                c.upsert("frail", [f"new-{i}" for i in range(60)], random_vectors(60, 8, seed=3))
            # and says it in a machine-readable detail too (a google.rpc.ErrorInfo)
            assert e.value.info == {"reason": "PARTIAL_WRITE", "applied_shards": "0,2", "failed_shards": "1"}
    finally:
        server.stop(save=False)
