"""Filter AST (contract/filters.py) <-> the `Filter` message, with the dict parser's checks and
path-named errors (`filter.any_of.items[1].condition.list_value.values[3]`).

A message may be malformed in ways a dict cannot (unset oneofs, an unknown op number) and may
be built in Python nested far past protobuf's own decode limit of 100, so `from_proto` first
walks the structure iteratively, refusing past the limits before it reads a value or recurses;
the conversion after it recurses at most MAX_FILTER_DEPTH deep.
"""

from __future__ import annotations

from google.protobuf import struct_pb2

from simsearch.contract import filters as F
from simsearch.contract.errors import invalid
from simsearch.contract.limits import MAX_FILTER_CONDITIONS
from simsearch.protos.simsearch.v1 import filter_pb2

_Op = filter_pb2.FieldCondition
OP_TO_PROTO = {"eq": _Op.OP_EQ, "ne": _Op.OP_NE, "in": _Op.OP_IN, "nin": _Op.OP_NIN, "gt": _Op.OP_GT,
               "gte": _Op.OP_GTE, "lt": _Op.OP_LT, "lte": _Op.OP_LTE, "exists": _Op.OP_EXISTS,
               "contains": _Op.OP_CONTAINS}
OP_FROM_PROTO = {v: k for k, v in OP_TO_PROTO.items()}
_OP_NAMES = ", ".join(_Op.Op.Name(v) for v in OP_FROM_PROTO)
_VALUE_FIELDS = "string_value, int_value, double_value, bool_value, null_value or list_value"


def to_proto(f: F.Filter) -> filter_pb2.Filter:
    """A Filter (valid by construction) -> its message."""
    msg = filter_pb2.Filter()
    _fill(msg, f)
    return msg


def _fill(msg: filter_pb2.Filter, f: F.Filter) -> None:
    if isinstance(f, F.Condition):
        c = msg.condition
        c.field = f.field
        c.op = OP_TO_PROTO[f.op]
        if f.op in F.LIST_OPS:
            c.list_value.SetInParent()  # an empty list is a value too
            for v in f.value:
                _set_scalar(c.list_value.values.add(), v)
        elif f.value is None:
            c.null_value = struct_pb2.NULL_VALUE
        else:
            _set_scalar(c, f.value)
    elif isinstance(f, F.Not):
        _fill(msg.not_filter, f.item)
    else:
        items = (msg.all_of if isinstance(f, F.And) else msg.any_of).items
        for item in f.items:
            _fill(items.add(), item)


def _set_scalar(msg, v) -> None:
    if isinstance(v, bool):  # before int: bool is an int subclass
        msg.bool_value = v
    elif isinstance(v, int):
        msg.int_value = v
    elif isinstance(v, float):
        msg.double_value = v
    else:
        msg.string_value = v


def from_proto(msg: filter_pb2.Filter, path: str = "filter") -> F.Filter:
    """A Filter message -> the AST; InvalidArgument naming the path inside the message."""
    if not isinstance(msg, filter_pb2.Filter):
        raise invalid(path, f"must be a simsearch.v1.Filter message, got {type(msg).__name__}")
    _measure(msg, path)
    return _convert(msg, path)


def _measure(msg: filter_pb2.Filter, path: str) -> None:
    """Depth, condition and list-value counts, iteratively, before anything else is read. Every
    node that is not a well-formed group (an unset oneof, an empty list) counts as a condition,
    so the walk stops after about MAX_FILTER_CONDITIONS x MAX_FILTER_DEPTH nodes at most."""
    budget = F.Budget(path)
    stack = [(msg, path, 0)]  # (node, its path, groups above it)
    while stack:
        node, p, depth = stack.pop()
        kind = node.WhichOneof("kind")
        if kind in ("all_of", "any_of"):
            items = getattr(node, kind).items
            if len(items) > MAX_FILTER_CONDITIONS:
                raise F.too_many_conditions(path)
            if not items:
                budget.add()
            for i, item in enumerate(items):
                child = f"{p}.{kind}.items[{i}]"
                budget.check_depth(depth + 1, child)
                stack.append((item, child, depth + 1))
        elif kind == "not_filter":
            budget.check_depth(depth + 1, f"{p}.not_filter")
            stack.append((node.not_filter, f"{p}.not_filter", depth + 1))
        else:
            budget.add()
            if kind == "condition" and node.condition.WhichOneof("value") == "list_value":
                budget.add_values(len(node.condition.list_value.values), f"{p}.condition.list_value")


def _convert(msg: filter_pb2.Filter, path: str) -> F.Filter:
    kind = msg.WhichOneof("kind")
    if kind is None:
        raise invalid(path, "no filter set: one of all_of, any_of, not_filter or condition")
    if kind == "condition":
        return _condition(msg.condition, f"{path}.condition")
    if kind == "not_filter":
        return F.Not(_convert(msg.not_filter, f"{path}.not_filter"))
    items = getattr(msg, kind).items
    p = f"{path}.{kind}.items"
    if not items:
        raise invalid(p, f"{kind} needs at least one filter, got none")
    nodes = tuple(_convert(item, f"{p}[{i}]") for i, item in enumerate(items))
    return F.And(nodes) if kind == "all_of" else F.Or(nodes)


def _condition(c: filter_pb2.FieldCondition, path: str) -> F.Condition:
    name = F.check_field_name(c.field, f"{path}.field")
    op = OP_FROM_PROTO.get(c.op)
    if op is None:
        got = "OP_UNSPECIFIED (unset)" if c.op == 0 else str(c.op)
        raise invalid(f"{path}.op", f"must be one of {_OP_NAMES}, got {got}")
    which = c.WhichOneof("value")
    if which is None:
        raise invalid(path, f"no value set: one of {_VALUE_FIELDS}")
    vpath = f"{path}.{which}"
    if which == "list_value":
        raw = tuple(_scalar(s, f"{vpath}.values[{i}]") for i, s in enumerate(c.list_value.values))
        value = F.check_value(op, raw, vpath, items_path=f"{vpath}.values")
    else:
        raw = None if which == "null_value" else getattr(c, which)
        value = F.check_value(op, raw, vpath)
    return F.Condition(name, op, value)


def _scalar(s: filter_pb2.Scalar, path: str):
    which = s.WhichOneof("kind")
    if which is None:
        raise invalid(path, "no value set: one of string_value, int_value, double_value or bool_value")
    return getattr(s, which)
