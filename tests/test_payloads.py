"""Payloads: one flat JSON object per point, checked at the edge, logged with its vector, kept through
index builds, checkpoints and log replay, returned by Get; bad ones refused naming the point and field."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest

from conftest import API_KEY, start_server
from simsearch import Client, InvalidArgument, ResourceExhausted
from simsearch.contract import payloads
from simsearch.contract.limits import MAX_PAYLOAD_BYTES
from simsearch.protos.simsearch.v1 import points_pb2, points_pb2_grpc
from simsearch.shard import IndexParams, Shard, wal
from simsearch.protos import convert


@pytest.mark.unit
@pytest.mark.parametrize("text, path, message", [
    ("[1]", "payloads[2]", "must be a JSON object"),
    ('{"a": {"b": 1}}', "payloads[2].a", "payloads are flat"),
    ('{"tags": [1, [2]]}', "payloads[2].tags[1]", "strings, numbers or booleans"),
    ('{"tags": [null]}', "payloads[2].tags[0]", "strings, numbers or booleans"),
    ('{"a": NaN}', "payloads[2]", "not valid JSON"),
    ('{"a": 1e999}', "payloads[2].a", "must be finite"),
    ('{"n": 9223372036854775808}', "payloads[2].n", "int64 range"),
    ('{"$or": 1}', "payloads[2]['$or']", "must not start with '$'"),
    ('{"a": 1', "payloads[2]", "not valid JSON"),
    ('{"": 1}', "payloads[2]", "field names must be 1 to 256 characters"),
])
def test_bad_payloads_name_the_point_and_the_field(text, path, message):
    with pytest.raises(InvalidArgument) as e:
        payloads.canonical(text, "payloads[2]")
    assert e.value.message.startswith(path + ":") and message in e.value.message


@pytest.mark.unit
def test_payloads_are_stored_canonically_and_bounded():
    assert payloads.canonical('{ "b": [1, 2.5, "x", true], "a": "é\\u0000", "c": null }') == \
        '{"a":"é\\u0000","b":[1,2.5,"x",true],"c":null}'
    assert payloads.canonical("{}") == "" and payloads.canonical("") == ""
    big = json.dumps({"s": "x" * MAX_PAYLOAD_BYTES})
    with pytest.raises(InvalidArgument, match=rf"payload: must be at most {MAX_PAYLOAD_BYTES} bytes"):
        payloads.canonical(big)
    with pytest.raises(InvalidArgument, match=r"payloads: must be empty or hold one payload per id \(3\), got 2"):
        payloads.check_payloads(["", ""], 3)


@pytest.mark.unit
def test_a_log_record_carries_payloads_and_old_records_still_read():
    ids, vecs = ["a", "b"], np.ones((2, 3), np.float32)
    docs = ['{"k":"v"}', ""]
    body = wal.encode(7, wal.UPSERT, ids, vecs, docs)[16:]
    rec = wal.decode_body(7, body)
    assert rec.kind == wal.UPSERT and rec.ids == ids and rec.payloads == docs
    np.testing.assert_array_equal(rec.vectors, vecs)
    plain = wal.decode_body(8, wal.encode(8, wal.UPSERT, ids, vecs)[16:])
    assert plain.payloads is None and plain.ids == ids


def _docs(n: int, offset: int = 0) -> list[str]:
    return [payloads.canonical(json.dumps({"i": i, "tag": f"t{i % 7}"})) if i % 3 else "" for i in range(offset, offset + n)]


@pytest.mark.unit
def test_payloads_survive_builds_checkpoints_and_log_replay(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3000, 8)).astype(np.float32)
    ids = [f"p{i}" for i in range(3000)]
    docs = _docs(3000)
    shard = Shard(8, "l2", IndexParams(min_index_size=256), data_dir=tmp_path, background=False, durability="none")
    shard.upsert(ids[:2000], vecs[:2000], docs[:2000])
    shard.build_index()  # sealed rows carry their payloads
    shard.save()
    shard.upsert(ids[2000:], vecs[2000:], docs[2000:])  # fresh, only in the log
    shard.upsert(["p1"], vecs[1:2])  # an upsert without a payload replaces the point's payload
    shard.close(save=False)  # as after kill -9: checkpoint + log
    again = Shard(8, "l2", IndexParams(min_index_size=256), data_dir=tmp_path, background=False)
    found, got, back = again.get(["p1", "p2", "p2999", "p3", "nope"])
    assert found.tolist() == [True, True, True, True, False]
    assert back == ["", docs[2], docs[2999], ""]
    again.build_index()  # folded into a new sealed segment: still there
    again.save()
    again.close()
    third = Shard(8, "l2", IndexParams(min_index_size=256), data_dir=tmp_path, background=False)
    assert third.get(["p2", "p2999", "p1"])[2] == [docs[2], docs[2999], ""]
    third.close()


@pytest.mark.integration
def test_payloads_through_the_server(server):
    with Client(server.address, api_key=API_KEY) as c:
        c.create_collection("pay", 4, shards=2)
        c.upsert("pay", ["a", "b", "c"], np.eye(3, 4), payloads=[{"color": "red", "n": 3}, None, {"tags": ["x"]}])
        got = c.get("pay", ["c", "zz", "a", "b"])
        assert got.ids == ["c", "a", "b"] and got.missing == ["zz"]
        assert got.payloads == [{"tags": ["x"]}, {"color": "red", "n": 3}, {}]
        with pytest.raises(InvalidArgument, match=r"payloads\[1\]\.price: numbers must be finite"):
            c.upsert("pay", ["d", "e"], np.ones((2, 4)), payloads=[{}, {"price": float("inf")}])
        # The server checks too (any gRPC client): a raw request with a nested object, and a count mismatch.
        with grpc.insecure_channel(server.address) as channel:
            stub = points_pb2_grpc.PointsStub(channel)
            md = (("x-api-key", API_KEY),)
            for docs, match in ((["{}", '{"a": {"b": 1}}'], "payloads[1].a: "), (["{}"], "payloads: must be empty")):
                req = points_pb2.UpsertRequest(collection="pay", ids=["d", "e"], payloads=docs,
                                               vectors=convert.matrix_to_proto(np.ones((2, 4), np.float32)))
                with pytest.raises(grpc.RpcError) as e:
                    stub.Upsert(req, metadata=md)
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and match in e.value.details()
        assert c.get("pay", ["d", "e", "a"]).ids == ["a"]  # nothing of the refused writes was stored


@pytest.mark.integration
def test_a_get_whose_payloads_overflow_the_reply_is_refused(tmp_path):
    server = start_server(tmp_path / "data")
    try:
        _overflow(server)
    finally:
        server.stop()


def _overflow(server) -> None:
    with Client(server.address, api_key=API_KEY) as c:
        c.create_collection("big", 2)
        n = 1200  # ~60 KB each: 72 MB of payloads, over the 64 MiB message limit together
        docs = [{"text": "y" * 60_000, "i": i} for i in range(n)]
        c.upsert("big", np.arange(n), np.ones((n, 2)), payloads=docs)  # the SDK cuts requests by their bytes
        with pytest.raises(ResourceExhausted, match=r"with their payloads would be .* ask for at most about"):
            c.get("big", np.arange(n))
        half = c.get("big", np.arange(500))
        assert len(half.ids) == 500 and half.payloads[7] == docs[7]


@pytest.mark.integration
def test_search_returns_each_hits_payload_when_asked(server):
    with Client(server.address, api_key=API_KEY) as c:
        c.create_collection("found", 8, shards=2)
        vecs = np.random.default_rng(3).standard_normal((300, 8)).astype(np.float32)
        docs = [{"i": i, "even": i % 2 == 0} if i % 5 else None for i in range(300)]
        c.upsert("found", np.arange(300), vecs, payloads=docs)
        plain = c.search("found", vecs[:4], 3, no_cache=True)
        assert plain.payloads is None  # not asked for, not sent
        for _ in range(3):  # the third answer comes from the hot-query cache, payloads included
            res = c.search("found", vecs[:4], 3, with_payload=True)
            assert [res.payloads[q, 0] for q in range(4)] == [{}, {"i": 1, "even": False}, {"i": 2, "even": True},
                                                             {"i": 3, "even": False}]
            assert all(res.payloads[q, j] == (docs[int(res.ids[q, j])] or {}) for q in range(4) for j in range(3))
        assert res.cached
        assert c.search("found", vecs[:4], 3).payloads is None  # the cache keeps the two apart


@pytest.mark.integration
def test_set_payload_changes_payloads_and_keeps_vectors(server):
    with Client(server.address, api_key=API_KEY) as c:
        c.create_collection("patch", 4, metric="cosine", shards=2)
        x = np.random.default_rng(5).standard_normal((6, 4)).astype(np.float32)
        c.upsert("patch", ["a", "b", "c", "d", "e", "f"], x, payloads=[{"n": i, "keep": True} for i in range(6)])
        before = c.get("patch", ["a", "b", "c"]).vectors
        assert c.set_payload("patch", ["a", "b", "zz"], {"n": 10, "tag": "x"}) == 2  # zz is not stored
        assert c.set_payload("patch", ["b"], delete_keys=["keep"]) == 1
        assert c.set_payload("patch", ["c"], {"only": 1}, replace=True) == 1
        got = c.get("patch", ["a", "b", "c", "d"])
        assert got.payloads == [{"n": 10, "tag": "x", "keep": True}, {"n": 10, "tag": "x"}, {"only": 1},
                                {"n": 3, "keep": True}]
        np.testing.assert_array_equal(got.vectors[:3], before)  # bit for bit: not normalised again
        assert c.count("patch", {"tag": "x"}) == 2
        with pytest.raises(InvalidArgument, match=r"payload: must set some fields"):
            c.set_payload("patch", ["a"])
        with pytest.raises(InvalidArgument, match=r"payload\.n: must be a string, number"):
            c.set_payload("patch", ["a"], {"n": {"deep": 1}})
        big = {"s": "y" * 40_000}
        c.set_payload("patch", ["d"], big)
        with pytest.raises(InvalidArgument, match=r"payload of 'd': would be \d+ bytes .* none of the points on its"):
            c.set_payload("patch", ["d"], {"t": "z" * 40_000})
        assert c.get("patch", ["d"]).payloads == [{"n": 3, "keep": True, **big}]


@pytest.mark.integration
def test_upload_sends_requests_in_parallel_and_every_point_lands(tmp_path):
    server = start_server(tmp_path / "data")
    try:
        with Client(server.address, api_key=API_KEY) as c:
            c.create_collection("up", 16, shards=2)
            x = np.random.default_rng(9).standard_normal((20_000, 16)).astype(np.float32)
            docs = [{"i": i} for i in range(20_000)]
            assert c.upload("up", np.arange(20_000), x, payloads=docs, parallel=4, batch_size=1000) == 20_000
            assert c.count("up") == 20_000 and c.count("up", {"i": {"$gte": 19_990}}) == 10
            got = c.get("up", ["0", "19999"])
            np.testing.assert_array_equal(got.vectors, x[[0, 19999]])
            assert got.payloads == [{"i": 0}, {"i": 19999}]
            with pytest.raises(InvalidArgument, match=r"payloads\[1\]\.i: integers must be in the int64 range"):
                c.upload("up", ["a", "b"], x[:2], payloads=[{}, {"i": 2**64}])
            assert c.count("up") == 20_000  # checked before the first request: nothing was sent
    finally:
        server.stop()


@pytest.mark.integration
def test_async_upload_and_scroll(tmp_path):
    import asyncio

    from simsearch import AsyncClient

    server = start_server(tmp_path / "data")

    async def run() -> tuple[int, int, list[str]]:
        async with AsyncClient(server.address, api_key=API_KEY) as c:
            await c.create_collection("aup", 8)
            x = np.random.default_rng(1).standard_normal((5000, 8)).astype(np.float32)
            n = await c.upload("aup", np.arange(5000), x, payloads=[{"b": i % 4} for i in range(5000)],
                               parallel=3, batch_size=700)
            page = await c.scroll("aup", filter={"b": 3}, limit=5)
            return n, await c.count("aup", {"b": 3}), page.ids

    try:
        n, threes, first = asyncio.run(run())
    finally:
        server.stop()
    assert (n, threes) == (5000, 1250) and first == sorted(first) and len(first) == 5
