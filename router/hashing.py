"""Stable id -> shard assignment, vectorised over the batch.

Python's `hash()` is salted per process, so it cannot route writes. This is FNV-1a over the
id's Unicode code points with a splitmix64 finaliser, computed column by column (one numpy
step per character position, not per id), and independent of the batch's padding width.
"""

from __future__ import annotations

import numpy as np

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _mix(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def id_hash(ids: list[str]) -> np.ndarray:
    arr = np.asarray(ids, dtype=np.str_)  # (n,) fixed-width UCS-4
    n = len(arr)
    width = arr.dtype.itemsize // 4
    points = arr.view(np.uint32).reshape(n, width).astype(np.uint64)  # (n, width)
    lengths = np.char.str_len(arr)
    h = np.full(n, _FNV_OFFSET, np.uint64)
    for j in range(width):
        h = np.where(j < lengths, (h ^ points[:, j]) * _FNV_PRIME, h)
    return _mix(h)


def shard_of(ids: list[str], shards: int) -> np.ndarray:
    """(n,) int64 shard index per id."""
    if shards == 1 or not ids:
        return np.zeros(len(ids), np.int64)
    return (id_hash(ids) % np.uint64(shards)).astype(np.int64)


def group_by_shard(ids: list[str], shards: int) -> list[np.ndarray]:
    """Positions of ids owned by each shard, in request order within each shard."""
    owner = shard_of(ids, shards)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(shards + 1))
    return [order[bounds[s] : bounds[s + 1]] for s in range(shards)]
