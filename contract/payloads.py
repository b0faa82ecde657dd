"""Point payloads: one flat JSON object per point, checked once at the edge, stored canonically.

A payload's values are strings, integers (int64), finite floats, booleans, null, or lists of
strings/numbers/booleans: flat, so every field can be indexed and filtered on without paths.
The wire form is JSON text (one per point: readable through grpcurl, and json's C parser is the
fastest way to read it in Python); the stored form is the canonical text (sorted keys, no spaces,
non-ASCII kept), so equal payloads are equal bytes, and it never holds a raw NUL (JSON escapes
control characters), which lets storage join payloads with NUL like ids. "" means no payload;
"{}" is stored as "" too. Stdlib only: the SDK and the server share these rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from simsearch.contract.errors import excerpt, invalid
from simsearch.contract.limits import (INT64_RANGE, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_KEY_CHARS, MAX_PAYLOAD_KEYS,
                                       MAX_PAYLOAD_LIST)

_SCALARS = (str, int, float, bool)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_scalar(value: Any, where: str, *, in_list: bool) -> None:
    if isinstance(value, bool) or isinstance(value, str):
        return
    if isinstance(value, int):
        low, high = INT64_RANGE
        if not low <= value <= high:
            raise invalid(where, f"integers must be in the int64 range [{low}, {high}], got {excerpt(str(value))}")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise invalid(where, f"numbers must be finite, got {value}")
        return
    if value is None and not in_list:
        return
    kind = ("an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else "null"
            if value is None else f"a {type(value).__name__}")
    allowed = "strings, numbers or booleans" if in_list else "a string, number, boolean, null or a list of those"
    raise invalid(where, f"must be {allowed}, got {kind} (payloads are flat)")


def _path(where: str, key: str) -> str:
    """where.key for a plain short name, where[<quoted excerpt>] for anything else."""
    plain = len(key) <= 48 and key.replace("_", "a").replace("-", "a").replace(".", "a").isalnum() and key.isascii()
    return f"{where}.{key}" if plain else f"{where}[{excerpt(key)}]"


def _check_object(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        raise invalid(where, f"must be a JSON object, got {type(obj).__name__}")
    if len(obj) > MAX_PAYLOAD_KEYS:
        raise invalid(where, f"must have at most {MAX_PAYLOAD_KEYS} fields, got {len(obj)}")
    for key, value in obj.items():
        if not 1 <= len(key) <= MAX_PAYLOAD_KEY_CHARS:
            raise invalid(where, f"field names must be 1 to {MAX_PAYLOAD_KEY_CHARS} characters, got {len(key)}")
        at = _path(where, key)
        if key.startswith("$"):
            raise invalid(at, "field names must not start with '$' (filter operators do)")
        if isinstance(value, list):
            if len(value) > MAX_PAYLOAD_LIST:
                raise invalid(at, f"lists must hold at most {MAX_PAYLOAD_LIST} values, got {len(value)}")
            for i, item in enumerate(value):
                _check_scalar(item, f"{at}[{i}]", in_list=True)
        else:
            _check_scalar(value, at, in_list=False)


def canonical(text: str, where: str = "payload") -> str:
    """The stored form of one payload's JSON text; InvalidArgument naming `where` (and the field)."""
    if not text:
        return ""
    if len(text) > MAX_PAYLOAD_BYTES or (not text.isascii() and len(text.encode("utf-8", "surrogatepass"))
                                         > MAX_PAYLOAD_BYTES):
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_PAYLOAD_BYTES:
            raise invalid(where, f"must be at most {MAX_PAYLOAD_BYTES} bytes of JSON, got {size}")
    try:
        obj = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as e:
        raise invalid(where, f"is not valid JSON ({excerpt(str(e))})") from None
    _check_object(obj, where)
    if not obj:
        return ""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_payloads(texts: Sequence[str], n: int, field: str = "payloads") -> list[str] | None:
    """The canonical payloads of a request for n points: None when it sends none, else one per point."""
    if not len(texts):
        return None
    if len(texts) != n:
        raise invalid(field, f"must be empty or hold one payload per id ({n}), got {len(texts)}")
    return [canonical(t, f"{field}[{i}]") for i, t in enumerate(texts)]


def encode(payload: dict | None, where: str = "payload") -> str:
    """A payload dict as the JSON text a request carries (the SDK's side); checked like the server does."""
    if not payload:
        return ""
    _check_object(payload, where)  # first: its messages name the field, json's would not
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_PAYLOAD_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
        raise invalid(where, f"must be at most {MAX_PAYLOAD_BYTES} bytes of JSON, got "
                             f"{len(text.encode('utf-8', 'surrogatepass'))}")
    return text


def merge(old: str, patch: dict, delete_keys: Sequence[str] = (), *, replace: bool = False,
          where: str = "payload") -> str:
    """A stored payload with `patch` set on it (or replacing it) and `delete_keys` removed, canonical;
    InvalidArgument naming `where` when the result passes the size bound."""
    obj = {} if replace or not old else json.loads(old)
    obj.update(patch)
    for key in delete_keys:
        obj.pop(key, None)
    if not obj:
        return ""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_PAYLOAD_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
        raise invalid(where, f"would be {len(text.encode('utf-8', 'surrogatepass'))} bytes of JSON after the change, "
                             f"over the {MAX_PAYLOAD_BYTES}-byte bound; none of the points on its shard was changed")
    return text


def check_keys(keys: Sequence[str], field: str = "delete_keys") -> list[str]:
    """Field names to remove: each 1 to MAX_PAYLOAD_KEY_CHARS characters, at most MAX_PAYLOAD_KEYS of them."""
    if len(keys) > MAX_PAYLOAD_KEYS:
        raise invalid(field, f"must hold at most {MAX_PAYLOAD_KEYS} names, got {len(keys)}")
    for i, key in enumerate(keys):
        if not 1 <= len(key) <= MAX_PAYLOAD_KEY_CHARS:
            raise invalid(f"{field}[{i}]", f"must be 1 to {MAX_PAYLOAD_KEY_CHARS} characters, got {len(key)}")
    return list(keys)


def decode(text: str) -> dict:
    """A stored payload as a dict ({} for none)."""
    return json.loads(text) if text else {}


def project(texts: Sequence[str], fields: Sequence[str]) -> list[str]:
    """Canonical payloads cut down to `fields` (those a point has), canonical again ("" when none is left)."""
    wanted = list(dict.fromkeys(fields))
    out = []
    for text in texts:
        if not text:
            out.append("")
            continue
        obj = json.loads(text)
        kept = {f: obj[f] for f in wanted if f in obj}
        out.append(json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False) if kept else "")
    return out
