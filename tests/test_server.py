"""Full stack: SDK -> gRPC -> router -> Ray shard actors -> ScaNN, with Redis as the cache."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from simsearch import AsyncClient
from simsearch.datasets import exact_neighbors, recall_at

from conftest import API_KEY, random_vectors

pytestmark = pytest.mark.integration  # a real server, both placements


@pytest.fixture(scope="module")
def fm_collection(client, fmnist):
    db = fmnist.train[:20000]
    client.create_collection("fm", 784, metric="l2", shards=4)
    client.upsert("fm", np.arange(len(db)), db)
    client.build_index("fm")
    return db


def test_reflection_lists_the_services(server):
    with grpc.insecure_channel(server.address) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"simsearch.v1.Collections", "simsearch.v1.Points", "grpc.health.v1.Health"} <= services


def test_health_reports_serving(server):
    with grpc.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "simsearch.v1.Points"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_full_stack_recall_on_fashion_mnist(client, fm_collection, fmnist):
    queries = fmnist.test[:500]
    truth = exact_neighbors(fm_collection, queries, 10).astype(str)
    info = client.describe_collection("fm")
    assert info.points == 20000 and info.index_state == "ready" and info.shards == 4
    assert all(s["indexed"] > 4000 for s in info.shard_info)
    approx = client.search("fm", queries, 10, no_cache=True)
    exact = client.search("fm", queries, 10, exact=True, no_cache=True)
    assert recall_at(exact.ids, truth, 10) >= 0.99
    assert recall_at(approx.ids, truth, 10) >= 0.95
    assert approx.ids.shape == (500, 10) and np.all(np.diff(approx.scores, axis=1) >= 0)
    assert {"fanout", "merge", "total"} <= approx.timings_ms.keys()


def test_read_your_writes_and_get(client, fm_collection):
    v = np.full((1, 784), 3.0, np.float32)
    gen = client.describe_collection("fm").generation
    client.upsert("fm", ["ryw-1"], v)
    res = client.search("fm", v, 1)
    assert res.ids[0, 0] == "ryw-1" and res.scores[0, 0] == 0.0 and res.generation > gen
    pts = client.get("fm", ["ryw-1", 5, "absent"])
    assert pts.ids == ["ryw-1", "5"] and pts.missing == ["absent"]
    assert np.array_equal(pts.vectors[0], v[0]) and np.array_equal(pts.vectors[1], fm_collection[5])
    client.delete("fm", ["ryw-1"])


def test_deleted_points_never_come_back(client, fm_collection):
    gone = [str(i) for i in range(100, 140)]
    assert client.delete("fm", gone) == 40
    for _ in range(2):
        res = client.search("fm", fm_collection[100:140], 10)
        assert not set(gone) & set(res.ids.ravel().tolist())
        assert client.get("fm", gone).missing == gone
        client.build_index("fm")  # and after the tombstones are folded away
    client.upsert("fm", gone, fm_collection[100:140])


def test_searches_keep_answering_during_a_rebuild(client, fmnist):
    db = fmnist.train[20000:32000]
    client.create_collection("rebuild", 784, shards=1)
    client.upsert("rebuild", np.arange(len(db)), db)
    deadline = time.monotonic() + 300  # generous: a loaded machine builds slowly, which only adds answers
    # The upsert may have started a background build that is nearly done; let it finish, so the
    # build we watch is a whole one over all 12k rows.
    while client.describe_collection("rebuild").index_state == "building":
        assert time.monotonic() < deadline, "the background build did not finish within 300 s"
        time.sleep(0.05)
    client.build_index("rebuild", wait=False)
    answered_while_building = 0
    while (state := client.describe_collection("rebuild").index_state) == "building":
        assert time.monotonic() < deadline, "the build did not finish within 300 s"
        res = client.search("rebuild", db[:3], 1, no_cache=True)
        assert res.ids[:, 0].tolist() == ["0", "1", "2"]
        # counted only if the build was still running after the answer came back
        answered_while_building += client.describe_collection("rebuild").index_state == "building"
    assert state == "ready"
    assert answered_while_building >= 3, answered_while_building
    client.drop_collection("rebuild")


def test_hot_query_is_cached_and_a_write_makes_it_stale(client, fm_collection):
    q = fm_collection[7] + 0.5
    first = client.search("fm", q, 5)
    second = client.search("fm", q, 5)
    third = client.search("fm", q, 5)
    assert not first.cached and not second.cached and third.cached  # admitted after 2 sightings
    assert np.array_equal(third.ids, second.ids) and np.allclose(third.scores, second.scores)
    # Structure, not speed (a hit beating a miss in wall time is noise on a loaded machine): the
    # hit never reached the shards, and its own fields are appended to the stored bytes, so it
    # reports this call's stages, not the miss's.
    assert third.timings_ms.keys() == {"cache", "total"}
    assert {"fanout", "merge"} <= second.timings_ms.keys() and "fanout" not in third.timings_ms
    assert third.generation == second.generation
    client.upsert("fm", ["closest"], q[None, :])
    after = client.search("fm", q, 5)
    assert not after.cached and after.ids[0, 0] == "closest"
    client.delete("fm", ["closest"])


def test_sdk_accepts_int_ids_and_returns_str(client):
    client.create_collection("ints", 8, metric="cosine")
    vecs = random_vectors(50, 8, seed=3)
    assert client.upsert("ints", np.arange(50), vecs) == 50
    res = client.search("ints", vecs[:2], 1)
    assert res.ids[:, 0].tolist() == ["0", "1"] and np.allclose(res.scores[:, 0], 1.0, atol=1e-5)
    assert "ints" in client.list_collections()
    client.drop_collection("ints")
    assert "ints" not in client.list_collections()


def test_async_client_round_trip(server):
    async def run():
        async with AsyncClient(server.address, api_key=API_KEY) as c:
            await c.create_collection("aio", 4, metric="dot", shards=2)
            await c.upsert("aio", ["a", "b", "c"], np.eye(3, 4, dtype=np.float32))
            res = await c.search("aio", np.array([0, 1, 0, 0], np.float32), 2)
            info = await c.describe_collection("aio")
            await c.drop_collection("aio")
            return res, info
    res, info = asyncio.run(run())
    assert res.ids[0, 0] == "b" and res.scores[0, 0] == pytest.approx(1.0)
    assert info.points == 3 and info.metric == "dot"


def test_concurrent_writers_and_readers_lose_nothing(client):
    client.create_collection("conc", 16, shards=2)
    vecs = random_vectors(2000, 16, seed=5)
    errors = []

    def writer(part: int):
        try:
            ids = np.arange(part * 500, (part + 1) * 500)
            client.upsert("conc", ids, vecs[ids], batch_size=100)
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):
        client.search("conc", vecs[:4], 3, no_cache=True)
    for t in threads:
        t.join()
    assert not errors
    assert client.describe_collection("conc").points == 2000
    res = client.search("conc", vecs, 1, exact=True)
    assert res.ids[:, 0].tolist() == [str(i) for i in range(2000)]
    client.drop_collection("conc")
