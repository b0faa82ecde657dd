"""Declared payload indexes: typed fields checked on every write (the point and the field named), filters
checked against the types, columns read in the background and kept, the unindexed fields a filter reads
reported in the reply, datetimes compared as instants; declarations durable across restarts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import API_KEY, start_server
from simsearch import Client, FailedPrecondition, InvalidArgument, NotFound
from simsearch.contract import filters as F
from simsearch.contract.datetimes import parse_datetime
from simsearch.contract.payload_index import admits, check_documents, check_filter, check_indexes
from simsearch.contract.payloads import encode
from simsearch.shard import IndexParams, Shard
from simsearch.shard.filtering import SegmentFilter
from simsearch.shard.storage import Rows, Sealed

SCHEMA = {"color": "keyword", "qty": "integer", "price": "float", "sale": "bool", "at": "datetime"}


# ---- the rules, in-process ----


@pytest.mark.unit
def test_datetimes_parse_as_instants_utc_when_no_offset():
    z = parse_datetime("2026-01-01T00:00:00Z")
    assert z == parse_datetime("2026-01-01T01:00:00+01:00") == parse_datetime("2026-01-01") \
        == parse_datetime("2026-01-01T00:00:00")
    assert parse_datetime("2026-01-01T00:00:00.000001Z") == z + 1
    assert parse_datetime("1969-12-31T23:59:59Z") == -1_000_000
    for bad in ("", "yesterday", "2026-13-01", "2026-01-01T25:00:00Z", 5, None, "2026-01-01T00:00:00Z" + " " * 60):
        assert parse_datetime(bad) is None


@pytest.mark.unit
@pytest.mark.parametrize("kind, good, bad", [
    ("keyword", ["a", ["a", "b"], None, []], [1, True, ["a", 1], 1.5]),
    ("integer", [1, -(2**63), [1, 2], None], [1.5, "1", True, [1, "x"]]),
    ("float", [1, 1.5, [1, 2.5], None], ["1", False, [1.0, None]]),
    ("bool", [True, [True, False], None], [1, 0, "true"]),
    ("datetime", ["2026-01-01T00:00:00Z", ["2026-01-01", "2025-06-01T12:00:00+02:00"], None],
     ["soon", 1700000000, ["2026-01-01", "x"]]),
])
def test_each_type_admits_its_values_null_and_lists_of_them(kind, good, bad):
    assert all(admits(kind, v) for v in good)
    assert not any(admits(kind, v) for v in bad)


@pytest.mark.unit
def test_a_write_of_the_wrong_type_is_refused_naming_the_point_and_the_field():
    texts = [encode({"color": "red", "qty": 3}), "", encode({"qty": "three", "note": 1})]
    with pytest.raises(InvalidArgument) as e:
        check_documents(texts, ["a", "b", "c"], SCHEMA)
    assert e.value.field == "payloads[2].qty"
    assert "point 'c'" in e.value.message and "'qty' is indexed as integer" in e.value.message
    assert '"three"' in e.value.message
    check_documents([encode({"price": 3, "at": "2026-01-01", "sale": None, "other": "x"})], ["d"], SCHEMA)
    with pytest.raises(InvalidArgument, match=r"declared twice"):
        check_indexes([("a", "keyword"), ("a", "integer")])
    with pytest.raises(InvalidArgument) as e:
        check_indexes([("a", "text")])
    assert e.value.field == "payload_indexes[0].type" and "keyword, integer, float, bool, datetime" in e.value.message


@pytest.mark.unit
def test_filters_are_checked_against_the_declared_types():
    assert check_filter(F.parse({"color": "red", "size": 3, "$or": [{"qty": {"$gt": 2}}, {"n": 1}]}), SCHEMA) \
        == ["n", "size"]
    assert check_filter(F.parse({"at": {"$gte": "2026-01-01"}, "qty": {"$lt": 2.5}, "color": None}), SCHEMA) == []
    for bad, field, fragment in [
        ({"color": 5}, "filter.color", "indexed as keyword"),
        ({"color": {"$gt": 1}}, "filter.color", "ranges apply to integer, float and datetime fields"),
        ({"qty": {"$in": ["1", "2"]}}, "filter.qty", "indexed as integer"),
        ({"at": {"$lt": 5}}, "filter.at", "needs an RFC 3339 datetime string"),
        ({"price": {"$gte": "2026-01-01"}}, "filter.price", "needs a number"),
        ({"$not": {"sale": "yes"}}, "filter.sale", "indexed as bool"),
    ]:
        with pytest.raises(InvalidArgument) as e:
            check_filter(F.parse(bad), SCHEMA)
        assert e.value.field == field and fragment in e.value.message, e.value.message


@pytest.mark.unit
def test_unindexed_columns_stay_within_the_budget_and_indexed_ones_are_kept():
    rng = random.Random(0)
    n = 2000
    texts = [encode({"color": rng.choice("rgb"), "note": f"text {i} " + "x" * 50, "n": i}) for i in range(n)]
    sealed = Sealed.build(np.zeros((n, 2), np.float32), [f"p{i}" for i in range(n)], payloads=texts)
    view = Rows.assemble(sealed, np.ones(n, bool), np.zeros((0, 2), np.float32), [], np.zeros(0, bool)).view()
    sf = SegmentFilter(budget=50_000)  # the "note" column (2,000 distinct strings) does not fit; "n" does
    sf.set_indexed(frozenset({"color"}))
    assert sf.count(view, F.parse({"note": "text 7 " + "x" * 50})) == 1
    assert sf.count(view, F.parse({"n": {"$lt": 10}})) == 10
    kept = sf.sealed_columns(view.sealed, frozenset())
    assert "note" not in kept.fields and "n" in kept.fields  # used once, then dropped; the small one kept
    assert sf.count(view, F.parse({"color": "r"})) == sum('"color":"r"' in t for t in texts)
    assert sf.unindexed_bytes() <= 50_000
    for _ in range(3):  # the over-budget field is read again each time, and answers the same
        assert sf.count(view, F.parse({"note": {"$in": ["text 1 " + "x" * 50, "text 2 " + "x" * 50]}})) == 2
    assert "color" in sf.sealed_columns(view.sealed, frozenset()).fields
    assert sf.prebuild_fields() >= {"color", "n"}


@pytest.mark.unit
def test_a_shard_reads_declared_fields_in_the_background_and_counts_bad_values():
    shard = Shard(4, "l2", IndexParams(min_index_size=64), background=False)
    try:
        vecs = np.random.default_rng(0).standard_normal((300, 4)).astype(np.float32)
        docs = [encode({"qty": i if i % 50 else "many", "color": "r"}) for i in range(300)]
        shard.upsert([f"p{i}" for i in range(300)], vecs, docs)
        shard.build_index()
        shard.upsert(["late"], vecs[:1], [encode({"qty": 2.5})])
        shard.set_payload_indexes({"qty": "integer", "size": "float"})
        assert shard.wait_payload_indexes(30)
        stats = shard.stats()["payload_indexes"]
        assert stats["qty"] == {"type": "integer", "state": "ready", "points": 301, "invalid": 7}  # 6 strings + 2.5
        assert stats["size"] == {"type": "float", "state": "ready", "points": 0, "invalid": 0}
        shard.delete(["p0", "late"])
        assert shard.stats()["payload_indexes"]["qty"]["invalid"] == 5
        assert shard.count(F.parse({"qty": {"$gte": 250}})) == 49
    finally:
        shard.close(save=False)


# ---- through a real server ----

DIM = 8


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


@pytest.mark.integration
def test_payload_indexes_end_to_end_and_across_a_restart(tmp_path):
    n = 400
    ids = [f"p{i}" for i in range(n)]
    base = np.datetime64("2026-01-01T00:00:00")
    docs = [{"color": "red" if i % 4 == 0 else "blue", "qty": i, "price": i / 4,
             "at": str(base + np.timedelta64(i, "h")) + "Z", "note": f"n{i % 7}"} for i in range(n)]
    server = start_server(tmp_path / "data")
    try:
        with Client(server.address, api_key=API_KEY) as c:
            info = c.create_collection("shop", DIM, shards=2, payload_indexes={"color": "keyword", "qty": "integer"},
                                       min_index_size=64)
            assert set(info.payload_indexes) == {"color", "qty"}
            c.upsert("shop", ids, _vectors(n), payloads=docs)

            # a write of the wrong type: refused whole, naming the point and the field; nothing changed
            bad = [{"color": "red", "qty": 1}, {"color": 7, "qty": 2}]
            with pytest.raises(InvalidArgument) as e:
                c.upsert("shop", ["p0", "new"], _vectors(2, 9), payloads=bad)
            assert e.value.field == "payloads[1].color" and "point 'new'" in e.value.message
            with pytest.raises(InvalidArgument, match=r"'qty' is indexed as integer"):
                c.set_payload("shop", ["p1"], {"qty": "lots"})
            got = c.get("shop", ["p0", "p1", "new"])
            assert got.missing == ["new"] and got.payloads[0]["qty"] == 0 and got.payloads[1]["qty"] == 1
            assert np.allclose(got.vectors[0], _vectors(n)[0])

            # a filter that can never match an indexed field's type is refused; unindexed fields are reported
            with pytest.raises(InvalidArgument) as e:
                c.search("shop", _vectors(1, 5), 5, filter={"qty": {"$in": ["1"]}})
            assert e.value.field == "filter.qty"
            with pytest.raises(InvalidArgument):
                c.count("shop", {"color": {"$gt": "a"}})
            res = c.search("shop", _vectors(2, 5), 5, filter={"color": "red", "note": "n3"}, with_payload=["qty", "note"])
            assert res.unindexed_fields == ("note",)
            hits = [p for row in res.payloads for p in row if p is not None]
            assert hits and all(set(p) == {"qty", "note"} and p["note"] == "n3" and p["qty"] % 4 == 0 for p in hits)
            assert c.search("shop", _vectors(1, 5), 5, filter={"color": "red"}).unindexed_fields == ()

            # declared later, on data already stored: read in the background; values of other types counted
            c.set_payload("shop", ["p5"], {"price": "free"})
            info = c.create_payload_index("shop", "price", "float", wait=True)
            assert info.payload_indexes["price"] == {"type": "float", "state": "ready", "points": n,
                                                     "invalid_points": 1}
            c.create_payload_index("shop", "price", "float")  # the same again: nothing changes
            with pytest.raises(FailedPrecondition, match=r"already indexed as float; drop that index first"):
                c.create_payload_index("shop", "price", "keyword")
            with pytest.raises(InvalidArgument) as e:
                c.create_payload_index("shop", "x", "text")
            assert e.value.field == "type"
            c.create_payload_index("shop", "at", "datetime")

            # datetimes compare as instants, whatever offset the bound is written with
            lo, hi = "2026-01-02T01:00:00+01:00", "2026-01-03T00:00:00Z"  # hours 24 (inclusive) .. 48 (exclusive)
            assert c.count("shop", {"at": {"$gte": lo, "$lt": hi}}) == 24
            res = c.search("shop", _vectors(3, 6), 10, filter={"at": {"$gte": lo, "$lt": hi}}, with_payload=True)
            assert all(24 <= p["qty"] < 48 for row in res.payloads for p in row if p is not None)
            assert (res.ids != "").sum(axis=1).tolist() == [10, 10, 10]

            # delete_payload_keys, and a dropped index no longer checks types
            assert c.delete_payload_keys("shop", ["p2", "missing"], ["note", "at"]) == 1
            assert c.get("shop", ["p2"]).payloads[0] == {"color": "red" if 2 % 4 == 0 else "blue", "qty": 2,
                                                         "price": 0.5}
            c.drop_payload_index("shop", "color")
            with pytest.raises(NotFound):
                c.drop_payload_index("shop", "color")
            c.set_payload("shop", ["p3"], {"color": 3})
    finally:
        server.stop()

    server = start_server(tmp_path / "data")
    try:
        with Client(server.address, api_key=API_KEY) as c:
            info = c.describe_collection("shop")
            assert {f: v["type"] for f, v in info.payload_indexes.items()} == {"qty": "integer", "price": "float",
                                                                               "at": "datetime"}
            with pytest.raises(InvalidArgument, match=r"point 'p9'.*'qty' is indexed as integer"):
                c.upsert("shop", ["p9"], _vectors(1), payloads=[{"qty": "nine"}])
            assert c.count("shop", {"color": 3}) == 1 and c.count("shop", {"qty": {"$lt": 10}}) == 10
            c.drop_collection("shop")
            info = c.create_collection("shop", DIM)  # the same name again: none of the old declarations
            assert info.payload_indexes == {}
            c.upsert("shop", ["a"], _vectors(1), payloads=[{"qty": "any"}])
    finally:
        server.stop()


@pytest.mark.integration
def test_payload_indexes_on_each_placement(server, client):
    """Local shards and Ray actors alike: declared at creation and later, checked, built, reported."""
    name = "pix"
    client.create_collection(name, DIM, shards=2, payload_indexes={"kind": "keyword"})
    try:
        client.upsert(name, [f"p{i}" for i in range(60)], _vectors(60, 3),
                      payloads=[{"kind": "ab"[i % 2], "n": i} for i in range(60)])
        with pytest.raises(InvalidArgument, match=r"point 'x'.*'kind' is indexed as keyword"):
            client.upsert(name, ["x"], _vectors(1), payloads=[{"kind": 1}])
        info = client.create_payload_index(name, "n", "integer", wait=True)
        assert {f: (v["state"], v["points"]) for f, v in info.payload_indexes.items()} == {"kind": ("ready", 60),
                                                                                           "n": ("ready", 60)}
        res = client.search(name, _vectors(2, 4), 5, filter={"kind": "a", "n": {"$lt": 20}, "m": {"$exists": False}})
        assert res.unindexed_fields == ("m",)
        assert all(int(x[1:]) % 2 == 0 and int(x[1:]) < 20 for x in res.ids.ravel() if x)
    finally:
        client.drop_collection(name)
