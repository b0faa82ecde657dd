"""Random payloads and random filters for the filter tests: every kind, the int/float edges (2**53,
the int64 bounds), lists, nulls, missing fields, nested And/Or/Not,
datetime strings and datetime range bounds."""

from __future__ import annotations

import random

from simsearch.contract import filters as F
from simsearch.contract.filters import And, Condition, Not, Or
from simsearch.contract.payloads import encode

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
INTS = [0, 1, -1, 2, 5, 7, 10, 2**53 - 1, 2**53, 2**53 + 1, 2**53 + 2, -(2**53) - 1, -(2**53), 2**62,
        I64_MAX, I64_MAX - 1, I64_MIN, I64_MIN + 1, 2**63 - 1024, 2**63 - 513]
FLOATS = [0.0, -0.0, 0.5, 1.0, 2.0, 2.5, -1.5, 5.0, 9.99, 2.0**53, 2.0**53 + 2, float(2**53 + 1), -(2.0**53),
          9.223372036854776e18, -9.223372036854776e18, 1e300, -1e300, 1e-300, 7.000000000000001, 2.0**62]
STRINGS = ["a", "b", "c", "red", "5", "1", "true", "null", "", "é", "a b"]
# datetimes (the same instant written three ways, a date alone, no offset = UTC, before 1970) among the strings
DATETIMES = ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", "2026-01-01", "2026-01-01T00:00:00",
             "2025-12-31T23:59:59.999999Z", "2026-06-15T12:30:00-05:00", "1969-07-20T20:17:00Z"]
STRINGS += DATETIMES
FIELDS = ["f0", "f1", "f2", "f3", "tags", "x.y"]
MISSING = "nowhere"  # a field no payload holds


def scalar(rng: random.Random, *, null: bool) -> object:
    r = rng.random()
    if r < 0.3:
        return rng.choice(INTS)
    if r < 0.55:
        return rng.choice(FLOATS)
    if r < 0.8:
        return rng.choice(STRINGS)
    if r < 0.93 or not null:
        return rng.random() < 0.5
    return None


def value(rng: random.Random) -> object:
    if rng.random() < 0.25:
        return [scalar(rng, null=False) for _ in range(rng.randrange(0, 5))]
    return scalar(rng, null=True)


def payloads(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        if rng.random() < 0.1:
            out.append("")
            continue
        out.append(encode({name: value(rng) for name in FIELDS if rng.random() < 0.6}))
    return out


def condition(rng: random.Random) -> Condition:
    name = MISSING if rng.random() < 0.05 else rng.choice(FIELDS)
    op = rng.choice(F.OPS)
    if op == "exists":
        return Condition(name, op, rng.random() < 0.5)
    if op in F.RANGE_OPS:
        r = rng.random()
        v = rng.choice(INTS) if r < 0.4 else rng.choice(FLOATS) if r < 0.8 else rng.choice(DATETIMES)
        return Condition(name, op, v)
    if op in F.LIST_OPS:
        kind = rng.randrange(3)
        pool = INTS + FLOATS if kind == 0 else STRINGS if kind == 1 else [True, False]
        return Condition(name, op, tuple(rng.choice(pool) for _ in range(rng.randrange(0, 4))))
    v = scalar(rng, null=op != "contains")
    return Condition(name, op, v)


def random_filter(rng: random.Random, pool: list[Condition], depth: int = 0) -> F.Filter:
    r = rng.random()
    if depth >= 4 or r < 0.35:
        return rng.choice(pool)
    if r < 0.55:
        return Not(random_filter(rng, pool, depth + 1))
    items = tuple(random_filter(rng, pool, depth + 1) for _ in range(rng.randrange(1, 4)))
    return And(items) if r < 0.8 else Or(items)


