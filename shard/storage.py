"""Append-only row storage for one shard: full-precision vectors, ids, a liveness mask.

Rows are immutable once written: an upsert of an existing id tombstones the old row and
appends a new one. That is what lets searches read a consistent `View` without holding a
lock, and lets a rebuild copy rows [0, m) while writes keep appending after m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class View:
    """A point-in-time, read-only picture of the rows a search may look at."""

    vectors: np.ndarray  # (cap, d) float32; rows [0, n) are valid
    ids: np.ndarray  # (cap,) object (str)
    alive: np.ndarray  # (cap,) bool; read live, so deletes are seen at once
    n: int


class Rows:
    """Growable arrays plus the id -> row map. Not thread-safe: the shard locks around writes."""

    def __init__(self, dim: int, capacity: int = 1024):
        self.dim = dim
        self.vectors = np.empty((capacity, dim), np.float32)
        self.ids = np.empty(capacity, object)
        self.alive = np.zeros(capacity, bool)
        self.n = 0
        self.dead = 0
        self.row_of: dict[str, int] = {}

    @classmethod
    def from_arrays(cls, vectors: np.ndarray, ids: np.ndarray, alive: np.ndarray, headroom: int = 1024) -> "Rows":
        n, dim = vectors.shape
        rows = cls(dim, capacity=n + headroom)
        rows.vectors[:n] = vectors
        rows.ids[:n] = ids
        rows.alive[:n] = alive
        rows.n = n
        live = np.flatnonzero(alive)
        rows.dead = n - len(live)
        rows.row_of = dict(zip(ids[live].tolist(), live.tolist()))
        return rows

    def view(self) -> View:
        return View(self.vectors, self.ids, self.alive, self.n)

    @property
    def live(self) -> int:
        return self.n - self.dead

    def _grow(self, need: int) -> None:
        cap = len(self.ids)
        if need <= cap:
            return
        cap = max(need, cap * 2)
        # New arrays, old ones untouched: views held by running searches stay valid.
        vectors = np.empty((cap, self.dim), np.float32)
        vectors[: self.n] = self.vectors[: self.n]
        ids = np.empty(cap, object)
        ids[: self.n] = self.ids[: self.n]
        alive = np.zeros(cap, bool)
        alive[: self.n] = self.alive[: self.n]
        self.vectors, self.ids, self.alive = vectors, ids, alive

    def append(self, ids: list[str], vectors: np.ndarray) -> None:
        """Write rows; an id already present is tombstoned first (last write wins)."""
        replaced = self.row_of.keys() & set(ids)
        if replaced:
            self.kill(list(replaced))
        m = len(ids)
        self._grow(self.n + m)
        self.vectors[self.n : self.n + m] = vectors
        self.ids[self.n : self.n + m] = ids
        self.alive[self.n : self.n + m] = True
        self.row_of.update(zip(ids, range(self.n, self.n + m)))
        self.n += m

    def kill(self, ids: list[str]) -> int:
        """Tombstone the rows of these ids; return how many existed."""
        rows = [r for r in map(self.row_of.pop, ids, [None] * len(ids)) if r is not None]
        self.alive[rows] = False
        self.dead += len(rows)
        return len(rows)

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(found mask over ids, their rows)."""
        rows = np.fromiter(map(self.row_of.get, ids, [-1] * len(ids)), np.int64, len(ids))
        found = rows >= 0
        return found, rows[found]
