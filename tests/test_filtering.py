"""Filters over a shard's rows (shard/filtering.py) against the reference `contract.filters.matches`:
10,000+ random filters over random payloads with zero disagreements, the exact int/float edges,
a real Rows/View (sealed + fresh + deleted rows, caches reused and grown), and a printed
measurement of build and evaluation times over 100k rows (`pytest -s` shows it)."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest

from random_filters import FIELDS, I64_MAX, I64_MIN, MISSING  # noqa: F401
from random_filters import condition as _condition, payloads as _payloads, random_filter as _filter
from simsearch.contract import filters as F
from simsearch.contract.filters import And, Condition, Not, Or
from simsearch.contract.payloads import encode
from simsearch.shard.filtering import Columns, SegmentFilter, evaluate
from simsearch.shard.storage import Rows, Sealed

pytestmark = pytest.mark.unit



def _reference(f: F.Filter, leaf: dict[Condition, np.ndarray]) -> np.ndarray:
    """`matches` over every row, its leaves memoised: And/Or/Not in `matches` are all/any/not."""
    if isinstance(f, Condition):
        return leaf[f]
    if isinstance(f, Not):
        return ~_reference(f.item, leaf)
    parts = [_reference(i, leaf) for i in f.items]
    return np.logical_and.reduce(parts) if isinstance(f, And) else np.logical_or.reduce(parts)


def test_ten_thousand_random_filters_agree_with_the_reference_on_every_row():
    rng = random.Random(16)
    n = 2000
    texts = _payloads(rng, n)
    dicts = [json.loads(t or "{}") for t in texts]
    cols = Columns.build(texts)
    assert cols.n == n
    # A pool of leaf conditions, each evaluated by the reference on every row once.
    pool = list({_condition(rng) for _ in range(900)})
    leaf = {c: np.fromiter((F.matches(c, d) for d in dicts), bool, n) for c in pool}
    disagreements = []
    for c in pool:  # every leaf alone
        got = evaluate(c, cols, n)
        if not np.array_equal(got, leaf[c]):
            disagreements.append((c, np.flatnonzero(got != leaf[c])[:5].tolist()))
    for i in range(10_000):
        f = _filter(rng, pool)
        got = evaluate(f, cols, n)
        want = _reference(f, leaf)
        if not np.array_equal(got, want):
            disagreements.append((F.canonical(f), np.flatnonzero(got != want)[:5].tolist()))
        # and `matches` itself, unmemoised, on the whole tree for a sample of rows
        for r in rng.sample(range(n), 16):
            if F.matches(f, dicts[r]) != got[r]:
                disagreements.append((F.canonical(f), [r]))
        assert len(got) == n and got.dtype == bool
    assert not disagreements, disagreements[:10]
    # the generator reached every op, the missing field, and both outcomes
    ops = {c.op for c in pool}
    assert ops == set(F.OPS)
    fractions = [leaf[c].mean() for c in pool]
    assert min(fractions) == 0 and max(fractions) == 1 and sum(0 < x < 1 for x in fractions) > 300


EDGES = [
    {"v": 2**53 + 1}, {"v": 2.0**53}, {"v": 2**53}, {"v": I64_MAX}, {"v": I64_MIN}, {"v": 9.223372036854776e18},
    {"v": -9.223372036854776e18}, {"v": 5}, {"v": 5.0}, {"v": "5"}, {"v": True}, {"v": 1}, {"v": False},
    {"v": 0}, {"v": -0.0}, {"v": None}, {"v": []}, {"v": [5, 25]}, {"v": ["a", True, 1.5]}, {"v": 2.5},
    {"v": [2**53 + 1]}, {"w": 1}, {},
]
EDGE_FILTERS = [
    {"v": 2**53 + 1}, {"v": 2.0**53}, {"v": {"$gt": 2**53}}, {"v": {"$gte": 2**53 + 1}}, {"v": {"$lt": 2**53 + 1}},
    {"v": {"$lte": 2.0**53}}, {"v": {"$gt": I64_MAX}}, {"v": {"$gte": I64_MAX}}, {"v": {"$lt": I64_MIN}},
    {"v": {"$lte": I64_MIN}}, {"v": {"$gt": 9.223372036854776e18}}, {"v": {"$gte": 9.223372036854776e18}},
    {"v": {"$lt": -9.223372036854776e18}}, {"v": {"$lte": -9.223372036854776e18}}, {"v": {"$gt": 1e300}},
    {"v": {"$lt": -1e300}}, {"v": {"$gt": 2.5}}, {"v": {"$gte": 2.5}}, {"v": {"$lt": 2.5}}, {"v": {"$lte": 2.5}},
    {"v": 5}, {"v": "5"}, {"v": True}, {"v": 1}, {"v": 0}, {"v": 0.0}, {"v": None}, {"v": {"$ne": None}},
    {"v": {"$ne": 5}}, {"v": {"$nin": [5, 7]}}, {"v": {"$in": []}}, {"v": {"$nin": []}},
    {"v": {"$in": [True]}}, {"v": {"$in": [1, 2**53 + 1]}}, {"v": {"$in": [2.0**53]}}, {"v": {"$exists": True}},
    {"v": {"$exists": False}}, {"v": {"$contains": 5}}, {"v": {"$contains": True}}, {"v": {"$contains": 1}},
    {"v": {"$gte": 10, "$lt": 20}}, {"$not": {"v": {"$gt": 2}}}, {"$not": {"v": {"$contains": "a"}}},
    {"$or": [{"v": "a"}, {"w": {"$exists": True}}]}, {"v": {"$eq": I64_MIN}}, {"v": {"$eq": float(I64_MIN)}},
]


def test_the_exact_edges_agree_with_the_reference():
    texts = [encode(p) for p in EDGES]
    cols = Columns.build(texts)
    for spec in EDGE_FILTERS:
        f = F.parse(spec)
        want = np.array([F.matches(f, p) for p in EDGES])
        got = evaluate(f, cols)
        assert np.array_equal(got, want), (spec, np.flatnonzero(got != want).tolist())


def test_columns_are_arrays_not_per_row_objects():
    texts = [encode({"s": f"s{i % 7}", "i": i, "x": i / 3, "b": i % 2 == 0, "l": [i, "t"]}) for i in range(1000)]
    col = Columns.build(texts).fields
    assert set(col) == {"s", "i", "x", "b", "l"}
    assert col["i"].int_values.dtype == np.int64 and col["x"].float_values.dtype == np.float64
    assert col["s"].str_rows.dtype == np.int32 and len(col["s"].str_codes) == 7
    assert len(col["l"].lists) == 1000 and len(col["l"].int_values) == 1000 and len(col["l"].str_rows) == 1000
    assert Columns.build([]).n == 0 and evaluate(Condition("s", "ne", "x"), Columns.build([])).shape == (0,)
    assert evaluate(Condition("s", "ne", "x"), Columns(5)).all()


def _reference_mask(view, f) -> np.ndarray:
    texts = view.payload_list(np.arange(view.n))
    return np.array([F.matches(f, json.loads(t or "{}")) for t in texts], bool) & view.alive[:view.n]


def test_mask_for_covers_sealed_and_fresh_rows_and_respects_liveness():
    rng = random.Random(7)
    dim, s = 4, 600
    texts = _payloads(rng, s)
    ids = [f"p{i}" for i in range(s)]
    sealed = Sealed.build(np.zeros((s, dim), np.float32), ids, payloads=texts)
    rows = Rows.assemble(sealed, np.ones(s, bool), np.zeros((0, dim), np.float32), [], np.zeros(0, bool))
    rows.append([f"q{i}" for i in range(150)], np.zeros((150, dim), np.float32), _payloads(rng, 150))
    rows.kill([f"p{i}" for i in range(0, s, 7)] + [f"q{i}" for i in range(0, 150, 5)])
    # an overwrite: the old sealed row dies, the new fresh row carries the new payload
    rows.append(["p1", "p3"], np.zeros((2, dim), np.float32), [encode({"f0": "new"}), ""])
    sf = SegmentFilter()
    pool = list({_condition(rng) for _ in range(60)})
    filters = pool + [_filter(rng, pool) for _ in range(120)] + [F.parse({"f0": "new"})]
    view = rows.view()
    for f in filters:
        got = sf.mask_for(view, f)
        assert np.array_equal(got, _reference_mask(view, f)), F.canonical(f)
        assert sf.count(view, f) == int(got.sum())
    new = F.parse({"f0": "new"})
    assert sf.rows_for(view, new).tolist() == [view.n - 2]
    assert not sf.mask_for(view, F.parse({"$not": {"f0": "new"}}))[[1, 3]].any()  # dead rows never pass
    assert sf.count(view) == rows.live

    # the sealed columns are built once per generation and reused
    first = sf.sealed_columns(sealed)
    assert sf.sealed_columns(sealed) is first
    # the fresh segment grows in place: later views see the new rows, an older view still only its own
    old = view
    for step in range(5):
        rows.append([f"r{step}-{i}" for i in range(30 * step + 1)], np.zeros((30 * step + 1, dim), np.float32),
                    _payloads(rng, 30 * step + 1))
        rows.kill([f"q{step}", f"r{step}-0"])
        view = rows.view()
        for f in filters[::6]:
            assert np.array_equal(sf.mask_for(view, f), _reference_mask(view, f)), F.canonical(f)
    assert sf.sealed_columns(sealed) is first
    chunks = sf.fresh_chunks(view)
    assert chunks[0].start == 0 and chunks[-1].stop == view.n - view.s and len(chunks) <= 6
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
    for f in filters[::10]:
        assert np.array_equal(sf.mask_for(old, f), _reference_mask(old, f))
        assert len(sf.mask_for(old, f)) == old.n

    # a rebuild: a new generation (no payloads at all) and a new fresh list
    live = np.flatnonzero(rows.alive[:rows.n])
    sealed2 = Sealed.build(np.zeros((len(live), dim), np.float32), view.id_list(live))  # payloads dropped: None
    rows2 = Rows.assemble(sealed2, np.ones(len(live), bool), np.zeros((1, dim), np.float32), ["z"], np.ones(1, bool),
                          [encode({"f1": 5})])
    view2 = rows2.view()
    assert sf.mask_for(view2, F.parse({"f1": 5})).tolist() == [False] * len(live) + [True]
    assert sf.count(view2, F.parse({"f1": {"$exists": False}})) == len(live)
    # an empty shard
    empty = Rows(dim).view()
    assert sf.mask_for(empty, F.parse({"f1": 5})).shape == (0,) and sf.count(empty, F.parse({"f1": 5})) == 0


def test_measure_build_and_evaluate_over_100k_rows():
    """Printed, not asserted: the figures the exact-vs-ScaNN threshold is chosen from."""
    rng = np.random.default_rng(0)
    n = 100_000
    cats = [f"cat{i}" for i in range(50)]
    weights = 1 / np.arange(1, 51)
    cat = rng.choice(50, n, p=weights / weights.sum())
    price = np.round(rng.uniform(0, 1000, n), 2)
    qty = rng.integers(0, 10_000, n)
    sale = rng.random(n) < 0.3
    tags = rng.integers(0, 20, (n, 3))
    texts = [json.dumps({"category": cats[c], "price": float(p), "qty": int(q), "on_sale": bool(b),
                         "tags": [f"t{t}" for t in tg]}, sort_keys=True, separators=(",", ":"))
             for c, p, q, b, tg in zip(cat.tolist(), price.tolist(), qty.tolist(), sale.tolist(), tags.tolist())]
    t0 = time.perf_counter()
    cols = Columns.build(texts)
    build = time.perf_counter() - t0
    filters = {
        "eq keyword (~17%)": {"category": "cat0"},
        "eq keyword (~0.4%)": {"category": "cat40"},
        "range float (10%)": {"price": {"$gte": 100, "$lt": 200}},
        "range int (1%)": {"qty": {"$lt": 100}},
        "in 5 keywords": {"category": {"$in": ["cat1", "cat3", "cat5", "cat7", "cat9"]}},
        "contains tag": {"tags": {"$contains": "t3"}},
        "and of two (~0.1%)": {"category": "cat2", "price": {"$lt": 10}},
        "or/not mix": {"$or": [{"on_sale": True}, {"$not": {"qty": {"$gte": 50}}}]},
        "ne + nin": {"category": {"$ne": "cat0"}, "tags": {"$nin": ["t1", "t2"]}},
    }
    lines = [f"build 100k rows x 5 fields: {build * 1e3:.0f} ms, {cols.nbytes / 2**20:.1f} MiB of arrays"]
    for name, spec in filters.items():
        f = F.parse(spec)
        evaluate(f, cols)
        reps = 20
        t0 = time.perf_counter()
        for _ in range(reps):
            mask = evaluate(f, cols)
        per = (time.perf_counter() - t0) / reps
        lines.append(f"{name:22s} {per * 1e3:7.2f} ms  passes {mask.mean():7.3%}")
    print("\nfiltering over 100k rows:\n  " + "\n  ".join(lines))
    # a light check that the figures are about the right thing
    assert evaluate(F.parse({"category": "cat0"}), cols).sum() == int((cat == 0).sum())


def test_concurrent_searches_build_each_segment_once_and_agree(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(3)
    dim = 2
    sealed = Sealed.build(np.zeros((500, dim), np.float32), [f"p{i}" for i in range(500)],
                          payloads=_payloads(rng, 500))
    rows = Rows.assemble(sealed, np.ones(500, bool), np.zeros((0, dim), np.float32), [], np.zeros(0, bool))
    rows.append([f"q{i}" for i in range(300)], np.zeros((300, dim), np.float32), _payloads(rng, 300))
    view, sf = rows.view(), SegmentFilter()
    built = []
    real = Columns.build
    monkeypatch.setattr(Columns, "build", classmethod(lambda cls, texts, fields=None: built.append(len(texts)) or real(texts, fields)))
    f = F.parse({"$or": [{"f0": {"$gte": 1}}, {"tags": {"$contains": "a"}}]})
    with ThreadPoolExecutor(8) as pool:
        masks = list(pool.map(lambda _: sf.mask_for(view, f), range(32)))
    assert all(np.array_equal(m, masks[0]) for m in masks)
    assert np.array_equal(masks[0], _reference_mask(view, f))
    assert sorted(built) == [300, 500]  # one sealed build, one fresh chunk
