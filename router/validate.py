"""Request validation at the front door, before anything is routed.

Everything is checked before the first shard sees the request, so a bad batch is
refused whole and stored data is never half-updated. Messages name the field and the
allowed range.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simsearch.contract.errors import invalid
from simsearch.contract.limits import (MAX_BATCH, MAX_ID_CHARS, MAX_K, MAX_LEAVES, MAX_OVERSAMPLE, MAX_QUERIES,
                                       MAX_TIMEOUT_MS)
from simsearch.shard.config import CollectionSpec, check_rows


def check_ids(ids: list[str], field: str = "ids") -> list[str]:
    if not ids:
        raise invalid(field, f"must hold 1 to {MAX_BATCH} ids, got 0")
    if len(ids) > MAX_BATCH:
        raise invalid(field, f"must hold 1 to {MAX_BATCH} ids, got {len(ids)}; split the batch")
    if "\x00" in "".join(ids):  # numpy (and so snapshots) would strip trailing NULs, merging ids
        bad = next(i for i, x in enumerate(ids) if "\x00" in x)
        raise invalid(f"{field}[{bad}]", "must not contain NUL characters")
    arr = np.asarray(ids, dtype=np.str_)
    lengths = np.char.str_len(arr)
    bad = np.flatnonzero((lengths == 0) | (lengths > MAX_ID_CHARS))
    if len(bad):
        raise invalid(f"{field}[{bad[0]}]", f"must be 1 to {MAX_ID_CHARS} characters, got {int(lengths[bad[0]])}")
    if len(set(ids)) != len(ids):
        uniq, counts = np.unique(arr, return_counts=True)
        dup = uniq[counts > 1][0]
        raise invalid(field, f"must be unique within one request; {str(dup)!r} appears {int(counts[counts > 1][0])} times")
    return ids


def check_vectors(vectors: np.ndarray, spec: CollectionSpec, field: str, rows: int | None = None,
                  max_rows: int = MAX_BATCH) -> np.ndarray:
    check_shape(vectors, spec, field, rows, max_rows)
    check_rows(vectors, spec.metric, field)
    return vectors


def check_shape(vectors: np.ndarray, spec: CollectionSpec, field: str, rows: int | None = None,
                max_rows: int = MAX_BATCH) -> None:
    """Row count and dimension only: what must hold before a query's bytes are looked up in the
    cache (the values are checked before anything is computed from them, or admitted)."""
    n, d = vectors.shape
    if n == 0:
        raise invalid(field, f"must hold 1 to {max_rows} rows, got 0")
    if n > max_rows:
        raise invalid(field, f"must hold 1 to {max_rows} rows, got {n}; split the batch")
    if d != spec.dim:
        raise invalid(field, f"must have dimension {spec.dim} (collection {spec.name!r}), got {d}")
    if rows is not None and n != rows:
        raise invalid(field, f"must have one row per id ({rows}), got {n}")


class SearchOptions(NamedTuple):  # a tuple: built per search, ~3x cheaper than a frozen dataclass
    k: int
    leaves_to_search: int
    oversample: int
    exact: bool
    timeout_ms: int
    allow_partial: bool
    no_cache: bool

    def cache_tag(self) -> str:
        """The parameters that change results, for the cache key."""
        return f"l{self.leaves_to_search}o{self.oversample}e{int(self.exact)}"


def check_search(k: int, leaves_to_search: int, oversample: int, exact: bool, timeout_ms: int,
                 allow_partial: bool, no_cache: bool) -> SearchOptions:
    if not 1 <= k <= MAX_K:
        raise invalid("k", f"must be in [1, {MAX_K}], got {k}")
    if not 0 <= leaves_to_search <= MAX_LEAVES:
        raise invalid("params.leaves_to_search", f"must be 0 (collection default) or in [1, {MAX_LEAVES}], got {leaves_to_search}")
    if not 0 <= oversample <= MAX_OVERSAMPLE:
        raise invalid("params.oversample", f"must be 0 (collection default) or in [1, {MAX_OVERSAMPLE}], got {oversample}")
    if not 0 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise invalid("params.timeout_ms", f"must be 0 (call deadline) or in [1, {MAX_TIMEOUT_MS}], got {timeout_ms}")
    return SearchOptions(k, leaves_to_search, oversample, exact, timeout_ms, allow_partial, no_cache)
