"""The router-to-shard-host search path (cluster/direct.py, cluster/shard_host.py) without Ray: the flat
result encoding, how concurrent searches are merged into batches and split back, and the socket
protocol's token check, over real sockets."""

from __future__ import annotations

import asyncio
import pickle

import numpy as np
import pytest

from simsearch.cluster.direct import DirectClient, DirectServer, decode_result, encode_result
from simsearch.cluster.shard_host import _merge, _rows
from simsearch.contract.errors import Unavailable
from simsearch.shard import SearchResult

pytestmark = pytest.mark.unit


def _result(n: int, k: int, payloads: bool) -> SearchResult:
    ids = np.empty((n, k), dtype=object)
    ids[:] = [[f"id-{i}-{j}" if j < k - 1 else "" for j in range(k)] for i in range(n)] if n else ids
    dist = np.arange(n * k, dtype=np.float32).reshape(n, k)
    dist[:, -1] = np.inf
    pay = np.empty((n, k), dtype=object)
    pay[:] = [[('{"a":"é"}' if j % 2 else "") for j in range(k)] for _ in range(n)] if n else pay
    return SearchResult(ids=ids, distances=dist, payloads=pay if payloads else None, path="index")


@pytest.mark.parametrize("payloads", [False, True])
def test_the_flat_encoding_round_trips(payloads):
    r = _result(3, 4, payloads)
    back = decode_result(encode_result(r))
    assert back.path == "index" and back.ids.tolist() == r.ids.tolist()
    np.testing.assert_array_equal(back.distances, r.distances)
    assert (back.payloads is None) == (not payloads)
    if payloads:
        assert back.payloads.tolist() == r.payloads.tolist()
    empty = decode_result(encode_result(_result(0, 4, False)))
    assert empty.ids.shape == (0, 4) and empty.distances.shape == (0, 4)


def test_searches_of_one_shard_with_the_same_parameters_merge_and_split_back():
    q = [np.full((n, 4), i, np.float32) for i, n in enumerate((1, 2, 1, 1))]
    calls = [("s0", q[0], 10, {"timeout_s": 1.0}), ("s0", q[1], 10, {"timeout_s": 3.0}),
             ("s0", q[2], 5, {"timeout_s": 2.0}),  # another k: its own call
             ("s1", q[3], 10, {"timeout_s": 2.0})]  # another shard: its own call
    merged, members = _merge(calls)
    assert len(merged) == 3
    key, queries, k, params = merged[0]
    assert key == "s0" and k == 10 and params == {"timeout_s": 3.0}  # the latest timeout of the two
    np.testing.assert_array_equal(queries, np.concatenate([q[0], q[1]]))
    assert members[0] == [(0, (0, 1)), (1, (1, 3))]
    assert members[1] == [(2, (0, 1))] and members[2] == [(3, (0, 1))]
    assert _merge([("s0", q[0], 10, {"filter": {"a": 1}}), ("s0", q[2], 10, {"filter": {"a": 2}})])[0].__len__() == 2
    r = _result(3, 4, True)
    part = _rows(r, 1, 3, whole=False)
    assert part.ids.tolist() == r.ids[1:3].tolist() and part.payloads.tolist() == r.payloads[1:3].tolist()


def test_the_socket_protocol_serves_its_token_holder_only():
    seen = []

    def serve(calls: list) -> bytes:
        seen.append(calls)
        return pickle.dumps([c[0] for c in calls])

    server = DirectServer(serve, "127.0.0.1", "right-token")

    async def main():
        good = DirectClient(server.address, "right-token", "host")
        replies = await asyncio.gather(*(good.call(pickle.dumps([(f"call-{i}",)]), 5.0) for i in range(5)))  # at once
        assert [pickle.loads(r) for r in replies] == [[f"call-{i}"] for i in range(5)]
        bad = DirectClient(server.address, "wrong-token", "host")
        with pytest.raises(Unavailable, match="host is unavailable"):
            await bad.call(pickle.dumps([("sneaky",)]), 5.0)
        good.close()

    try:
        asyncio.run(main())
    finally:
        server.stop()
    assert ("sneaky",) not in [c for calls in seen for c in calls]
