"""Compact row storage for one shard: two contiguous float32 segments, ids in one string, a liveness mask.

Why this shape: a stored point should cost about its vector. Python objects per point (a str
per id, a dict entry per id) cost several times a 50-d vector, so the bulk of the rows lives in
a *sealed* segment built once per index build and never modified:

- `vectors`: one (S, d) float32 array, exactly the rows the ScaNN index covers (row i = index row i);
- ids: one Python str holding every id followed by NUL (ids never hold NUL; 1 byte per ASCII
  character), plus an int64 offset per row, so an id is one slice and no per-id object exists;
- an id -> row index: the ids' 64-bit hashes sorted (int64) with the rows in that order (int64),
  searched with `np.searchsorted`; a match is confirmed by comparing the id itself, so a hash
  collision can never make one id find another's row.

Rows written since the last build go to the small *fresh* segment (a growable array, a list of
ids and a dict, bounded by the rebuild threshold), which a search scans exactly. An upsert of an
existing id tombstones the old row and appends a new one, so rows never change once written:
searches read a consistent `View` without holding a lock, and a build copies rows [0, m) while
writes keep appending after m. Python's str hash is salted per process; hashes are never stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

from simsearch.contract.limits import longest_utf8

SEP = "\0"


def _hashes(ids: list[str]) -> np.ndarray:
    return np.fromiter(map(hash, ids), np.int64, len(ids))


@dataclass(frozen=True)
class Texts:
    """Strings in one str, each followed by SEP, with an int64 offset per string: no object per string."""

    text: str
    starts: np.ndarray  # (m + 1,): string i is text[starts[i] : starts[i + 1] - 1]

    @classmethod
    def join(cls, items: list[str]) -> "Texts":
        lengths = np.fromiter(map(len, items), np.int64, len(items))
        starts = np.zeros(len(items) + 1, np.int64)
        np.cumsum(lengths + 1, out=starts[1:])
        return cls(SEP.join(items) + SEP if items else "", starts)

    def pick(self, rows: np.ndarray) -> list[str]:
        text, starts = self.text, self.starts
        return [text[a:b] for a, b in zip(starts[rows].tolist(), (starts[rows + 1] - 1).tolist())]


@dataclass(frozen=True)
class Sealed:
    """The rows an index build produced: immutable once made (their liveness lives in `Rows.alive`)."""

    vectors: np.ndarray  # (S, d) float32
    text: str  # every id followed by SEP
    starts: np.ndarray  # (S + 1,) int64: id i is text[starts[i] : starts[i + 1] - 1]
    sorted_hash: np.ndarray  # (S,) int64
    order: np.ndarray  # (S,) int32 (int64 past 2**31 rows): rows in sorted_hash order
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)  # names this generation in checkpoints
    payloads: "Texts | None" = None  # each row's canonical JSON payload; None when no row has one

    @classmethod
    def build(cls, vectors: np.ndarray, ids: list[str], uid: str | None = None,
              payloads: list[str] | None = None) -> "Sealed":
        """Index `ids` (one per row of `vectors`, unique: they were live together)."""
        texts = Texts.join(ids)
        hashes = _hashes(ids)
        order = np.argsort(hashes, kind="stable")
        if len(ids) < 2**31:
            order = order.astype(np.int32)
        docs = Texts.join(payloads) if payloads is not None and any(payloads) else None
        return cls(vectors, texts.text, texts.starts, hashes[order], order, uid or uuid.uuid4().hex, docs)

    @classmethod
    def empty(cls, dim: int) -> "Sealed":
        return cls.build(np.empty((0, dim), np.float32), [])

    @property
    def size(self) -> int:
        return len(self.vectors)

    def id_list(self, rows: np.ndarray) -> list[str]:
        return Texts(self.text, self.starts).pick(rows)

    def payload_list(self, rows: np.ndarray) -> list[str]:
        return self.payloads.pick(rows) if self.payloads is not None else [""] * len(rows)

    def find(self, ids: list[str], hashes: np.ndarray) -> np.ndarray:
        """The row of each id (-1 where absent), whatever its liveness."""
        rows = np.full(len(ids), -1, np.int64)
        if not self.size or not ids:
            return rows
        lo = np.searchsorted(self.sorted_hash, hashes, "left")
        hi = np.searchsorted(self.sorted_hash, hashes, "right")
        one = np.flatnonzero(hi - lo == 1)  # the common case: confirm the id, vectorised over the matches
        if len(one):
            cand = self.order[lo[one]]
            same = np.array(self.id_list(cand), object) == np.array([ids[i] for i in one.tolist()], object)
            rows[one[same]] = cand[same]
        for i in np.flatnonzero(hi - lo > 1).tolist():  # a 64-bit hash shared by different ids: rare
            for j in range(lo[i], hi[i]):
                r = int(self.order[j])
                if self.id_list(np.array([r]))[0] == ids[i]:
                    rows[i] = r
                    break
        return rows

    def max_id_bytes(self, alive: np.ndarray) -> int:
        if not self.size or not alive.any():
            return 0
        if self.text.isascii():
            return int((np.diff(self.starts)[alive] - 1).max())
        return longest_utf8(self.id_list(np.flatnonzero(alive)))


@dataclass(frozen=True)
class View:
    """A point-in-time, read-only picture of the rows a search may look at. Rows [0, sealed.size) are
    the sealed segment, rows [sealed.size, n) the fresh one."""

    sealed: Sealed
    fresh: np.ndarray  # (cap, d) float32; fresh rows [0, n - sealed.size) are valid
    fresh_ids: list[str]  # append-only: entries past n may appear, entries before n never change
    alive: np.ndarray  # (cap,) bool over all rows; read live, so deletes are seen at once
    n: int
    fresh_payloads: list[str]  # like fresh_ids: each fresh row's canonical JSON payload ("" for none)

    @property
    def s(self) -> int:
        return self.sealed.size

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Copies of these rows' vectors, in order."""
        rows = np.asarray(rows, np.int64)
        s = self.s
        if not len(rows) or rows.max() < s:
            return self.sealed.vectors[rows]
        if rows.min() >= s:
            return self.fresh[rows - s]
        out = np.empty((len(rows), self.fresh.shape[1]), np.float32)
        low = rows < s
        out[low] = self.sealed.vectors[rows[low]]
        out[~low] = self.fresh[rows[~low] - s]
        return out

    def id_list(self, rows: np.ndarray) -> list[str]:
        return self._texts(rows, self.sealed.id_list, self.fresh_ids)

    def payload_list(self, rows: np.ndarray) -> list[str]:
        """Each row's canonical JSON payload ("" for none)."""
        return self._texts(rows, self.sealed.payload_list, self.fresh_payloads)

    def _texts(self, rows: np.ndarray, sealed_pick, fresh: list[str]) -> list[str]:
        rows = np.asarray(rows, np.int64)
        s = self.s
        low = rows < s
        if low.all():
            return sealed_pick(rows)
        if not low.any():
            return [fresh[r] for r in (rows - s).tolist()]
        out = np.empty(len(rows), object)
        out[low] = sealed_pick(rows[low])
        out[~low] = [fresh[r] for r in (rows[~low] - s).tolist()]
        return out.tolist()

    def ids(self, rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """An object array shaped like `rows`: the id of each valid row, "" elsewhere."""
        out = np.full(rows.shape, "", object)
        out[valid] = self.id_list(rows[valid]) if valid.any() else []
        return out

    def payloads(self, rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Like `ids`, the payload (canonical JSON, "" for none) of each valid row."""
        out = np.full(rows.shape, "", object)
        out[valid] = self.payload_list(rows[valid]) if valid.any() else []
        return out


class Rows:
    """A sealed segment, a growable fresh segment, and the liveness of every row. Not thread-safe: the
    shard locks around writes."""

    def __init__(self, dim: int, sealed: Sealed | None = None, capacity: int = 1024):
        self.dim = dim
        self.sealed = sealed if sealed is not None else Sealed.empty(dim)
        s = self.sealed.size
        self.fresh = np.empty((capacity, dim), np.float32)
        self.fresh_ids: list[str] = []
        self.fresh_payloads: list[str] = []
        self.row_of: dict[str, int] = {}  # live fresh ids -> row
        self.alive = np.zeros(s + capacity, bool)
        self.alive[:s] = True
        self.n = s
        self.dead = 0

    @classmethod
    def assemble(cls, sealed: Sealed, sealed_alive: np.ndarray, fresh: np.ndarray, fresh_ids: list[str],
                 fresh_alive: np.ndarray, fresh_payloads: list[str] | None = None, headroom: int = 1024) -> "Rows":
        """Rows from parts (a build's result, a checkpoint): the liveness given, the fresh index rebuilt."""
        rows = cls(sealed.vectors.shape[1], sealed, capacity=len(fresh) + headroom)
        s, f = sealed.size, len(fresh)
        rows.fresh[:f] = fresh
        rows.fresh_ids = list(fresh_ids)
        rows.fresh_payloads = list(fresh_payloads) if fresh_payloads is not None else [""] * f
        rows.alive[:s] = sealed_alive
        rows.alive[s:s + f] = fresh_alive
        rows.n = s + f
        rows.dead = rows.n - int(sealed_alive.sum()) - int(fresh_alive.sum())
        live = np.flatnonzero(fresh_alive)
        rows.row_of = dict(zip([rows.fresh_ids[i] for i in live.tolist()], (live + s).tolist()))
        return rows

    def view(self) -> View:
        return View(self.sealed, self.fresh, self.fresh_ids, self.alive, self.n, self.fresh_payloads)

    @property
    def live(self) -> int:
        return self.n - self.dead

    @property
    def fresh_count(self) -> int:
        return self.n - self.sealed.size

    def _grow(self, extra: int) -> None:
        f = self.fresh_count
        if f + extra <= len(self.fresh):
            return
        cap = max(f + extra, len(self.fresh) * 2)
        # New arrays, old ones untouched: views held by running searches stay valid.
        fresh = np.empty((cap, self.dim), np.float32)
        fresh[:f] = self.fresh[:f]
        alive = np.zeros(self.sealed.size + cap, bool)
        alive[: self.n] = self.alive[: self.n]
        self.fresh, self.alive = fresh, alive

    def find(self, ids: list[str]) -> np.ndarray:
        """The live row of each id, -1 where there is none."""
        rows = np.fromiter(map(self.row_of.get, ids, [-1] * len(ids)), np.int64, len(ids))
        rest = np.flatnonzero(rows < 0)
        if len(rest) and self.sealed.size:
            names = [ids[i] for i in rest.tolist()] if len(rest) < len(ids) else ids
            sealed = self.sealed.find(names, _hashes(names))
            ok = sealed >= 0
            ok[ok] = self.alive[sealed[ok]]
            rows[rest[ok]] = sealed[ok]
        return rows

    def append(self, ids: list[str], vectors: np.ndarray, payloads: list[str] | None = None) -> None:
        """Write rows; an id already present is tombstoned first (last write wins: its payload too).
        Ids are unique within one call (the router checks). payloads: canonical JSON per row, or None."""
        old = self.find(ids)
        if (old >= 0).any():
            self._kill_rows(ids, old)
        m = len(ids)
        self._grow(m)
        f = self.fresh_count
        self.fresh[f:f + m] = vectors
        self.fresh_ids.extend(ids)
        self.fresh_payloads.extend(payloads if payloads is not None else [""] * m)
        self.alive[self.n:self.n + m] = True
        self.row_of.update(zip(ids, range(self.n, self.n + m)))
        self.n += m

    def kill(self, ids: list[str]) -> int:
        """Tombstone the rows of these ids; return how many existed."""
        return self._kill_rows(ids, self.find(ids))

    def _kill_rows(self, ids: list[str], rows: np.ndarray) -> int:
        hit = np.flatnonzero(rows >= 0)
        found = rows[hit]
        self.alive[found] = False
        self.dead += len(found)
        pop = self.row_of.pop
        for i in hit[found >= self.sealed.size].tolist():  # fresh ones leave the fresh index
            pop(ids[i], None)
        return len(found)

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(found mask over ids, their rows)."""
        rows = self.find(ids)
        found = rows >= 0
        return found, rows[found]

    def max_id_bytes(self) -> int:
        s = self.sealed.size
        return max(self.sealed.max_id_bytes(self.alive[:s]), longest_utf8(list(self.row_of)))

    def payload_bytes(self) -> int:
        """The live points' payloads, in UTF-8 bytes of their canonical JSON (what a tenant's payload quota
        counts): the sealed segment's from its offsets (encoded only when not ASCII), the fresh rows' one by
        one (they are few)."""
        s, n = self.sealed.size, self.n
        total = 0
        texts = self.sealed.payloads
        if s and texts is not None:
            alive = self.alive[:s]
            if texts.text.isascii():
                total += int((np.diff(texts.starts)[:s] - 1)[alive].sum())
            else:
                total += sum(len(t.encode("utf-8", "surrogatepass")) for t in texts.pick(np.flatnonzero(alive)))
        fresh_alive = self.alive[s:n]
        total += sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass"))
                     for t, ok in zip(self.fresh_payloads, fresh_alive.tolist()) if ok and t)
        return total
