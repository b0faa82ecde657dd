"""The filter language over point payloads: a frozen AST, the Mongo-style dicts users write
(`parse`, `to_dict`), a canonical string for cache keys (`canonical`) and the reference
evaluator (`matches`). Standard library only: the SDK, the router and the shards share it.

Semantics (Mongo's, which Pinecone and Chroma follow; Qdrant agrees where noted). Payloads are
flat: each field holds a scalar (string, int64, finite float, bool, null) or a list of scalars.
- Kinds never mix: "5" is not 5, True is not 1. Ints and floats are one kind, compared exactly
  (1 == 1.0; 2**53 + 1 != 2.0**53), as Qdrant compares integer and float ranges.
- A list-valued field matches eq / in / ranges when any element does (Mongo; Qdrant too), so
  `{"tags": "a"}` matches tags ["a", "b"]; `$contains` matches only list-valued fields. Two range
  conditions on one list field may be met by different elements ([5, 25] passes >= 10 and < 20),
  as in Mongo without $elemMatch.
- A range's bound is a number or a datetime string (RFC 3339 / ISO 8601, contract/datetimes.py).
  A number compares stored numbers only; a datetime compares stored strings that parse as
  datetimes, by instant ("2026-01-01T01:00:00+01:00" equals "2026-01-01T00:00:00Z"); any other
  stored value fails the range.
- `$ne` and `$nin` are exactly the negation of `$eq` and `$in`: they match points where the field
  is missing (Mongo; Qdrant's must_not). `$eq: None` matches a stored null only, not a missing
  field (unlike Mongo): ask `{"$exists": False}` for that. `$exists` is true for any stored value,
  null and [] included (Mongo).
- `$in` / `$nin` take a list of one kind (strings, numbers, or booleans; no null); an empty
  `$in` matches nothing, an empty `$nin` everything (Mongo, Qdrant).
- A field name is any 1-256 characters not starting with "$". A dot is an ordinary character:
  payloads are flat, so "a.b" names the field "a.b" (payload keys may hold dots).

Limits (contract/limits.py) are checked over the whole structure before any value is read.
AST nodes validate at construction, so every `Filter` object is within them. Compare filters by
`canonical()`: dataclass equality follows Python's, where True == 1.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from simsearch.contract.datetimes import parse_datetime
from simsearch.contract.errors import excerpt, invalid
from simsearch.contract.limits import (INT64_RANGE, MAX_FIELD_NAME_CHARS, MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH,
                                       MAX_FILTER_IN_VALUES)

OPS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "exists", "contains")
RANGE_OPS = frozenset({"gt", "gte", "lt", "lte"})
LIST_OPS = frozenset({"in", "nin"})
LOGICAL_KEYS = ("$and", "$or", "$not")
_FIELD_OPS = {f"${op}": op for op in OPS}
_ALLOWED_FIELD_OPS = ", ".join(sorted(_FIELD_OPS))
_LISTS = (list, tuple, set, frozenset)
_PLAIN = re.compile(r"[A-Za-z0-9_\-]{1,48}")

Scalar: TypeAlias = "str | int | float | bool | None"
Value: TypeAlias = "Scalar | tuple[str | int | float | bool, ...]"


# ---- the AST ----


@dataclass(frozen=True, slots=True)
class Condition:
    """`field` `op` `value`: op is one of OPS; value a scalar, a tuple for in/nin, a bool for exists."""

    field: str
    op: str
    value: Any

    depth = 0  # and/or/not levels below this node
    n_conditions = 1

    def __post_init__(self) -> None:
        check_field_name(self.field, "filter")
        if self.op not in OPS:
            raise invalid(field_path("filter", self.field),
                          f"unknown operator {excerpt(self.op)}; allowed: {', '.join(OPS)}")
        object.__setattr__(self, "value", check_value(self.op, self.value, _op_path("filter", self)))

    @property
    def n_values(self) -> int:
        return len(self.value) if self.op in LIST_OPS else 0


@dataclass(frozen=True, slots=True)
class And:
    """Every item matches. At least one item."""

    items: tuple[Filter, ...]
    depth: int = field(init=False, repr=False, compare=False)
    n_conditions: int = field(init=False, repr=False, compare=False)
    n_values: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _init_node(self, "$and", self.items)


@dataclass(frozen=True, slots=True)
class Or:
    """Some item matches. At least one item."""

    items: tuple[Filter, ...]
    depth: int = field(init=False, repr=False, compare=False)
    n_conditions: int = field(init=False, repr=False, compare=False)
    n_values: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _init_node(self, "$or", self.items)


@dataclass(frozen=True, slots=True)
class Not:
    """The item does not match."""

    item: Filter
    depth: int = field(init=False, repr=False, compare=False)
    n_conditions: int = field(init=False, repr=False, compare=False)
    n_values: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _init_node(self, "$not", (self.item,))


Filter: TypeAlias = "And | Or | Not | Condition"
NODES = (And, Or, Not, Condition)


def _init_node(node: And | Or | Not, key: str, items: Any) -> None:
    if not isinstance(items, (list, tuple)):
        raise invalid(f"filter.{key}", f"{key} needs a list of filters, got {_describe(items)}")
    if not items:
        raise invalid(f"filter.{key}", f"{key} needs at least one filter, got an empty list")
    for i, item in enumerate(items):
        if not isinstance(item, NODES):
            where = "filter.$not" if isinstance(node, Not) else f"filter.{key}[{i}]"
            raise invalid(where, f"must be a filter (And, Or, Not or Condition), got {_describe(item)}")
    depth = 1 + max(i.depth for i in items)
    if depth > MAX_FILTER_DEPTH:
        raise too_deep("filter")
    conditions = sum(i.n_conditions for i in items)
    if conditions > MAX_FILTER_CONDITIONS:
        raise too_many_conditions("filter")
    values = sum(i.n_values for i in items)
    if values > MAX_FILTER_IN_VALUES:
        raise too_many_values("filter")
    if not isinstance(node, Not):
        object.__setattr__(node, "items", tuple(items))
    object.__setattr__(node, "depth", depth)
    object.__setattr__(node, "n_conditions", conditions)
    object.__setattr__(node, "n_values", values)


# ---- limits, shared with the proto conversion (protos/filters.py) ----


def too_deep(path: str) -> Exception:
    return invalid(path, f"nests more than {MAX_FILTER_DEPTH} levels of $and/$or/$not (a dict of several "
                         f"conditions is a level too); at most {MAX_FILTER_DEPTH} are allowed")


def too_many_conditions(path: str) -> Exception:
    return invalid(path, f"holds more than {MAX_FILTER_CONDITIONS:,} conditions; a filter may hold 1 to "
                         f"{MAX_FILTER_CONDITIONS:,}")


def too_many_values(path: str) -> Exception:
    return invalid(path, f"the filter's $in/$nin lists hold more than {MAX_FILTER_IN_VALUES:,} values in all; "
                         f"at most {MAX_FILTER_IN_VALUES:,} are allowed")


class Budget:
    """Counts conditions and list values during the structure pass, refusing past the limits.

    Anything that is not a well-formed condition (an empty dict or list, a stray value) counts as
    one condition too, so the pass over a hostile filter stops after about MAX_FILTER_CONDITIONS
    nodes, whatever it holds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conditions = 0
        self.values = 0

    def add(self, n: int = 1) -> None:
        self.conditions += n
        if self.conditions > MAX_FILTER_CONDITIONS:
            raise too_many_conditions(self.path)

    def add_values(self, n: int, path: str) -> None:
        self.values += n
        if self.values > MAX_FILTER_IN_VALUES:
            raise too_many_values(path)

    @staticmethod
    def check_depth(depth: int, path: str) -> None:
        if depth > MAX_FILTER_DEPTH:
            raise too_deep(path)


# ---- names and values ----


def field_path(path: str, name: str) -> str:
    """path.name for a short plain name, path['odd name'] otherwise (dots included: no nesting)."""
    return f"{path}.{name}" if _PLAIN.fullmatch(name) else f"{path}[{excerpt(name)}]"


def _op_path(path: str, c: Condition) -> str:
    return f"{field_path(path, c.field)}.${c.op}"


def _describe(v: Any) -> str:
    if v is None or isinstance(v, (bool, str, float)):
        return excerpt(v)
    if isinstance(v, int):
        return excerpt(v) if v.bit_length() < 128 else f"an integer of {v.bit_length()} bits"
    if isinstance(v, Mapping):
        return f"a dict {excerpt(v)}"
    if isinstance(v, _LISTS):
        return f"a {type(v).__name__} {excerpt(v)}"
    return f"{type(v).__module__}.{type(v).__qualname__} {excerpt(v)}"


def _check_text(s: str, path: str) -> None:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid(path, f"must be valid Unicode text, got {excerpt(s)} (a lone surrogate)") from None


def check_field_name(name: Any, path: str) -> str:
    """A field name: 1-MAX_FIELD_NAME_CHARS characters, not starting with '$', valid Unicode."""
    if not isinstance(name, str):
        raise invalid(path, f"field names must be strings, got {_describe(name)}")
    if not 1 <= len(name) <= MAX_FIELD_NAME_CHARS:
        raise invalid(path, f"field names must be 1 to {MAX_FIELD_NAME_CHARS} characters, got {len(name)}"
                      + (f" ({excerpt(name)})" if name else ""))
    if name.startswith("$"):
        raise invalid(path, f"field names must not start with '$' (operators do), got {excerpt(name)}")
    _check_text(name, path)
    return name


def _number(v: Any, path: str, op: str) -> int | float:
    if isinstance(v, bool):
        raise invalid(path, f"${op} needs a number, got {v} (booleans are not numbers here)")
    if isinstance(v, numbers.Integral):
        v = int(v)
        low, high = INT64_RANGE
        if not low <= v <= high:
            raise invalid(path, f"integers must be in the int64 range [{low}, {high}], got {_describe(v)}")
        return v
    if isinstance(v, numbers.Real):
        f = float(v)
        if not math.isfinite(f):
            raise invalid(path, f"${op} needs a finite number, got {f}")
        return f
    raise invalid(path, f"${op} needs a number, got {_describe(v)}")


def _scalar(v: Any, path: str, op: str, *, allow_none: bool) -> Scalar:
    if v is None:
        if allow_none:
            return None
        raise invalid(path, f"${op} needs a string, number or boolean, got None (null)")
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        _check_text(v, path)
        return str(v)
    if isinstance(v, numbers.Real):
        return _number(v, path, op)
    if isinstance(v, _LISTS):
        hint = {"eq": " ($in matches any of several values)", "ne": " ($nin matches none of several values)",
                "contains": " (combine several $contains with $and or $or)"}.get(op, "")
        raise invalid(path, f"${op} needs a single value, got {_describe(v)}{hint}")
    if isinstance(v, Mapping):
        raise invalid(path, f"${op} needs a single value, got {_describe(v)} (payloads are flat: objects are "
                            "never stored, and operators go directly under a field name)")
    kinds = "a string, number, boolean or null" if allow_none else "a string, number or boolean"
    raise invalid(path, f"${op} needs {kinds}, got {_describe(v)}")


def value_kind(v: Any) -> str:
    """The kind a value compares within: number (ints and floats together), string, bool, null; or other."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "null" if v is None else "other"


_A_KIND = {"bool": "a boolean", "number": "a number", "string": "a string"}


def check_value(op: str, v: Any, path: str, items_path: str | None = None) -> Value:
    """The value `op` takes, normalised to plain Python types (a tuple for in/nin); InvalidArgument
    naming `path` (list items as `items_path[i]`) otherwise."""
    if op in ("eq", "ne"):
        return _scalar(v, path, op, allow_none=True)
    if op in RANGE_OPS:
        if isinstance(v, str):
            if parse_datetime(v) is None:
                raise invalid(path, f"${op} needs a number or an RFC 3339 datetime string (e.g. "
                                    f"'2026-11-30T08:00:00Z'), got {_describe(v)}")
            return v
        return _number(v, path, op)
    if op == "exists":
        if isinstance(v, bool):
            return v
        raise invalid(path, f"$exists needs true or false, got {_describe(v)}")
    if op == "contains":
        return _scalar(v, path, op, allow_none=False)
    if op in LIST_OPS:
        if not isinstance(v, _LISTS):
            raise invalid(path, f"${op} needs a list of strings, numbers or booleans, got {_describe(v)}")
        if len(v) > MAX_FILTER_IN_VALUES:
            raise too_many_values(path)
        base = path if items_path is None else items_path
        out: list = []
        first = kind = None
        for i, item in enumerate(v):
            x = _scalar(item, f"{base}[{i}]", op, allow_none=False)
            k = value_kind(x)
            if kind is None:
                first, kind = i, k
            elif k != kind:
                raise invalid(f"{base}[{i}]", f"${op} values must all be of one kind (strings, numbers or "
                                              f"booleans): [{first}] is {_A_KIND[kind]}, got {_describe(x)}")
            out.append(x)
        if isinstance(v, (set, frozenset)):
            out.sort()  # one kind, so comparable: the same set gives the same filter in every process
        return tuple(out)
    raise invalid(path, f"unknown operator {excerpt(op)}; allowed: {', '.join(OPS)}")


# ---- Mongo-style dicts ----


def parse(obj: Any, path: str = "filter") -> Filter:
    """A Mongo-style dict -> Filter. Top-level keys are ANDed; {"f": v} is {"f": {"$eq": v}};
    several operators under one field are ANDed. Every error is InvalidArgument naming the
    exact path inside the filter, e.g. `filter.$or[1].brand.$in`."""
    _measure(obj, path)
    return _parse(obj, path)


def as_filter(obj: Any, path: str = "filter") -> Filter | None:
    """What an SDK call's `filter=` accepts: None (no filter), a Filter, or a dict to parse."""
    if obj is None or isinstance(obj, NODES):
        return obj
    if isinstance(obj, Mapping):
        return parse(obj, path)
    raise invalid(path, f"must be a dict such as {{\"color\": \"red\"}}, a Filter or None, got {_describe(obj)}")


def _measure(obj: Any, path: str) -> None:
    """The structure pass: depth, condition and value counts, before any value is read.

    Iterative, so a dict nested thousands deep is refused without recursion; it reads only the
    shape `_parse` will follow (lists under $and/$or, the dict under $not, operator dicts)."""
    budget = Budget(path)
    stack = [(obj, path, 0)]  # (node, its path, and/or/not levels above it)
    while stack:
        node, p, depth = stack.pop()
        if not isinstance(node, Mapping) or not node:
            budget.add()
            continue
        if len(node) > MAX_FILTER_CONDITIONS:
            raise too_many_conditions(path)
        items = 0
        children: list[tuple[Any, str]] = []
        for key, val in node.items():
            if key in ("$and", "$or") and isinstance(val, (list, tuple)):
                if len(val) > MAX_FILTER_CONDITIONS:
                    raise too_many_conditions(path)
                if not val:
                    budget.add()
                children.extend((v, f"{p}.{key}[{i}]") for i, v in enumerate(val))
                items += 1
            elif key == "$not":
                children.append((val, f"{p}.$not"))
                items += 1
            elif isinstance(key, str) and not key.startswith("$") and isinstance(val, Mapping) and val:
                if len(val) > MAX_FILTER_CONDITIONS:
                    raise too_many_conditions(path)
                budget.add(len(val))
                items += len(val)
                for op, v in val.items():
                    if op in ("$in", "$nin") and isinstance(v, _LISTS):
                        budget.add_values(len(v), f"{field_path(p, key)}.{op}")
            else:
                budget.add()
                items += 1
        level = depth + (items > 1)  # several items make an And
        budget.check_depth(level, p)
        for child, child_path in children:
            budget.check_depth(level + 1, child_path)
            stack.append((child, child_path, level + 1))


def _parse(obj: Any, path: str) -> Filter:
    if not isinstance(obj, Mapping):
        raise invalid(path, f"must be a dict of conditions, got {_describe(obj)}")
    if not obj:
        raise invalid(path, "is an empty dict; give at least one condition (None means no filter)")
    items: list[Filter] = []
    for key, val in obj.items():
        if not isinstance(key, str):
            raise invalid(path, f"keys must be field names or $and, $or, $not; got {_describe(key)}")
        if key in ("$and", "$or"):
            p = f"{path}.{key}"
            if not isinstance(val, (list, tuple)):
                raise invalid(p, f"{key} needs a list of filters, got {_describe(val)}")
            if not val:
                raise invalid(p, f"{key} needs at least one filter, got an empty list")
            nodes = tuple(_parse(v, f"{p}[{i}]") for i, v in enumerate(val))
            items.append(And(nodes) if key == "$and" else Or(nodes))
        elif key == "$not":
            items.append(Not(_parse(val, f"{path}.$not")))
        elif key in _FIELD_OPS:
            raise invalid(f"{path}.{key}", f"{key} compares a field: write {{\"field\": {{\"{key}\": value}}}}")
        elif key.startswith("$"):
            raise invalid(path, f"unknown operator {excerpt(key)}; allowed here: $and, $or, $not or a field name "
                                f"(and under a field: {_ALLOWED_FIELD_OPS})")
        else:
            check_field_name(key, path)
            fp = field_path(path, key)
            if isinstance(val, Mapping):
                if not val:
                    raise invalid(fp, "needs at least one operator, as in {\"$eq\": value}")
                for op_key, op_val in val.items():
                    op = _field_op(op_key, fp)
                    p = f"{fp}.{op_key}"
                    items.append(Condition(key, op, check_value(op, op_val, p)))
            else:
                items.append(Condition(key, "eq", check_value("eq", val, fp)))
    return items[0] if len(items) == 1 else And(tuple(items))


def _field_op(key: Any, fp: str) -> str:
    if isinstance(key, str) and key in _FIELD_OPS:
        return _FIELD_OPS[key]
    if key in LOGICAL_KEYS:
        raise invalid(f"{fp}.{key}", f"{key} combines whole filters, so it goes outside the field: write "
                                     f"{{\"{key}\": ...}} around {{field: condition}}")
    if isinstance(key, str) and key.startswith("$"):
        raise invalid(fp, f"unknown operator {excerpt(key)}; allowed: {_ALLOWED_FIELD_OPS}")
    raise invalid(fp, f"a dict under a field holds operators ({_ALLOWED_FIELD_OPS}), got key {_describe(key)} "
                      "(payloads are flat: there are no nested fields, and objects are never stored)")


def to_dict(f: Filter) -> dict:
    """A Filter -> the Mongo-style dict; parse(to_dict(f)) == f, node for node. An And of
    conditions on distinct fields (and at most one each of $and, $or, $not) is written as one dict."""
    if isinstance(f, Condition):
        return {f.field: _condition_dict(f)}
    if isinstance(f, Not):
        return {"$not": to_dict(f.item)}
    key = "$and" if isinstance(f, And) else "$or"
    if isinstance(f, And) and len(f.items) > 1:
        merged = _merge(f.items)
        if merged is not None:
            return merged
    return {key: [to_dict(i) for i in f.items]}


def _condition_dict(c: Condition) -> Any:
    value = list(c.value) if c.op in LIST_OPS else c.value
    return value if c.op == "eq" else {f"${c.op}": value}


def _merge(items: tuple[Filter, ...]) -> dict | None:
    """One dict for these items when parsing it gives the same items in the same order: each key
    once, a field's conditions consecutive with distinct operators; None when that cannot be."""
    out: dict[str, Any] = {}
    last = None
    for item in items:
        if isinstance(item, Condition):
            if item.field != last and item.field in out:
                return None
            ops = out.setdefault(item.field, {})
            if f"${item.op}" in ops:
                return None
            ops[f"${item.op}"] = list(item.value) if item.op in LIST_OPS else item.value
            last = item.field
            continue
        key = "$not" if isinstance(item, Not) else "$and" if isinstance(item, And) else "$or"
        if key in out:
            return None
        out[key] = to_dict(item.item) if isinstance(item, Not) else [to_dict(i) for i in item.items]
        last = None
    for name, ops in out.items():  # a field with only $eq is written the short way
        if not name.startswith("$") and list(ops) == ["$eq"]:
            out[name] = ops["$eq"]
    return out


# ---- the canonical form ----


def canonical(f: Filter) -> str:
    """A compact, deterministic string: equal strings mean equivalent filters (the cache key's
    part), and common equivalent spellings give equal strings.

    Normalised: nested And/Or flattened, items sorted and de-duplicated, a single item unwrapped;
    Not(Not(x)) = x; Not of eq/in/exists = ne/nin/exists flipped (exact: ne is defined as not eq);
    in/nin lists sorted and de-duplicated, a one-value list written as eq/ne. Numbers: a float
    with an integral value in the int64 range is written as that int (1.0 and 1 compare the same
    in every operator), every other float as Python's shortest repr, which always holds '.' or
    'e', so an int and a float share text only when they are equal. Strings exact (no Unicode
    normalisation); booleans are never numbers."""
    return _canon(f)[1]


def _canon(f: Filter) -> tuple[Any, str]:
    """(normalised node, its text). Nodes: Condition, ("not", text), ("and"|"or", [(node, text)])."""
    if isinstance(f, Condition):
        c = _norm_condition(f)
        return c, _dump_condition(c)
    if isinstance(f, Not):
        inner, text = _canon(f.item)
        if isinstance(inner, tuple) and inner[0] == "not":
            return inner[1]
        if isinstance(inner, Condition) and inner.op in _NEGATED:
            c = _negate(inner)
            return c, _dump_condition(c)
        return ("not", (inner, text)), '{"$not":' + text + "}"
    kind = "and" if isinstance(f, And) else "or"
    parts: dict[str, Any] = {}
    for item in f.items:
        node, text = _canon(item)
        if isinstance(node, tuple) and node[0] == kind:
            parts.update((t, n) for n, t in node[1])
        else:
            parts[text] = node
    if len(parts) == 1:
        text, node = parts.popitem()
        return node, text
    texts = sorted(parts)
    return (kind, [(parts[t], t) for t in texts]), '{"$' + kind + '":[' + ",".join(texts) + "]}"


_NEGATED = {"eq": "ne", "ne": "eq", "in": "nin", "nin": "in", "exists": "exists"}
_KIND_ORDER = {"bool": 0, "number": 1, "string": 2}


def _negate(c: Condition) -> Condition:
    value = (not c.value) if c.op == "exists" else c.value
    return Condition(c.field, _NEGATED[c.op], value)


def _norm_number(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer() and INT64_RANGE[0] <= v <= INT64_RANGE[1]:
        return int(v)
    return v


def _norm_condition(c: Condition) -> Condition:
    if c.op in LIST_OPS:
        values = {(value_kind(v), _norm_number(v)) for v in c.value}
        if len(values) == 1:
            return Condition(c.field, "eq" if c.op == "in" else "ne", values.pop()[1])
        ordered = tuple(v for _, v in sorted(values, key=lambda kv: (_KIND_ORDER[kv[0]], kv[1])))
        return Condition(c.field, c.op, ordered)
    if c.op == "exists":
        return c
    return Condition(c.field, c.op, _norm_number(c.value))


def _dump_condition(c: Condition) -> str:
    value = list(c.value) if c.op in LIST_OPS else c.value
    return json.dumps({c.field: {f"${c.op}": value}}, separators=(",", ":"), allow_nan=False)


# ---- the reference evaluator ----


def matches(f: Filter, payload: Mapping[str, Any] | None) -> bool:
    """Whether a point's payload (a flat dict; None for none) passes the filter: the semantics in
    this module's docstring, one payload at a time, pure Python. Shards must agree with it."""
    if payload is None:
        payload = {}
    if isinstance(f, Condition):
        return _match(f, payload)
    if isinstance(f, And):
        return all(matches(i, payload) for i in f.items)
    if isinstance(f, Or):
        return any(matches(i, payload) for i in f.items)
    return not matches(f.item, payload)


def _same(a: Any, b: Any) -> bool:
    return value_kind(a) == value_kind(b) and a == b


def _match(c: Condition, payload: Mapping[str, Any]) -> bool:
    if c.op == "exists":
        return (c.field in payload) == c.value
    if c.op in ("ne", "nin"):
        return not _holds("eq" if c.op == "ne" else "in", c.value, payload, c.field)
    return _holds(c.op, c.value, payload, c.field)


def _holds(op: str, value: Any, payload: Mapping[str, Any], name: str) -> bool:
    """A positive operator: false on a missing field; on a list, true when any element passes."""
    if name not in payload:
        return False
    stored = payload[name]
    is_list = isinstance(stored, (list, tuple))
    elements = stored if is_list else (stored,)
    if op == "eq":
        return any(_same(e, value) for e in elements)
    if op == "contains":
        return is_list and any(_same(e, value) for e in elements)
    if op == "in":
        wanted = {(value_kind(v), v) for v in value}
        return any((value_kind(e), e) in wanted for e in elements if value_kind(e) != "other")
    compare = _COMPARE[op]
    if isinstance(value, str):  # a datetime bound: stored strings that parse as datetimes, by instant
        bound = parse_datetime(value)
        return any(t is not None and compare(t, bound) for t in map(parse_datetime, elements))
    return any(value_kind(e) == "number" and compare(e, value) for e in elements)


_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
