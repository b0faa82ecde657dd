"""The filter language on its own: parse errors that name their path, limits refused before any
value is read, the canonical form (equivalent spellings share it, and it means what the filter
means), dict <-> AST <-> proto round trips, hostile messages, and the reference evaluator."""

from __future__ import annotations

import json
import pickle
import random
import time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simsearch.contract import filters as F
from simsearch.contract.errors import InvalidArgument
from simsearch.contract.limits import (MAX_FIELD_NAME_CHARS, MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH,
                                       MAX_FILTER_IN_VALUES)
from simsearch.protos import filters as P
from simsearch.protos.simsearch.v1 import filter_pb2

pytestmark = pytest.mark.unit

# derandomize: the same cases every run
PROPS = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


def refused(obj, parse=F.parse) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as e:
        parse(obj)
    return e.value


def roundtrip_proto(f: F.Filter) -> F.Filter:
    return P.from_proto(filter_pb2.Filter.FromString(P.to_proto(f).SerializeToString()))


# ---- parsing ----


def test_the_issues_example_parses_into_the_tree_it_means():
    f = F.parse({"color": "red", "price": {"$gte": 10, "$lt": 20},
                 "$or": [{"brand": {"$in": ["a", "b"]}}, {"on_sale": True}]})
    C = F.Condition
    assert f == F.And((C("color", "eq", "red"), C("price", "gte", 10), C("price", "lt", 20),
                       F.Or((C("brand", "in", ("a", "b")), C("on_sale", "eq", True)))))
    assert (f.depth, f.n_conditions, f.n_values) == (2, 5, 2)
    assert F.to_dict(f) == {"color": "red", "price": {"$gte": 10, "$lt": 20},
                            "$or": [{"brand": {"$in": ["a", "b"]}}, {"on_sale": True}]}


def test_shorthands_and_accepted_value_types():
    C = F.Condition
    assert F.parse({"a": 1}) == F.parse({"a": {"$eq": 1}}) == C("a", "eq", 1)
    assert F.parse({"a": None}) == C("a", "eq", None)
    assert F.parse({"a": {"$gte": 1, "$lt": 2}}) == F.And((C("a", "gte", 1), C("a", "lt", 2)))
    assert F.parse({"a.b": 1}).field == "a.b"  # a dot is part of the name: payloads are flat
    assert F.parse({"a": {"$in": ("x", "y")}}).value == ("x", "y")  # tuples are lists
    assert F.parse({"a": {"$in": {"y", "x"}}}).value == ("x", "y")  # sets are sorted: one filter per set
    assert F.parse({"a": {"$in": [1, 2.5]}}).value == (1, 2.5)  # ints and floats are one kind
    assert F.parse({"a": {"$in": []}}).value == ()
    numpy = pytest.importorskip("numpy")
    got = F.parse({"a": numpy.int64(3), "b": numpy.float32(0.5)})
    assert [(type(c.value), c.value) for c in got.items] == [(int, 3), (float, 0.5)]
    assert F.as_filter(None) is None and F.as_filter(got) is got and F.as_filter({"a": 1}) == C("a", "eq", 1)


BAD = [
    # (filter, the path the message starts with, a fragment of the rest)
    ({"$or": [{"a": 1}, {"brand": {"$in": "a"}}]}, "filter.$or[1].brand.$in", "$in needs a list"),
    ({"price": {"$gte": "ten"}}, "filter.price.$gte", "$gte needs a number or an RFC 3339 datetime string (e.g. '2026-11-30T08:00:00Z'), got 'ten'"),
    ({"price": {"$foo": 1}}, "filter.price", "unknown operator '$foo'; allowed: $contains, $eq, $exists, $gt, "
                                             "$gte, $in, $lt, $lte, $ne, $nin"),
    ({"$foo": 1}, "filter", "unknown operator '$foo'; allowed here: $and, $or, $not or a field name"),
    ({"$and": []}, "filter.$and", "$and needs at least one filter"),
    ({"x": 1, "$or": []}, "filter.$or", "$or needs at least one filter"),
    ({"$and": {"a": 1}}, "filter.$and", "$and needs a list of filters, got a dict"),
    ({"$or": [{"a": 1}, "x"]}, "filter.$or[1]", "must be a dict of conditions, got 'x'"),
    ({"$not": [{"a": 1}]}, "filter.$not", "must be a dict of conditions, got a list"),
    ("color = red", "filter", "must be a dict of conditions"),
    (None, "filter", "must be a dict of conditions, got None"),
    ({}, "filter", "is an empty dict"),
    ({"$and": [{"a": 1}, {}]}, "filter.$and[1]", "is an empty dict"),
    ({"a": {}}, "filter.a", "needs at least one operator"),
    ({"a": {"$gt": True}}, "filter.a.$gt", "booleans are not numbers here"),
    ({"a": {"$lt": float("nan")}}, "filter.a.$lt", "needs a finite number, got nan"),
    ({"a": float("inf")}, "filter.a", "needs a finite number, got inf"),
    ({"a": 2**63}, "filter.a", "int64 range [-9223372036854775808, 9223372036854775807]"),
    ({"a": {"$gte": -2**63 - 1}}, "filter.a.$gte", "int64 range"),
    ({"a": 10**5000}, "filter.a", "an integer of 16610 bits"),  # too long for str(): never printed
    ({"a": {"$in": [1, -2**64]}}, "filter.a.$in[1]", "int64 range"),
    ({"a": {"$in": [1, "1"]}}, "filter.a.$in[1]", "all be of one kind (strings, numbers or booleans): [0] is a "
                                                  "number, got '1'"),
    ({"a": {"$nin": [True, 1]}}, "filter.a.$nin[1]", "[0] is a boolean, got 1"),
    ({"a": {"$in": ["x", None]}}, "filter.a.$in[1]", "got None"),
    ({"a": {"$in": [["x"]]}}, "filter.a.$in[0]", "needs a single value"),
    ({"a": {"$exists": 1}}, "filter.a.$exists", "$exists needs true or false, got 1"),
    ({"a": {"$contains": ["x"]}}, "filter.a.$contains", "combine several $contains"),
    ({"a": {"$contains": None}}, "filter.a.$contains", "got None"),
    ({"a": ["x", "y"]}, "filter.a", "$in matches any of several values"),
    ({"a": {"$ne": [1]}}, "filter.a.$ne", "$nin matches none"),
    ({"a": {"b": 1}}, "filter.a", "got key 'b' (payloads are flat"),
    ({"a": {"$eq": {"b": 1}}}, "filter.a.$eq", "got a dict"),
    ({"a": {"$not": {"$gt": 1}}}, "filter.a.$not", "goes outside the field"),
    ({"a": {"$or": [{"$gt": 1}]}}, "filter.a.$or", "goes outside the field"),
    ({"$eq": 1}, "filter.$eq", "$eq compares a field"),
    ({"": 1}, "filter", f"field names must be 1 to {MAX_FIELD_NAME_CHARS} characters, got 0"),
    ({"x" * 257: 1}, "filter", f"1 to {MAX_FIELD_NAME_CHARS} characters, got 257"),
    ({1: "a"}, "filter", "keys must be field names or $and, $or, $not; got 1"),
    ({"a": {1: 2}}, "filter.a", "got key 1"),
    ({"a\ud800": 1}, "filter", "lone surrogate"),
    ({"a": "x\udc00"}, "filter.a", "lone surrogate"),
    ({"a": Decimal("1.5")}, "filter.a", "decimal.Decimal"),
    ({"a b": {"$gt": "x"}}, "filter['a b'].$gt", "needs a number"),
    ({"$and": [{"x": 1}, {"$or": [{"y": 2}, {"b": {"$in": [1, 2, "x"]}}]}]},
     "filter.$and[1].$or[1].b.$in[2]", "one kind"),
]


@pytest.mark.parametrize("obj, path, fragment", BAD, ids=[str(i) for i in range(len(BAD))])
def test_a_bad_filter_names_the_path_inside_it(obj, path, fragment):
    err = refused(obj)
    assert err.code == "INVALID_ARGUMENT" and err.field == path
    assert err.message.startswith(f"{path}: ") and fragment in err.message, err.message
    assert len(err.message) < 400


def test_a_custom_root_path_prefixes_every_message():
    err = refused({"$or": [{"a": {"$gt": "x"}}]}, lambda o: F.parse(o, "requests[3].filter"))
    assert err.field == "requests[3].filter.$or[0].a.$gt"


def test_ast_nodes_validate_when_built_directly():
    C = F.Condition
    for build, fragment in [
        (lambda: C("a", "gt", "x"), "filter.a.$gt: $gt needs a number"),
        (lambda: C("$a", "eq", 1), "must not start with '$'"),
        (lambda: C("a", "regex", "x"), "unknown operator 'regex'"),
        (lambda: C("a", "in", "xy"), "$in needs a list"),
        (lambda: F.And(()), "at least one filter"),
        (lambda: F.Or([C("a", "eq", 1), {"b": 1}]), "filter.$or[1]: must be a filter"),
        (lambda: F.Not("a"), "filter.$not: must be a filter"),
    ]:
        with pytest.raises(InvalidArgument, match=None) as e:
            build()
        assert fragment in e.value.message, e.value.message
    assert C("a", "in", ["x"]).value == ("x",)  # normalised to a hashable tuple
    assert hash(F.And((C("a", "eq", 1),))) == hash(F.And((C("a", "eq", 1),)))
    f = F.parse({"a": {"$in": [1, 2]}, "$not": {"b": None}})
    back = pickle.loads(pickle.dumps(f))  # filters cross process boundaries (Ray shard actors)
    assert repr(back) == repr(f) and (back.depth, back.n_conditions, back.n_values) == (2, 2, 2)


# ---- limits: checked over the structure before any value is read ----


def nest(inner: dict, levels: int, key: str = "$not") -> dict:
    for _ in range(levels):
        inner = {key: inner} if key == "$not" else {key: [inner]}
    return inner


@pytest.mark.parametrize("key", ["$not", "$and", "$or"])
def test_depth_up_to_the_limit_is_accepted_and_one_more_is_refused(key):
    f = F.parse(nest({"a": 1}, MAX_FILTER_DEPTH, key))
    assert f.depth == MAX_FILTER_DEPTH and roundtrip_proto(f) == f
    err = refused(nest({"a": 1}, MAX_FILTER_DEPTH + 1, key))
    assert f"at most {MAX_FILTER_DEPTH}" in err.message
    assert err.field.startswith("filter." + key)


def test_a_dict_of_several_conditions_is_a_level_like_the_and_it_makes():
    assert F.parse(nest({"a": 1, "b": 2}, MAX_FILTER_DEPTH - 1)).depth == MAX_FILTER_DEPTH
    for inner in ({"a": 1, "b": 2}, {"a": {"$gt": 1, "$lt": 2}}):
        err = refused(nest(inner, MAX_FILTER_DEPTH))  # by the structure pass, at the dict's own path
        assert err.field == "filter" + ".$not" * MAX_FILTER_DEPTH and f"at most {MAX_FILTER_DEPTH}" in err.message
    # a left-deep chain of 33 conditions, as `functools.reduce` over and_ builds it, fits
    chain: dict = {"c0": 0}
    for i in range(1, MAX_FILTER_DEPTH + 1):
        chain = {"$and": [chain, {f"c{i}": i}]}
    assert F.parse(chain).n_conditions == MAX_FILTER_DEPTH + 1


def test_a_hostile_nesting_is_refused_without_recursion():
    for key in ("$not", "$and"):
        obj = nest({"a": 1}, 200_000, key)
        t0 = time.perf_counter()
        err = refused(obj)
        assert "levels of $and/$or/$not" in err.message and time.perf_counter() - t0 < 1.0
    with pytest.raises(InvalidArgument):  # built bottom-up, the AST refuses too
        node: F.Filter = F.Condition("a", "eq", 1)
        for _ in range(MAX_FILTER_DEPTH + 1):
            node = F.Not(node)


def test_too_many_conditions_is_refused_before_any_value_is_read():
    ok = F.parse({"$or": [{"a": i} for i in range(MAX_FILTER_CONDITIONS)]})
    assert ok.n_conditions == MAX_FILTER_CONDITIONS
    # the first condition is bad too, but the count is what is reported: nothing was read
    many = {"$or": [{"a": {"$gt": "bad"}}] + [{"a": i} for i in range(MAX_FILTER_CONDITIONS)]}
    err = refused(many)
    assert err.field == "filter" and f"more than {MAX_FILTER_CONDITIONS:,} conditions" in err.message
    assert f"1 to {MAX_FILTER_CONDITIONS:,}" in err.message
    refused({f"f{i}": {"$gt": "bad"} for i in range(MAX_FILTER_CONDITIONS + 1)})  # in one dict
    refused({"a": {f"$x{i}": 1 for i in range(MAX_FILTER_CONDITIONS + 1)}})  # under one field
    refused({"$and": [{}] * (MAX_FILTER_CONDITIONS + 1)})  # junk counts too
    t0 = time.perf_counter()
    refused({"$or": [{"a": 1}] * 1_000_000})  # a list's length is checked before it is walked
    assert time.perf_counter() - t0 < 0.5


def test_too_many_in_values_is_refused_before_any_value_is_read():
    assert F.parse({"a": {"$in": list(range(MAX_FILTER_IN_VALUES))}}).n_values == MAX_FILTER_IN_VALUES
    err = refused({"a": {"$in": ["bad", None] + list(range(MAX_FILTER_IN_VALUES))}})
    assert err.field == "filter.a.$in" and f"at most {MAX_FILTER_IN_VALUES:,}" in err.message
    half = MAX_FILTER_IN_VALUES // 2 + 1  # the bound is on all lists together
    err = refused({"$or": [{"a": {"$in": list(range(half))}}, {"b": {"$nin": list(range(half))}}]})
    assert err.field in ("filter.$or[0].a.$in", "filter.$or[1].b.$nin")


# ---- the proto ----


def cond(field="a", op=filter_pb2.FieldCondition.OP_EQ, **value) -> filter_pb2.Filter:
    return filter_pb2.Filter(condition=filter_pb2.FieldCondition(field=field, op=op, **value))


def scalars(*values) -> filter_pb2.ScalarList:
    return filter_pb2.ScalarList(values=[filter_pb2.Scalar(**v) for v in values])


O = filter_pb2.FieldCondition
BAD_PROTOS = [
    (filter_pb2.Filter(), "filter", "no filter set: one of all_of, any_of, not_filter or condition"),
    (filter_pb2.Filter(all_of=filter_pb2.FilterList()), "filter.all_of.items", "all_of needs at least one filter"),
    (filter_pb2.Filter(any_of=filter_pb2.FilterList(items=[cond(int_value=1), filter_pb2.Filter()])),
     "filter.any_of.items[1]", "no filter set"),
    (filter_pb2.Filter(not_filter=cond(op=O.OP_GT, string_value="ten")),
     "filter.not_filter.condition.string_value", "$gt needs a number or an RFC 3339 datetime string (e.g. '2026-11-30T08:00:00Z'), got 'ten'"),
    (cond(field="", int_value=1), "filter.condition.field", "1 to 256 characters"),
    (cond(field="$a", int_value=1), "filter.condition.field", "must not start with '$'"),
    (cond(op=0, int_value=1), "filter.condition.op", "OP_EQ, OP_NE, OP_IN, OP_NIN, OP_GT, OP_GTE, OP_LT, OP_LTE, "
                                                     "OP_EXISTS, OP_CONTAINS, got OP_UNSPECIFIED (unset)"),
    (cond(op=99, int_value=1), "filter.condition.op", "got 99"),
    (cond(), "filter.condition", "no value set: one of string_value, int_value, double_value, bool_value, "
                                 "null_value or list_value"),
    (cond(op=O.OP_LT, double_value=float("nan")), "filter.condition.double_value", "finite"),
    (cond(op=O.OP_GTE, bool_value=True), "filter.condition.bool_value", "booleans are not numbers"),
    (cond(op=O.OP_GT, null_value=0), "filter.condition.null_value", "$gt needs a number, got None"),
    (cond(op=O.OP_IN, string_value="a"), "filter.condition.string_value", "$in needs a list"),
    (cond(op=O.OP_EQ, list_value=scalars({"int_value": 1})), "filter.condition.list_value", "single value"),
    (cond(op=O.OP_IN, list_value=scalars({"int_value": 1}, {})), "filter.condition.list_value.values[1]",
     "no value set"),
    (cond(op=O.OP_NIN, list_value=scalars({"int_value": 1}, {"string_value": "1"})),
     "filter.condition.list_value.values[1]", "one kind"),
    (cond(op=O.OP_IN, list_value=scalars({"double_value": float("inf")})),
     "filter.condition.list_value.values[0]", "finite"),
    (cond(op=O.OP_EXISTS, string_value="yes"), "filter.condition.string_value", "$exists needs true or false"),
    (cond(op=O.OP_CONTAINS, null_value=0), "filter.condition.null_value", "got None"),
]


@pytest.mark.parametrize("msg, path, fragment", BAD_PROTOS, ids=[str(i) for i in range(len(BAD_PROTOS))])
def test_a_malformed_message_names_the_path_inside_it(msg, path, fragment):
    err = refused(filter_pb2.Filter.FromString(msg.SerializeToString()), P.from_proto)
    assert err.field == path and err.message.startswith(f"{path}: ") and fragment in err.message, err.message


def test_proto_limits_are_checked_before_values():
    wide = filter_pb2.Filter(any_of=filter_pb2.FilterList(
        items=[cond(op=O.OP_GT, string_value="bad")] + [cond(int_value=i) for i in range(MAX_FILTER_CONDITIONS)]))
    err = refused(wide, P.from_proto)
    assert err.field == "filter" and "conditions" in err.message
    empties = filter_pb2.Filter(all_of=filter_pb2.FilterList(items=[filter_pb2.Filter()] * 100_000))
    assert "conditions" in refused(empties, P.from_proto).message
    values = cond(op=O.OP_IN, list_value=scalars(*[{"int_value": i} for i in range(MAX_FILTER_IN_VALUES + 1)]))
    err = refused(values, P.from_proto)
    assert err.field == "filter.condition.list_value" and "values in all" in err.message
    assert "must be a simsearch.v1.Filter" in refused({"a": 1}, P.from_proto).message


@pytest.mark.parametrize("kind", ["not_filter", "all_of", "any_of"])
def test_a_hostile_nested_message_is_refused_cleanly(kind):
    """Built in Python, a message may nest far past protobuf's decode limit of 100 (and past
    Python's recursion limit): the structure pass refuses it at MAX_FILTER_DEPTH + 1."""
    root = filter_pb2.Filter()
    node = root
    for _ in range(5_000):
        node = node.not_filter if kind == "not_filter" else getattr(node, kind).items.add()
    node.condition.CopyFrom(cond(int_value=1).condition)
    t0 = time.perf_counter()
    err = refused(root, P.from_proto)
    assert f"at most {MAX_FILTER_DEPTH}" in err.message and time.perf_counter() - t0 < 1.0
    assert err.field.count(kind) == MAX_FILTER_DEPTH + 1


def test_the_deepest_legal_filter_decodes_within_protobufs_limit_with_room_for_a_request():
    C = F.Condition
    f: F.Filter = C("a", "in", (1, 2.5))
    for i in range(MAX_FILTER_DEPTH):
        f = F.And((f, C("b", "eq", i))) if i % 2 else F.Or((f,))
    wrapper = filter_pb2.Filter(not_filter=P.to_proto(f))  # one more level, as a request field adds
    filter_pb2.Filter.FromString(wrapper.SerializeToString())  # no DecodeError
    assert repr(roundtrip_proto(f)) == repr(f)


# ---- generated filters: round trips and the canonical form ----

FIELDS = ["a", "b", "price", "tags", "a.b", "x y", "ü"]
INT64 = st.integers(-2**63, 2**63 - 1)
SMALL_INTS = st.integers(-3, 3)
SMALL_FLOATS = st.sampled_from([0.0, -0.0, 1.0, 1.5, -2.0, 2.5, 3.0])
NUMBERS = st.one_of(SMALL_INTS, SMALL_FLOATS, INT64, st.floats(allow_nan=False, allow_infinity=False))
STRINGS = st.one_of(st.sampled_from(["", "a", "b", "1"]), st.text(max_size=6))
SCALARS = st.one_of(STRINGS, NUMBERS, st.booleans())


@st.composite
def conditions(draw) -> F.Condition:
    field, op = draw(st.sampled_from(FIELDS)), draw(st.sampled_from(F.OPS))
    if op in ("eq", "ne"):
        value = draw(st.one_of(SCALARS, st.none()))
    elif op in F.LIST_OPS:
        value = draw(st.one_of(st.lists(STRINGS, max_size=5), st.lists(NUMBERS, max_size=5),
                               st.lists(st.booleans(), max_size=3)))
    elif op in F.RANGE_OPS:
        value = draw(NUMBERS)
    elif op == "exists":
        value = draw(st.booleans())
    else:
        value = draw(SCALARS)
    return F.Condition(field, op, value)


def _groups(children):
    items = st.lists(children, min_size=1, max_size=4).map(tuple)
    return st.one_of(items.map(F.And), items.map(F.Or), children.map(F.Not))


FILTERS = st.recursive(conditions(), _groups, max_leaves=14)
PAYLOAD_VALUES = st.one_of(st.sampled_from(["a", "b", "1", "", 0, 1, 2, 1.0, 1.5, -2.0, 3, True, False, None]),
                           SCALARS)
PAYLOADS = st.dictionaries(st.sampled_from(FIELDS), st.one_of(PAYLOAD_VALUES, st.lists(PAYLOAD_VALUES, max_size=4)),
                           max_size=len(FIELDS))


def typed(obj) -> str:
    """Structural text that tells 1, 1.0 and True apart (Python's == does not)."""
    return json.dumps(obj) if isinstance(obj, (dict, list)) else repr(obj)


@PROPS
@given(f=FILTERS)
def test_dict_ast_proto_round_trips_are_exact(f):
    d = F.to_dict(f)
    back = F.parse(d)
    assert repr(back) == repr(f)  # node for node, kinds kept (1 vs 1.0 vs True)
    via_json = F.parse(json.loads(json.dumps(d)))  # what a JSON client sends
    assert repr(via_json) == repr(f)
    wire = roundtrip_proto(back)
    assert repr(wire) == repr(f) and typed(F.to_dict(wire)) == typed(d)
    assert (wire.depth, wire.n_conditions, wire.n_values) == (f.depth, f.n_conditions, f.n_values)


@PROPS
@given(f=FILTERS, payloads=st.lists(PAYLOADS, min_size=8, max_size=8))
def test_the_canonical_form_means_what_the_filter_means(f, payloads):
    """canonical() is itself a filter (JSON in the dict language): parsed back, it matches exactly
    what f matches, so two filters with one canonical string match the same points."""
    text = F.canonical(f)
    g = F.parse(json.loads(text))
    assert F.canonical(g) == text  # a fixed point
    for p in payloads:
        assert F.matches(g, p) == F.matches(f, p), (text, p)


def scramble(f: F.Filter, rnd: random.Random) -> F.Filter:
    """An equivalent spelling: items shuffled and repeated, groups split and wrapped, double
    negations, lists shuffled with repeats, integral floats written as ints and back."""
    if isinstance(f, F.Condition):
        value = f.value
        if f.op in F.LIST_OPS:
            value = [_respell(v, rnd) for v in value] + [_respell(v, rnd) for v in value if rnd.random() < 0.3]
            rnd.shuffle(value)
        elif f.op != "exists":
            value = _respell(value, rnd)
        c = F.Condition(f.field, f.op, value)
        if f.op in ("eq", "ne") and value is not None and not isinstance(value, tuple) and rnd.random() < 0.3:
            c = F.Condition(f.field, "in" if f.op == "eq" else "nin", [value])
        return F.Not(F.Not(c)) if rnd.random() < 0.2 else c
    if isinstance(f, F.Not):
        return F.Not(scramble(f.item, rnd))
    items = [scramble(i, rnd) for i in f.items]
    if rnd.random() < 0.3:
        items.append(scramble(rnd.choice(f.items), rnd))  # x and x = x
    rnd.shuffle(items)
    kind = type(f)
    if len(items) > 2 and rnd.random() < 0.5:  # (a, b, c) -> (a, (b, c))
        items = [items[0], kind(tuple(items[1:]))]
    out = kind(tuple(items))
    return kind((out,)) if rnd.random() < 0.2 else out


def _respell(v, rnd):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or rnd.random() < 0.5:
        return v
    if isinstance(v, int) and abs(v) < 2**53:
        return float(v)
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
        return int(v)
    return v


@PROPS
@given(f=FILTERS, seed=st.integers(0, 2**32))
def test_equivalent_spellings_share_the_canonical_form(f, seed):
    g = scramble(f, random.Random(seed))
    if g.depth <= MAX_FILTER_DEPTH:
        assert F.canonical(g) == F.canonical(f)


def test_canonical_examples():
    same = [
        [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"$and": [{"b": 2}, {"$and": [{"a": 1.0}]}]}],
        [{"a": 1}, {"a": {"$eq": 1.0}}, {"$or": [{"a": 1}]}, {"a": {"$in": [1, 1.0]}}, {"$or": [{"a": 1}, {"a": 1}]},
         {"$not": {"a": {"$ne": 1}}}, {"$not": {"$not": {"a": 1}}}],
        [{"a": {"$in": ["x", "y"]}}, {"a": {"$in": ["y", "x", "x"]}}, {"$not": {"a": {"$nin": ["x", "y"]}}}],
        [{"a": {"$exists": False}}, {"$not": {"a": {"$exists": True}}}],
        [{"a": {"$gt": 0}}, {"a": {"$gt": -0.0}}],
        [{"$or": [{"a": 1}, {"$or": [{"b": 1}, {"c": 1}]}]}, {"$or": [{"c": 1}, {"a": 1}, {"b": 1}]}],
    ]
    for group in same:
        texts = {F.canonical(F.parse(d)) for d in group}
        assert len(texts) == 1, (group, texts)
    different = [
        {"a": 1}, {"a": True}, {"a": "1"}, {"a": 1.5}, {"a": None}, {"b": 1}, {"a": {"$ne": 1}}, {"a": {"$gt": 1}},
        {"a": {"$gte": 1}}, {"a": {"$lt": 1}}, {"a": {"$lte": 1}}, {"a": {"$in": [1, 2]}}, {"a": {"$nin": [1, 2]}},
        {"a": {"$contains": 1}}, {"a": {"$exists": True}}, {"a": {"$exists": False}}, {"a": {"$in": []}},
        {"a": {"$nin": []}}, {"a": {"$in": [True, False]}}, {"a": {"$in": ["1", "2"]}}, {"a": 0}, {"a": -1},
        {"a": 2**53 + 1}, {"a": float(2**53)}, {"a": 1e300}, {"a": 2**62}, {"a": 1e-300}, {"a": 9.3e18},
        {"a": 9223372036854775807}, {"a": ""}, {"A": 1}, {"a ": 1}, {"$not": {"a": {"$gt": 1}}},
        {"a": 1, "b": 2}, {"$or": [{"a": 1}, {"b": 2}]}, {"$not": {"a": 1, "b": 2}}, {"a": {"$contains": "1"}},
    ]
    texts = [F.canonical(F.parse(d)) for d in different]
    assert len(set(texts)) == len(texts), [t for t in texts if texts.count(t) > 1]
    assert F.canonical(F.parse({"price": {"$gte": 10.0}, "color": "red"})) == \
        '{"$and":[{"color":{"$eq":"red"}},{"price":{"$gte":10}}]}'
    assert F.canonical(F.parse({"ü": "é"})) == '{"\\u00fc":{"$eq":"\\u00e9"}}'  # ASCII: the same bytes everywhere


# ---- the reference evaluator ----

MATCHES = [
    # eq: kinds never mix, ints and floats are one kind, lists match on any element, missing fails
    ({"a": 1}, {"a": 1}, True), ({"a": 1}, {"a": 1.0}, True), ({"a": 1}, {"a": True}, False),
    ({"a": 1}, {"a": "1"}, False), ({"a": 1}, {}, False), ({"a": 1}, {"a": [2, 1]}, True),
    ({"a": 1}, {"a": [2]}, False), ({"a": 1}, {"a": None}, False), ({"a": True}, {"a": 1}, False),
    ({"a": "x"}, {"a": []}, False), ({"a": 2**53 + 1}, {"a": float(2**53)}, False),
    # null: a stored null only
    ({"a": None}, {"a": None}, True), ({"a": None}, {}, False), ({"a": None}, {"a": 0}, False),
    # ne = not eq: a missing field passes (Mongo, Qdrant's must_not)
    ({"a": {"$ne": 1}}, {}, True), ({"a": {"$ne": 1}}, {"a": 2}, True), ({"a": {"$ne": 1}}, {"a": 1}, False),
    ({"a": {"$ne": 1}}, {"a": [1, 2]}, False), ({"a": {"$ne": 1}}, {"a": "1"}, True),
    ({"a": {"$ne": 1}}, {"a": None}, True), ({"a": {"$ne": "x"}}, {"a": []}, True),
    ({"a": {"$ne": None}}, {}, True), ({"a": {"$ne": None}}, {"a": None}, False),
    # in / nin
    ({"a": {"$in": ["x", "y"]}}, {"a": "y"}, True), ({"a": {"$in": ["x", "y"]}}, {"a": ["z", "x"]}, True),
    ({"a": {"$in": ["x", "y"]}}, {"a": "z"}, False), ({"a": {"$in": ["x"]}}, {}, False),
    ({"a": {"$in": [1, 2.5]}}, {"a": 1.0}, True), ({"a": {"$in": [1, 2.5]}}, {"a": True}, False),
    ({"a": {"$in": [True]}}, {"a": 1}, False), ({"a": {"$in": []}}, {"a": 1}, False),
    ({"a": {"$nin": []}}, {}, True), ({"a": {"$nin": ["x"]}}, {}, True),
    ({"a": {"$nin": ["x"]}}, {"a": ["x", "y"]}, False), ({"a": {"$nin": ["x"]}}, {"a": "y"}, True),
    # ranges: numbers only; a list passes when any element does, each condition on its own
    ({"a": {"$gt": 1}}, {"a": 1.5}, True), ({"a": {"$gt": 1}}, {"a": 1}, False),
    ({"a": {"$gte": 1}}, {"a": 1.0}, True), ({"a": {"$gt": 1}}, {"a": "5"}, False),
    ({"a": {"$gt": 0}}, {"a": True}, False), ({"a": {"$gt": 1}}, {"a": [0, 2]}, True),
    ({"a": {"$gt": 1}}, {}, False), ({"a": {"$gt": 1}}, {"a": None}, False), ({"a": {"$lt": 1}}, {"a": []}, False),
    ({"a": {"$gte": 10, "$lt": 20}}, {"a": [5, 25]}, True), ({"a": {"$gte": 10, "$lt": 20}}, {"a": 20}, False),
    ({"a": {"$lte": float(2**53)}}, {"a": 2**53 + 1}, False), ({"a": {"$gt": 2**53}}, {"a": 2**53 + 1}, True),
    ({"a": {"$lt": 0.5}}, {"a": -2**63}, True),
    # exists: any stored value, null and [] included
    ({"a": {"$exists": True}}, {"a": None}, True), ({"a": {"$exists": True}}, {"a": []}, True),
    ({"a": {"$exists": True}}, {}, False), ({"a": {"$exists": False}}, {}, True),
    ({"a": {"$exists": False}}, {"a": 0}, False),
    # contains: list-valued fields only
    ({"a": {"$contains": "x"}}, {"a": ["x", "y"]}, True), ({"a": {"$contains": "x"}}, {"a": "x"}, False),
    ({"a": {"$contains": "x"}}, {"a": []}, False), ({"a": {"$contains": "x"}}, {"a": ["y"]}, False),
    ({"a": {"$contains": "x"}}, {}, False), ({"a": {"$contains": 1}}, {"a": [1.0]}, True),
    ({"a": {"$contains": True}}, {"a": [1]}, False), ({"a": {"$contains": "xy"}}, {"a": ["xyz"]}, False),
    # and / or / not
    ({"$not": {"a": 1}}, {}, True), ({"$not": {"a": {"$gt": 1}}}, {"a": "9"}, True),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True), ({"$or": [{"a": 1}, {"b": 2}]}, {}, False),
    ({"a": 1, "b": 2}, {"a": 1}, False), ({"a": 1, "b": 2}, {"a": 1, "b": 2.0}, True),
    ({"a.b": 1}, {"a.b": 1}, True), ({"a.b": 1}, {"a": {"b": 1}}, False),  # a dot is part of the name
]


@pytest.mark.parametrize("obj, payload, expected", MATCHES, ids=[str(i) for i in range(len(MATCHES))])
def test_matches(obj, payload, expected):
    f = F.parse(obj)
    assert F.matches(f, payload) is expected
    assert F.matches(roundtrip_proto(f), payload) is expected
    assert F.matches(F.parse(json.loads(F.canonical(f))), payload) is expected


def test_no_payload_is_an_empty_one():
    assert F.matches(F.parse({"a": {"$exists": False}}), None)
    assert not F.matches(F.parse({"a": {"$exists": True}}), None)
