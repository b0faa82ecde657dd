"""Router pieces that need no Ray: stable hashing, the merge, validation, the catalog."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from simsearch.contract.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from simsearch.contract.limits import MAX_ID_BYTES, MAX_MESSAGE_BYTES, MAX_RESULTS
from simsearch.protos.simsearch.v1 import collections_pb2, common_pb2, encoders_pb2, points_pb2
from simsearch.reranker import pairwise_distance, top_k
from simsearch.router.catalog import Catalog
from simsearch.router.hashing import group_by_shard, id_hash, shard_of
from simsearch.router.merge import merge
from simsearch.router.throttle import LogThrottle
from simsearch.router.validate import (check_get_reply, check_ids, check_reply_size, check_request, check_search,
                                       check_vectors)
from simsearch.router.wire import Undecodable, request_deserializer, undecodable_error
from simsearch.shard import CollectionSpec, IndexParams, SearchResult


def test_id_hash_is_stable_across_batches_and_processes():
    ids = ["a", "bb", "longer-id-123", "ünïcødé", "7"]
    alone = [int(id_hash([i])[0]) for i in ids]
    together = id_hash(ids).tolist()
    assert alone == together  # independent of the batch's padding width
    # Pinned literals (FNV-1a over code points + splitmix64, checked against a pure-Python
    # reimplementation): a change here silently re-routes every stored id.
    pinned = ["a", "bb", "7", "ünïcødé"]
    assert id_hash(pinned).tolist() == [198367012849983736, 1719416029514021839, 8857979822077535623,
                                        16317334357942067396]
    assert shard_of(pinned, 4).tolist() == [0, 3, 3, 0]
    assert shard_of(pinned, 3).tolist() == [1, 1, 1, 2]
    assert id_hash(["a"])[0] != id_hash(["a\x01"])[0]


def test_shard_assignment_is_balanced_and_grouping_covers_every_id():
    ids = [str(i) for i in range(20000)]
    counts = np.bincount(shard_of(ids, 4), minlength=4)
    assert counts.min() > 4700 and counts.max() < 5300
    groups = group_by_shard(ids, 4)
    assert sorted(np.concatenate(groups).tolist()) == list(range(20000))
    assert all(np.all(np.diff(g) > 0) for g in groups)  # request order kept within a shard


def test_merge_of_exact_shard_lists_is_the_global_exact_top_k():
    rng = np.random.default_rng(0)
    db = rng.standard_normal((900, 8)).astype(np.float32)
    q = rng.standard_normal((20, 8)).astype(np.float32)
    ids = np.array([f"id{i}" for i in range(900)], dtype=object)
    parts = []
    for s in range(3):
        rows = np.arange(s, 900, 3)
        pos, d = top_k(pairwise_distance(q, db[rows], "l2"), 10)
        parts.append(SearchResult(ids[rows][pos], d))
    merged = merge(parts, 10, len(q))
    pos, d = top_k(pairwise_distance(q, db, "l2"), 10)
    assert np.array_equal(merged.ids, ids[pos])
    assert np.allclose(merged.distances, d)


def test_merge_pads_when_shards_hold_fewer_than_k():
    part = SearchResult(np.array([["x", ""]], dtype=object), np.array([[1.0, np.inf]], np.float32))
    m = merge([part, part], 3, 1)
    assert m.ids.shape == (1, 3) and np.isinf(m.distances[0, 2])


@pytest.mark.parametrize("ids,field,needle", [
    ([], "ids", "1 to 100000"),
    (["a", "b", "a"], "ids", "'a' appears 2 times"),
    (["ok", ""], "ids[1]", "1 to 256"),
    (["x" * 257], "ids[0]", "1 to 256"),
    (["a", "a\x00"], "ids[1]", "NUL"),
    (["a", "🙂" * 256], None, None),  # 256 characters, 1,024 bytes: the largest id that fits both bounds
    ([str(i) for i in range(99_999)] + ["x" * 10_000_000], "ids[99999]", "got 10000000"),
    (["x" * 100_000] + [str(i) for i in range(2_500)], "ids[0]", "1 to 256"),
])
def test_bad_ids_name_the_field(ids, field, needle):
    if field is None:
        assert check_ids(ids) is ids
        return
    with pytest.raises(InvalidArgument) as e:
        check_ids(ids)
    assert e.value.field == field and needle in e.value.message
    assert len(e.value.message) < 200  # never the id itself


def _matrix(rows: int, cols: int) -> common_pb2.Matrix:
    return common_pb2.Matrix(rows=rows, cols=cols, data=bytes(rows * cols * 4))


@pytest.mark.parametrize("request_,exc,field,needle", [
    (points_pb2.GetRequest(collection="c", ids=["a"] * 2 + ["x" * 300]), InvalidArgument, "ids[2]", "1 to 256"),
    (points_pb2.GetRequest(collection="x" * 5000, ids=["a"]), InvalidArgument, "collection", "(5,000 characters)"),
    (points_pb2.DeleteRequest(collection="", ids=["a"]), InvalidArgument, "collection", "got ''"),
    (points_pb2.UpsertRequest(collection="c", ids=["a", "b"], vectors=_matrix(3, 4)), InvalidArgument, "vectors",
     "one row per id (2)"),
    (points_pb2.UpsertRequest(collection="c", ids=["a"], vectors=common_pb2.Matrix(rows=2**31 - 1, cols=2**31 - 1)),
     InvalidArgument, "vectors", "got 2147483647"),
    (points_pb2.UpsertRequest(collection="c", ids=["a"], vectors=common_pb2.Matrix(rows=1, cols=4, data=b"\0" * 7)),
     InvalidArgument, "vectors", "16 bytes"),
    (points_pb2.UpsertRequest(collection="c", ids=["a", "b"], inputs=common_pb2.RawInputs(texts=["t"])),
     InvalidArgument, "inputs", "one input per id (2)"),
    (points_pb2.SearchRequest(collection="c", k=1024, queries=_matrix(10_000, 2)), InvalidArgument, "queries",
     "at most 1,000,000 results"),
    (points_pb2.SearchRequest(collection="c", k=5, queries=_matrix(10_001, 2)), InvalidArgument, "queries", "10001"),
    (points_pb2.SearchRequest(collection="c", k=5, queries=_matrix(0, 0)), InvalidArgument, "queries", "got 0"),
    (points_pb2.SearchRequest(collection="c", k=0, queries=_matrix(1, 2)), InvalidArgument, "k", "[1, 1024]"),
    (points_pb2.SearchRequest(collection="c", k=5, inputs=common_pb2.RawInputs(texts=["t"] * 4097)),
     InvalidArgument, "inputs.texts", "4096"),
    (encoders_pb2.EmbedRequest(model="m" * 10_000), InvalidArgument, "model", "(10,000 characters)"),
    (encoders_pb2.EmbedRequest(model="\x01" * 70), InvalidArgument, "model", "positive integer or 'latest'"),
    (encoders_pb2.EmbedRequest(model="m@" + "\U0010ffff" * 70), InvalidArgument, "model", "'m@"),
    (encoders_pb2.EmbedRequest(model=""), InvalidArgument, "model", "got ''"),
    (points_pb2.GetRequest(collection="c\n", ids=["a"]), InvalidArgument, "collection", "'c\\n'"),
    (encoders_pb2.EmbedRequest(model="m", inputs=common_pb2.RawInputs(texts=["t" * 9000])), InvalidArgument,
     "inputs.texts[0]", "8192"),
    (collections_pb2.CreateCollectionRequest(name="ok", encoder="e@x"), InvalidArgument, "encoder", "version"),
    (collections_pb2.DropCollectionRequest(name="no spaces"), InvalidArgument, "name", "'no spaces'"),
])
def test_requests_are_bounded_before_any_work(request_, exc, field, needle):
    with pytest.raises(exc) as e:
        check_request(request_)
    assert e.value.field == field and needle in e.value.message, e.value.message
    assert len(e.value.message) < 300


def test_requests_within_bounds_pass():
    for ok in (points_pb2.SearchRequest(collection="c", k=100, queries=_matrix(10_000, 2)),
               points_pb2.UpsertRequest(collection="c.1-x_", ids=["a", "b"], vectors=_matrix(2, 4)),
               points_pb2.UpsertRequest(collection="c", ids=["a"], inputs=common_pb2.RawInputs(texts=["t"])),
               points_pb2.GetRequest(collection="c", ids=[str(i) for i in range(100_000)]),
               collections_pb2.ListCollectionsRequest(), encoders_pb2.EmbedRequest(model="m@3"),
               encoders_pb2.EmbedRequest(model="digits-cnn@latest"),
               collections_pb2.CreateCollectionRequest(name="c", encoder="")):
        check_request(ok)


def test_reply_size_is_bounded_before_the_search_runs():
    check_reply_size(1000, 1000)  # MAX_RESULTS exactly, short ids: ~40 MB
    with pytest.raises(InvalidArgument, match="at most 1,000,000"):
        check_reply_size(1024, 10_000)
    with pytest.raises(ResourceExhausted) as e:  # within MAX_RESULTS, but 1 KB ids would make ~1 GB
        check_reply_size(1000, 1000, id_bytes=MAX_ID_BYTES)
    assert "64 MiB" in e.value.message and e.value.code == "RESOURCE_EXHAUSTED"
    check_reply_size(50, 1000, id_bytes=MAX_ID_BYTES)  # 50,000 hits of 1 KB ids: ~50 MB
    assert MAX_RESULTS * 42 < MAX_MESSAGE_BYTES


def test_get_reply_size_is_bounded_by_the_dimension():
    ids = [f"id-{i}" for i in range(100_000)]
    check_get_reply(ids, 8)
    with pytest.raises(ResourceExhausted, match="at most about 4,0") as e:
        check_get_reply(ids, 4096)  # 1.6 GB of vectors
    assert e.value.field == "ids"


def test_log_throttle_logs_once_per_interval_with_a_count():
    now = [0.0]
    t = LogThrottle(10.0, clock=lambda: now[0])
    assert t.admit("k") == (1, 0.0)
    for _ in range(5):
        now[0] += 1
        assert t.admit("k") is None
    assert t.admit("other") == (1, 0.0)  # keys are independent
    now[0] = 12.0
    assert t.admit("k") == (6, 12.0)  # the five held back, and this one
    assert t.admit("k") is None


def test_an_undecodable_body_becomes_a_sentinel_not_an_exception():
    decode = request_deserializer("Points/Get", points_pb2.GetRequest)
    assert decode(points_pb2.GetRequest(collection="c").SerializeToString()).collection == "c"
    bad = decode(b"\x12\x05ab")
    assert isinstance(bad, Undecodable) and bad.nbytes == 4
    err = undecodable_error(bad)
    assert err.code == "INVALID_ARGUMENT" and err.message == "request body: could not be decoded as GetRequest (4 bytes)"
    assert undecodable_error(points_pb2.GetRequest()) is None
    with pytest.raises(InvalidArgument):  # code that reads a field without checking first still refuses it
        bad.collection


def test_bad_vectors_and_search_params_name_the_field():
    spec = CollectionSpec(name="c", dim=3, metric="cosine")
    cases = [
        (lambda: check_vectors(np.ones((2, 4), np.float32), spec, "vectors"), "vectors", "dimension 3"),
        (lambda: check_vectors(np.array([[1, np.inf, 0]], np.float32), spec, "vectors"), "vectors[0]", "finite"),
        (lambda: check_vectors(np.zeros((1, 3), np.float32), spec, "vectors"), "vectors[0]", "zero norm"),
        (lambda: check_vectors(np.ones((2, 3), np.float32), spec, "vectors", rows=3), "vectors", "one row per id"),
        (lambda: check_search(0, 0, 0, False, 0, False, False), "k", "[1, 1024]"),
        (lambda: check_search(1025, 0, 0, False, 0, False, False), "k", "got 1025"),
        (lambda: check_search(10, -1, 0, False, 0, False, False), "params.leaves_to_search", "got -1"),
        (lambda: check_search(10, 0, 65, False, 0, False, False), "params.oversample", "[1, 64]"),
        (lambda: CollectionSpec(name="c", dim=0), "dim", "[1, 4096]"),
        (lambda: CollectionSpec(name="c", dim=3, metric="hamming"), "metric", "{l2, dot, cosine}"),
        (lambda: CollectionSpec(name="bad name", dim=3), "name", "A-Za-z0-9"),
        (lambda: CollectionSpec(name="c", dim=3, shards=65), "shards", "[1, 64]"),
        (lambda: IndexParams(num_leaves=10, leaves_to_search=11), "index.leaves_to_search", "<= index.num_leaves (10)"),
    ]
    for call, field, needle in cases:
        with pytest.raises(InvalidArgument) as e:
            call()
        assert e.value.field == field, e.value.message
        assert needle in e.value.message, e.value.message


def test_catalog_persists_tenants_and_collections(tmp_path):
    cat = Catalog(tmp_path)
    key = cat.bootstrap(None)
    assert key and cat.authenticate(key).tenant == "default"
    assert key.encode() not in (tmp_path / "catalog.sqlite").read_bytes()
    rec = cat.add("default", CollectionSpec(name="c1", dim=4, metric="dot", shards=2))
    with pytest.raises(AlreadyExists):
        cat.add("default", CollectionSpec(name="c1", dim=4))
    again = Catalog(tmp_path)
    assert again.bootstrap(None) is None  # no second key on restart
    assert again.get("default", "c1") == rec and again.names("other") == []
    again.remove("default", "c1")
    with pytest.raises(NotFound):
        Catalog(tmp_path).get("default", "c1")


def test_a_bug_hit_by_every_request_logs_one_traceback_per_interval(caplog):
    from simsearch.router.servicers import bug

    caplog.set_level(logging.ERROR, logger="simsearch.router.servicers")
    answers = []
    for _ in range(50):
        try:
            raise KeyError("boom")
        except KeyError:
            answers.append(bug("TestMethod"))
    assert {a.code for a in answers} == {"INTERNAL"} and "TestMethod" in answers[0].message
    records = [r for r in caplog.records if "TestMethod" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is not None


def test_longest_utf8_measures_bytes_not_characters():
    from simsearch.contract.limits import longest_utf8

    assert longest_utf8([]) == 0
    assert longest_utf8(["a", "bcd"]) == 3  # ASCII: lengths alone
    assert longest_utf8(["abc", "ünï"]) == 5  # ü and ï take two bytes each
    assert longest_utf8(["😀"]) == 4
