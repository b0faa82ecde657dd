"""Declared payload indexes: a field's type, what values it admits, and datetimes.

A collection may declare that a payload field is indexed with a type (Qdrant's payload schema,
Milvus's scalar fields). The declaration does three things (docs/architecture.md):
- every later write is checked against it at the edge: a value of another type is refused with
  INVALID_ARGUMENT naming the point and the field, so an indexed field stays one type;
- a filter on it is checked against the type (`{"price": "cheap"}` on a float field can never
  match: refused, not answered with nothing);
- the shards build its column in the background and keep it built across index rebuilds, so no
  search pays for it. A filter on an undeclared field still works: its column is read from the
  payloads on first use (`shard/filtering.py`), and the reply's diagnostics name the field.

Types, and the values each admits (null always; a list when every element is admitted):
keyword = strings; integer = int64 integers; float = numbers (ints and floats compare exactly);
bool = booleans; datetime = RFC 3339 / ISO 8601 strings, compared as instants by range filters
(a string without an offset is UTC, as in Qdrant). Stdlib only: the SDK and the server share it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from simsearch.contract.datetimes import parse_datetime
from simsearch.contract.errors import excerpt, invalid
from simsearch.contract.filters import RANGE_OPS, And, Condition, Filter, Not, Or, check_field_name

INDEX_TYPES = ("keyword", "integer", "float", "bool", "datetime")
MAX_PAYLOAD_INDEXES = 64  # per collection: each is a column on every shard
_WANTS = {"keyword": "a string", "integer": "an integer", "float": "a number", "bool": "a boolean",
          "datetime": "an RFC 3339 datetime string (e.g. '2026-11-30T08:00:00Z')"}


def _admits(kind: str, v: Any) -> bool:
    if kind == "keyword":
        return isinstance(v, str)
    if kind == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "bool":
        return isinstance(v, bool)
    return parse_datetime(v) is not None  # datetime


def admits(kind: str, value: Any) -> bool:
    """Whether a stored payload value fits an index of `kind`: null, a scalar of the type, or a list of them."""
    if value is None:
        return True
    if isinstance(value, list):
        return all(_admits(kind, v) for v in value)
    return _admits(kind, value)


def _describe(v: Any) -> str:
    return f"{excerpt(json.dumps(v, ensure_ascii=False))} ({type(v).__name__})"


def check_index(field: str, kind: str, field_path: str = "field", type_path: str = "type") -> tuple[str, str]:
    """A declaration's field name (the payload key rules) and type; InvalidArgument naming the path."""
    check_field_name(field, field_path)
    if kind not in INDEX_TYPES:
        raise invalid(type_path, f"must be one of {', '.join(INDEX_TYPES)}, got {excerpt(kind)}")
    return field, kind


def check_indexes(pairs: Sequence[tuple[str, str]], where: str = "payload_indexes") -> dict[str, str]:
    """A collection's declarations at creation: each valid, no field twice, at most MAX_PAYLOAD_INDEXES."""
    if len(pairs) > MAX_PAYLOAD_INDEXES:
        raise invalid(where, f"must hold at most {MAX_PAYLOAD_INDEXES} indexes, got {len(pairs)}")
    out: dict[str, str] = {}
    for i, (field, kind) in enumerate(pairs):
        check_index(field, kind, f"{where}[{i}].field", f"{where}[{i}].type")
        if field in out:
            raise invalid(f"{where}[{i}]", f"field {excerpt(field)} is declared twice")
        out[field] = kind
    return out


def _refuse(where: str, point: str | None, field: str, kind: str, value: Any) -> Exception:
    who = f"point {excerpt(point)}: " if point is not None else ""
    return invalid(where, f"{who}field {excerpt(field)} is indexed as {kind} and takes {_WANTS[kind]}, null or a "
                          f"list of those; got {_describe(value)}")


def check_document(doc: Mapping[str, Any], schema: Mapping[str, str], where: str, point: str | None = None) -> None:
    """One payload (a dict) against the indexed fields; InvalidArgument naming the point and the field."""
    for field, kind in schema.items():
        if field in doc and not admits(kind, doc[field]):
            raise _refuse(f"{where}.{field}" if field.isidentifier() else where, point, field, kind, doc[field])


def check_documents(texts: Sequence[str], ids: Sequence[str], schema: Mapping[str, str],
                    field: str = "payloads") -> None:
    """A request's canonical payloads against the indexed fields, before anything is written. A payload is
    parsed only when its text mentions an indexed field's name (a JSON key is written "name":)."""
    if not schema:
        return
    keys = [json.dumps(f, ensure_ascii=False) + ":" for f in schema]
    for i, text in enumerate(texts):
        if text and any(k in text for k in keys):
            check_document(json.loads(text), schema, f"{field}[{i}]", ids[i])


# ---- filters against the declared types ----


def _check_condition(c: Condition, kind: str) -> None:
    where = f"filter.{c.field}" if c.field.isidentifier() else "filter"
    op = c.op
    if op == "exists":
        return
    if op in RANGE_OPS:
        if kind in ("integer", "float"):
            ok = isinstance(c.value, (int, float))
        elif kind == "datetime":
            ok = isinstance(c.value, str)
        else:
            ok = False
        if not ok:
            wants = {"datetime": "an RFC 3339 datetime string", "integer": "a number", "float": "a number"}.get(kind)
            raise invalid(where, f"${op}: field {excerpt(c.field)} is indexed as {kind}; "
                                 + (f"a range on it needs {wants}, got {_describe(c.value)}" if wants
                                    else "ranges apply to integer, float and datetime fields"))
        return
    values = c.value if op in ("in", "nin") else (c.value,)
    for v in values:
        if v is None:
            continue
        fits = _admits(kind, v) or (kind == "integer" and isinstance(v, float))  # 3.0 == 3; 2.5 matches nothing
        if not fits:
            raise invalid(where, f"${op}: field {excerpt(c.field)} is indexed as {kind} and holds {_WANTS[kind]}; "
                                 f"got {_describe(v)}")


def check_filter(f: Filter, schema: Mapping[str, str]) -> list[str]:
    """Refuse conditions whose values can never match an indexed field's type; return the fields the filter
    reads that have no index (sorted; reported in a search's diagnostics)."""
    unindexed: set[str] = set()
    stack = [f]
    while stack:
        node = stack.pop()
        if isinstance(node, Condition):
            kind = schema.get(node.field)
            if kind is None:
                unindexed.add(node.field)
            else:
                _check_condition(node, kind)
        elif isinstance(node, Not):
            stack.append(node.item)
        elif isinstance(node, (And, Or)):
            stack.extend(node.items)
    return sorted(unindexed)
