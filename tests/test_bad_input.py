"""Every bad input gets the right status, a message naming the field and range, and
leaves what was stored before intact. Never INTERNAL."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from simsearch import (AlreadyExists, Client, InvalidArgument, NotFound, ResourceExhausted, SimsearchError,
                       Unauthenticated)
from simsearch.protos.simsearch.v1 import common_pb2, points_pb2, points_pb2_grpc

from conftest import API_KEY, random_vectors

pytestmark = pytest.mark.integration  # a real server, both placements

DIM = 8


@pytest.fixture(scope="module")
def stored(client):
    client.create_collection("bad", DIM, metric="cosine", shards=2)
    vecs = random_vectors(300, DIM, seed=11)
    client.upsert("bad", np.arange(300), vecs)
    return vecs


def _snapshot(client, vecs):
    info = client.describe_collection("bad")
    res = client.search("bad", vecs[:5], 3, exact=True, no_cache=True)
    return info.points, res.ids.tolist()


def _expect(call, exc, field=None, *needles):
    with pytest.raises(exc) as e:
        call()
    assert e.value.code != "INTERNAL"
    if field is not None:
        assert e.value.field == field, e.value.message
    for n in needles:
        assert n in e.value.message, e.value.message
    return e.value


def test_bad_writes_are_refused_whole(client, stored):
    before = _snapshot(client, stored)
    v = random_vectors(2, DIM)
    cases = [
        (lambda: client.upsert("bad", ["x", "y"], random_vectors(2, DIM + 1)), InvalidArgument, "vectors", "dimension 8"),
        (lambda: client.upsert("bad", ["x", "y"], np.vstack([v[:1], np.full((1, DIM), np.nan)])), InvalidArgument, "vectors[1]", "finite"),
        (lambda: client.upsert("bad", ["x", "y"], np.vstack([v[:1], np.full((1, DIM), np.inf)])), InvalidArgument, "vectors[1]", "finite"),
        (lambda: client.upsert("bad", ["x", "y"], np.vstack([v[:1], np.zeros((1, DIM))])), InvalidArgument, "vectors[1]", "zero norm"),
        (lambda: client.upsert("bad", ["x", "y"], np.vstack([v[:1], np.full((1, DIM), 1e-30)])), InvalidArgument, "vectors[1]", "zero norm"),
        (lambda: client.upsert("bad", ["x", "y"], np.vstack([v[:1], np.full((1, DIM), 1e20)])), InvalidArgument, "vectors[1]", "squared norm must be <= 1e+30"),
        (lambda: client.upsert("bad", [str(i) for i in range(10)], random_vectors(5, DIM), batch_size=4), InvalidArgument, "vectors", "one row per id (10)"),
        (lambda: client.upsert("bad", ["x", "x"], v), InvalidArgument, "ids", "unique", "'x'"),
        (lambda: client.upsert("bad", [], np.empty((0, DIM))), InvalidArgument, "ids", "1 to 100000"),
        (lambda: client.upsert("bad", ["x", "y", "z"], v), InvalidArgument, "vectors", "one row per id (3)"),
        (lambda: client.upsert("bad", ["x", "y" * 300], v), InvalidArgument, "ids[1]", "1 to 256"),
        (lambda: client.upsert("nope", ["x"], v[:1]), NotFound, "collection", "'nope'"),
        (lambda: client.delete("bad", []), InvalidArgument, "ids", "got 0"),
        (lambda: client.delete("bad", ["1", "1"]), InvalidArgument, "ids", "unique"),
        (lambda: client.get("bad", []), InvalidArgument, "ids", "got 0"),
        (lambda: client.get("bad", ["1", "y" * 100_000]), InvalidArgument, "ids[1]", "1 to 256", "got 100000"),
        (lambda: client.get("x" * 500, ["1"]), InvalidArgument, "collection", "(500 characters)"),
    ]
    for call, exc, field, *needles in cases:
        _expect(call, exc, field, *needles)
    assert _snapshot(client, stored) == before


def test_bad_searches(client, stored):
    q = stored[:2]
    cases = [
        (lambda: client.search("bad", q, k=0), "k", "[1, 1024]", "got 0"),
        (lambda: client.search("bad", q, k=-3), "k", "got -3"),
        (lambda: client.search("bad", q, k=1025), "k", "got 1025"),
        (lambda: client.search("bad", random_vectors(2, 3), k=5), "queries", "dimension 8"),
        (lambda: client.search("bad", np.full((1, DIM), np.nan), k=5), "queries[0]", "finite"),
        (lambda: client.search("bad", np.empty((0, DIM)), k=5), "queries", "got 0"),
        (lambda: client.search("bad", q, k=5, oversample=100), "params.oversample", "[1, 64]"),
        (lambda: client.search("bad", q, k=5, leaves_to_search=-1), "params.leaves_to_search", "got -1"),
        (lambda: client.search("bad", q, k=5, timeout_ms=-5), "params.timeout_ms", "got -5"),
    ]
    for call, field, *needles in cases:
        _expect(call, InvalidArgument, field, *needles)
    _expect(lambda: client.search("missing", q, k=5), NotFound, "collection", "'missing'")


def test_bad_collections(client, stored):
    before = _snapshot(client, stored)
    _expect(lambda: client.create_collection("bad", DIM), AlreadyExists, "name", "already exists")
    _expect(lambda: client.create_collection("x1", DIM, metric="hamming"), InvalidArgument, "metric", "{l2, dot, cosine}", "'hamming'")
    _expect(lambda: client.create_collection("x2", 0), InvalidArgument, "dim", "[1, 4096]")
    _expect(lambda: client.create_collection("x3", 5000), InvalidArgument, "dim", "got 5000")
    _expect(lambda: client.create_collection("x4", DIM, shards=100), InvalidArgument, "shards", "[1, 64]")
    _expect(lambda: client.create_collection("no spaces", DIM), InvalidArgument, "name")
    _expect(lambda: client.create_collection("x5", DIM, oversample=99), InvalidArgument, "index.oversample")
    _expect(lambda: client.drop_collection("never-made"), NotFound, "name")
    _expect(lambda: client.describe_collection("never-made"), NotFound)
    assert not {"x1", "x2", "x3", "x4", "x5"} & set(client.list_collections())
    assert _snapshot(client, stored) == before


def test_a_lying_matrix_header_is_invalid_argument(server, stored):
    with grpc.insecure_channel(server.address) as ch:
        stub = points_pb2_grpc.PointsStub(ch)
        req = points_pb2.UpsertRequest(collection="bad", ids=["a"],
                                       vectors=common_pb2.Matrix(rows=1, cols=DIM, data=b"\0" * 7))
        with pytest.raises(grpc.RpcError) as e:
            stub.Upsert(req, metadata=(("x-api-key", API_KEY),))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "vectors" in e.value.details() and f"{DIM * 4} bytes" in e.value.details()


def test_oversize_message_is_resource_exhausted_and_changes_nothing(client, stored):
    before = _snapshot(client, stored)
    huge = np.ones((70 * 1024 * 1024 // (DIM * 4), DIM), np.float32)  # a 70 MiB request; the limit is 64 MiB
    ids = np.arange(len(huge)) + 10_000
    with pytest.raises(ResourceExhausted):
        client.upsert("bad", ids, huge, batch_size=len(huge))
    assert _snapshot(client, stored) == before


def test_api_key_is_required_and_checked(server, stored):
    for key in (None, "wrong-key"):
        with Client(server.address, api_key=key) as c:
            err = _expect(c.list_collections, Unauthenticated)
            assert isinstance(err, SimsearchError)
            _expect(lambda: c.search("bad", stored[:1], 3), Unauthenticated)
    with grpc.insecure_channel(server.address) as ch:
        stub = points_pb2_grpc.PointsStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.Search(points_pb2.SearchRequest(collection="bad", k=1),
                        metadata=(("authorization", f"Bearer {API_KEY}x"),))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = stub.Search(points_pb2.SearchRequest(collection="bad", k=1, queries=common_pb2.Matrix(
            rows=1, cols=DIM, data=stored[:1].tobytes())), metadata=(("authorization", f"Bearer {API_KEY}"),))
        assert ok.counts == [1]
