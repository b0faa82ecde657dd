"""Datetimes in payloads and filters: RFC 3339 / ISO 8601 strings compared as instants.

A range filter whose bound is such a string (`{"created": {"$gte": "2026-01-01T00:00:00Z"}}`)
compares stored strings that parse as datetimes by the instant they name; a string without an
offset is UTC (as in Qdrant). Stdlib only.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

MAX_DATETIME_CHARS = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


def parse_datetime(text: object) -> int | None:
    """An RFC 3339 / ISO 8601 datetime as microseconds since 1970-01-01 UTC (no offset: UTC), else None."""
    if not isinstance(text, str) or not 8 <= len(text) <= MAX_DATETIME_CHARS:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return (t - _EPOCH) // _MICRO
