"""Searches over Points.SearchStream: same answers as unary Search, per-request errors that
leave the stream usable, one stream per concurrent caller, and recovery when the server
restarts under an open stream. Real server, real gRPC, both placements."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from simsearch import AsyncClient, Client, InvalidArgument, NotFound, Unauthenticated


from conftest import API_KEY, free_port, random_vectors, start_server

pytestmark = pytest.mark.integration  # real servers, both placements

VECS = random_vectors(3000, 16, seed=11)


@pytest.fixture(scope="module")
def coll(client) -> str:
    client.create_collection("streamed", 16, shards=2)
    client.upsert("streamed", np.arange(len(VECS)), VECS)
    client.build_index("streamed")
    return "streamed"


def test_stream_answers_match_unary_and_reuse_one_stream(server, client, coll):
    with Client(server.address, api_key=API_KEY, stream=False) as unary:
        for i in range(0, 60, 3):
            q = VECS[i:i + 3] + 0.01
            streamed = client.search(coll, q, 10, no_cache=True)
            plain = unary.search(coll, q, 10, no_cache=True)
            np.testing.assert_array_equal(streamed.ids, plain.ids)
            np.testing.assert_allclose(streamed.scores, plain.scores, rtol=1e-6)
            assert streamed.ids[0, 0] == str(i)
    assert len(client._streams._idle) == 1  # one caller, one stream, reused for every search


def test_a_bad_request_gets_its_own_error_and_the_stream_goes_on(client, coll):
    client.search(coll, VECS[0], 5)
    stream = client._streams._idle[-1]
    with pytest.raises(InvalidArgument) as e:
        client.search(coll, VECS[0], 0)
    assert e.value.field == "k" and "[1, 1024]" in str(e.value)
    with pytest.raises(InvalidArgument) as e:
        client.search(coll, VECS[0, :4], 5)
    assert e.value.field == "queries" and "dimension 16" in str(e.value)
    with pytest.raises(NotFound):
        client.search("no-such-collection", VECS[0], 5)
    res = client.search(coll, VECS[7], 5)
    assert res.ids[0, 0] == "7"
    assert client._streams._idle == [stream]  # the same call answered all of them
    assert client.describe_collection(coll).points == len(VECS)


def test_an_unknown_key_fails_the_stream_with_unauthenticated(server, coll):
    with Client(server.address, api_key="not-a-key") as c:
        with pytest.raises(Unauthenticated):
            c.search(coll, VECS[0], 5)


def test_concurrent_callers_each_get_their_own_answers(client, coll):
    def worker(start: int) -> list[str]:  # no assertions here: they are made in the main thread
        return [client.search(coll, VECS[i], 3, no_cache=True).ids[0, 0] for i in range(start, start + 40)]

    with ThreadPoolExecutor(8) as pool:
        got = [f.result() for f in [pool.submit(worker, start) for start in range(0, 320, 40)]]
    assert got == [[str(i) for i in range(start, start + 40)] for start in range(0, 320, 40)]
    assert 1 <= len(client._streams._idle) <= 8


def test_async_client_streams_and_survives_a_bad_request(server, coll):
    async def run():
        async with AsyncClient(server.address, api_key=API_KEY) as c:
            first = await c.search(coll, VECS[3], 4)
            with pytest.raises(InvalidArgument) as e:
                await c.search(coll, VECS[3], 2000)
            both = await asyncio.gather(*(c.search(coll, VECS[i], 4, no_cache=True) for i in range(10, 20)))
            return first, e.value, both, len(c._streams._idle)

    first, err, both, idle = asyncio.run(run())
    assert first.ids[0, 0] == "3" and err.field == "k"
    assert [r.ids[0, 0] for r in both] == [str(i) for i in range(10, 20)]
    assert 1 <= idle <= 10


def test_a_restarted_server_is_reached_again_through_a_fresh_call(tmp_path):
    port = free_port()
    server = start_server(tmp_path, port=port)
    try:
        with Client(server.address, api_key=API_KEY) as c:
            c.create_collection("r", 16)
            c.upsert("r", np.arange(500), VECS[:500])
            assert c.search("r", VECS[9], 3).ids[0, 0] == "9"
            old = c._streams._idle[-1]
            server.stop()
            server = start_server(tmp_path, port=port)
            assert c.search("r", VECS[9], 3).ids[0, 0] == "9"  # the dead stream is dropped, the search resent
            assert c.search("r", VECS[10], 3).ids[0, 0] == "10"
            assert old not in c._streams._idle and len(c._streams._idle) == 1
    finally:
        server.stop()


def test_searches_are_counted_per_tenant_and_outcome(server, client, coll):
    from prometheus_client import REGISTRY

    tenant = server.engine.catalog.authenticate(API_KEY).tenant

    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"tenant": tenant, **labels}) or 0.0

    before = (count("simsearch_searches_total", outcome="ok"), count("simsearch_queries_total"),
              count("simsearch_cache_lookups_total", result="miss"))
    client.search(coll, VECS[100:103] + 0.5, 5)
    want = (before[0] + 1, before[1] + 3, before[2] + 1)
    # Recorded on the server's next loop turn, after the reply left: poll for the expected
    # counts (not for the first change) under a generous deadline.
    deadline = time.monotonic() + 30
    while True:
        after = (count("simsearch_searches_total", outcome="ok"), count("simsearch_queries_total"),
                 count("simsearch_cache_lookups_total", result="miss"))
        if after == want or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert after == want
    stages = REGISTRY.get_sample_value("simsearch_search_stage_seconds_count", {"stage": "total"})
    assert stages and stages >= 1
