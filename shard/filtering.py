"""Filters over a shard's rows, vectorised: payload columns built once, a boolean mask per filter.

`contract.filters.matches` is the reference (one payload dict at a time, pure Python); this module
must agree with it on every row, and does so by keeping each field's values in columns that
numpy can search:

- `FieldColumn`, one per payload field of a segment: the rows where the field exists, holds a
  list, holds null; its ints (int64) and floats (float64) apart, each sorted by value with the
  row of every value beside it (a list contributes one entry per element, so "any element
  passes" is "some entry passes"); its strings as posting lists (a dict string -> code, the rows
  sorted by code and a start offset per code); its booleans as two row arrays. Ints are never
  cast to float nor floats to int: a bound of the other kind is turned into an exact bound of
  the column's own kind (an int column's `> 2.5` is `>= 3`; a float column's `> 2**53 + 1`
  looks at float(2**53 + 1) and decides the values equal to it by one exact Python comparison).
- `Columns`: every field of one segment, from its canonical JSON payloads in one pass
  (`json.loads` once per row that has a payload).
- `evaluate(filter, columns, n)`: the mask over the segment's rows: a condition from the
  columns, And = &, Or = |, Not = ~, `$ne` / `$nin` = ~`$eq` / ~`$in` (so they, and every
  negation, pass rows where the field is missing, as the reference says).
- `SegmentFilter`: per shard. The sealed segment is immutable, so its columns are built on
  first use and kept per generation (`Sealed.uid`). The fresh segment is append-only (entries
  before `View.n` never change) and up to the rebuild threshold long (tens of thousands of
  rows), too long to parse on every search, so its columns are kept in chunks over row ranges:
  rows appended since the last call become a new chunk, and a chunk no larger than twice its
  successor is merged with it (re-parsed), so a shard holds O(log fresh) chunks and each row is
  parsed O(log fresh) times over the segment's life. `mask_for(view, f)` ANDs liveness in.

Plain Python and numpy: shard code imports no gRPC or Ray.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from simsearch.contract.datetimes import parse_datetime
from simsearch.contract.filters import And, Condition, Filter, Not, Or, value_kind
from simsearch.contract.limits import INT64_RANGE
from simsearch.shard.storage import SEP, Sealed, Texts, View

_I64_MIN, _I64_MAX = INT64_RANGE
_NO_ROWS = np.zeros(0, np.int32)
_NO_INTS = np.zeros(0, np.int64)
_NO_FLOATS = np.zeros(0, np.float64)


def _row_dtype(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64


@dataclass(frozen=True, eq=False)
class FieldColumn:
    """One field's values over one segment's rows (row numbers local to the segment)."""

    present: np.ndarray  # rows where the field exists (ascending)
    lists: np.ndarray  # rows where it holds a list (ascending)
    nulls: np.ndarray  # rows where it holds null (ascending)
    int_values: np.ndarray  # int64, ascending: every int, list elements included
    int_rows: np.ndarray  # the row of each int value
    float_values: np.ndarray  # float64, ascending
    float_rows: np.ndarray
    str_codes: dict[str, int]  # each distinct string -> its code
    str_starts: np.ndarray  # (codes + 1,) int64: code c's rows are str_rows[str_starts[c]:str_starts[c + 1]]
    str_rows: np.ndarray
    true_rows: np.ndarray
    false_rows: np.ndarray
    # Derived on first use (a datetime range), then kept: (instants ascending, the row of each).
    derived: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        """Array memory plus an estimate of the string dictionary's (a str object and a dict slot each)."""
        arrays = (self.present, self.lists, self.nulls, self.int_values, self.int_rows, self.float_values,
                  self.float_rows, self.str_starts, self.str_rows, self.true_rows, self.false_rows)
        strings = sum(map(len, self.str_codes)) + 100 * len(self.str_codes)
        return sum(a.nbytes for a in arrays) + strings

    def _entry_instants(self) -> tuple[np.ndarray, np.ndarray]:
        """Per string entry (str_rows' order): its instant, and whether its string parses as a datetime."""
        cached = self.derived.get("entries")
        if cached is None:
            parsed = [parse_datetime(s) for s in self.str_codes]  # each distinct string once
            instants = np.array([-1 if t is None else t for t in parsed], np.int64)
            valid = np.array([t is not None for t in parsed], bool)
            code = np.repeat(np.arange(len(parsed)), np.diff(self.str_starts))
            cached = self.derived["entries"] = (instants[code], valid[code])
        return cached

    def datetimes(self) -> tuple[np.ndarray, np.ndarray]:
        """The strings that parse as datetimes (contract/datetimes.py) as (microseconds ascending, rows),
        derived on first use and kept with the column."""
        cached = self.derived.get("datetimes")
        if cached is None:
            instants, valid = self._entry_instants()
            values, rows = instants[valid], self.str_rows[valid]
            order = np.argsort(values, kind="stable")
            cached = self.derived["datetimes"] = (values[order], rows[order])
        return cached

    def rows_not_admitted(self, kind: str) -> np.ndarray:
        """Rows holding some value an index of `kind` does not admit (contract/payload_index.py), ascending."""
        parts = []
        if kind == "datetime":
            parts.append(self.str_rows[~self._entry_instants()[1]])
        elif kind != "keyword":
            parts.append(self.str_rows)
        if kind not in ("integer", "float"):
            parts.append(self.int_rows)
        if kind != "float":
            parts.append(self.float_rows)
        if kind != "bool":
            parts += [self.true_rows, self.false_rows]
        return np.unique(np.concatenate(parts)) if parts else _NO_ROWS


class _Builder:
    """One field's values while a segment is read: plain lists, turned into arrays by `finish`."""

    __slots__ = ("present", "lists", "nulls", "int_rows", "ints", "float_rows", "floats", "str_rows", "strs",
                 "true_rows", "false_rows")

    def __init__(self) -> None:
        self.present: list[int] = []
        self.lists: list[int] = []
        self.nulls: list[int] = []
        self.int_rows: list[int] = []
        self.ints: list[int] = []
        self.float_rows: list[int] = []
        self.floats: list[float] = []
        self.str_rows: list[int] = []
        self.strs: list[str] = []
        self.true_rows: list[int] = []
        self.false_rows: list[int] = []

    def add(self, row: int, v: object) -> None:
        """One scalar (a list's element or a field's value)."""
        t = type(v)
        if t is str:
            self.str_rows.append(row)
            self.strs.append(v)  # type: ignore[arg-type]
        elif t is int:
            self.int_rows.append(row)
            self.ints.append(v)  # type: ignore[arg-type]
        elif t is float:
            self.float_rows.append(row)
            self.floats.append(v)  # type: ignore[arg-type]
        elif t is bool:
            (self.true_rows if v else self.false_rows).append(row)
        elif v is None:
            self.nulls.append(row)
        else:  # canonical payloads hold nothing else (contract/payloads.py checked them)
            raise ValueError(f"a payload value of type {t.__name__} cannot be filtered on")

    def finish(self, dtype: type) -> FieldColumn:
        def rows(items: list[int]) -> np.ndarray:
            return np.array(items, dtype) if items else _NO_ROWS.astype(dtype, copy=False)

        def by_value(values: list, value_dtype: type, row_items: list[int]) -> tuple[np.ndarray, np.ndarray]:
            if not values:
                return np.zeros(0, value_dtype), rows([])
            v = np.array(values, value_dtype)
            order = np.argsort(v, kind="stable")
            return v[order], rows(row_items)[order]

        int_values, int_rows = by_value(self.ints, np.int64, self.int_rows)
        float_values, float_rows = by_value(self.floats, np.float64, self.float_rows)
        codes: dict[str, int] = {}
        if self.strs:
            setdefault = codes.setdefault
            code = np.array([setdefault(s, len(codes)) for s in self.strs], np.int64)
            order = np.argsort(code, kind="stable")
            str_rows = rows(self.str_rows)[order]
            starts = np.zeros(len(codes) + 1, np.int64)
            np.cumsum(np.bincount(code, minlength=len(codes)), out=starts[1:])
        else:
            str_rows, starts = rows([]), np.zeros(1, np.int64)
        return FieldColumn(rows(self.present), rows(self.lists), rows(self.nulls), int_values, int_rows,
                           float_values, float_rows, codes, starts, str_rows, rows(self.true_rows),
                           rows(self.false_rows))


@dataclass(frozen=True, eq=False)
class Columns:
    """Every payload field of one segment of `n` rows, as columns. Immutable once built."""

    n: int
    fields: dict[str, FieldColumn] = field(default_factory=dict)
    read: frozenset[str] = frozenset()  # the fields read from the payloads (with or without a column)
    complete: bool = True  # every field was read

    @classmethod
    def build(cls, payloads: Sequence[str], fields: frozenset[str] | None = None) -> "Columns":
        """From canonical JSON payloads, one per row ("" for none): one pass, each payload parsed once.
        fields: only these (the rest are not kept); None: every field."""
        builders: dict[str, _Builder] = {}
        loads = json.loads
        for row, text in enumerate(payloads):
            if not text:
                continue
            doc = loads(text)
            items = doc.items() if fields is None else [(f, doc[f]) for f in fields if f in doc]
            for name, value in items:
                b = builders.get(name)
                if b is None:
                    b = builders[name] = _Builder()
                b.present.append(row)
                if type(value) is list:
                    b.lists.append(row)
                    add = b.add
                    for element in value:
                        add(row, element)
                else:
                    b.add(row, value)
        n = len(payloads)
        dtype = _row_dtype(n)
        return cls(n, {name: b.finish(dtype) for name, b in builders.items()},
                   frozenset(builders) if fields is None else fields, fields is None)

    @classmethod
    def of_texts(cls, texts: Texts | None, n: int, fields: frozenset[str] | None = None) -> "Columns":
        """A segment's payloads kept as one string (`storage.Texts`), or None for none."""
        if texts is None or not n:
            return cls(n, {}, frozenset() if fields is None else fields, fields is None)
        items = texts.text.split(SEP)[:n]  # payloads never hold NUL; the text ends with one
        if len(items) != n:
            raise ValueError(f"the segment's payload text holds {len(items)} payloads, expected {n}")
        return cls.build(items, fields)

    def covers(self, fields: frozenset[str]) -> bool:
        """Whether every field in `fields` was read (a field no row holds is read too: it has no column)."""
        return self.complete or fields <= self.read

    def merged(self, other: "Columns") -> "Columns":
        """These columns and `other`'s (same rows)."""
        return Columns(self.n, {**self.fields, **other.fields}, self.read | other.read, self.complete or other.complete)

    def without(self, fields: frozenset[str]) -> "Columns":
        return Columns(self.n, {f: c for f, c in self.fields.items() if f not in fields}, self.read - fields, False)

    @property
    def nbytes(self) -> int:
        """The columns' array memory (the string dictionaries not counted)."""
        return sum(c.nbytes for c in self.fields.values())


# ---- evaluation ----


def evaluate(f: Filter, columns: Columns, n: int | None = None) -> np.ndarray:
    """Which of the segment's rows [0, n) pass `f` (n defaults to columns.n; liveness not applied)."""
    n = columns.n if n is None else n
    if n > columns.n:
        raise ValueError(f"the columns cover {columns.n} rows, asked for {n}")
    mask = _eval(f, columns, columns.n)
    return mask if n == columns.n else mask[:n]


def _eval(f: Filter, columns: Columns, n: int) -> np.ndarray:
    if isinstance(f, Condition):
        return _condition(f, columns, n)
    if isinstance(f, Not):
        out = _eval(f.item, columns, n)
        np.logical_not(out, out=out)
        return out
    items = f.items
    out = _eval(items[0], columns, n)
    if isinstance(f, And):
        for item in items[1:]:
            if not out.any():
                break
            out &= _eval(item, columns, n)
    elif isinstance(f, Or):
        for item in items[1:]:
            if out.all():
                break
            out |= _eval(item, columns, n)
    else:
        raise TypeError(f"not a filter: {type(f).__name__}")
    return out


def _condition(c: Condition, columns: Columns, n: int) -> np.ndarray:
    col = columns.fields.get(c.field)
    op = c.op
    if op == "exists":
        mask = _mask(n, col.present) if col is not None else np.zeros(n, bool)
        return mask if c.value else ~mask
    negate = op in ("ne", "nin")
    if negate:
        op = "eq" if op == "ne" else "in"
    mask = np.zeros(n, bool)
    if col is not None:
        if op == "eq":
            _mark_eq(mask, col, c.value)
        elif op == "in":
            _mark_in(mask, col, c.value)
        elif op == "contains":
            _mark_eq(mask, col, c.value)
            mask &= _mask(n, col.lists)
        else:
            _mark_range(mask, col, op, c.value)
    if negate:
        np.logical_not(mask, out=mask)
    return mask


def _mask(n: int, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(n, bool)
    out[rows] = True
    return out


def _as_int(v: int | float) -> int | None:
    """The int64 equal to number v, or None when no int64 is."""
    if isinstance(v, int):
        return v
    if v.is_integer() and _I64_MIN <= v <= _I64_MAX:
        return int(v)
    return None


def _as_float(v: int | float) -> float | None:
    """The float64 equal to number v, or None when none is (an int float64 cannot hold exactly)."""
    if isinstance(v, float):
        return v
    f = float(v)
    return f if f == v else None  # Python compares int and float exactly


def _strings(col: FieldColumn, s: str) -> np.ndarray:
    code = col.str_codes.get(s)
    if code is None:
        return _NO_ROWS
    return col.str_rows[col.str_starts[code]:col.str_starts[code + 1]]


def _mark_eq(mask: np.ndarray, col: FieldColumn, v: object) -> None:
    kind = value_kind(v)
    if kind == "string":
        mask[_strings(col, v)] = True  # type: ignore[arg-type]
    elif kind == "bool":
        mask[col.true_rows if v else col.false_rows] = True
    elif kind == "null":
        mask[col.nulls] = True
    else:
        i = _as_int(v)  # type: ignore[arg-type]
        if i is not None and len(col.int_values):
            x = np.int64(i)
            lo, hi = np.searchsorted(col.int_values, x, "left"), np.searchsorted(col.int_values, x, "right")
            mask[col.int_rows[lo:hi]] = True
        fv = _as_float(v)  # type: ignore[arg-type]
        if fv is not None and len(col.float_values):
            lo, hi = np.searchsorted(col.float_values, fv, "left"), np.searchsorted(col.float_values, fv, "right")
            mask[col.float_rows[lo:hi]] = True


def _mark_in(mask: np.ndarray, col: FieldColumn, values: tuple) -> None:
    if not values:
        return
    kind = value_kind(values[0])  # check_value made the list one kind
    if kind == "string":
        for s in set(values):
            mask[_strings(col, s)] = True
    elif kind == "bool":
        if True in values:
            mask[col.true_rows] = True
        if False in values:
            mask[col.false_rows] = True
    else:
        if len(col.int_values):
            ints = [i for i in map(_as_int, values) if i is not None]
            if ints:
                hit = np.isin(col.int_values, np.array(ints, np.int64))
                mask[col.int_rows[hit]] = True
        if len(col.float_values):
            floats = [f for f in map(_as_float, values) if f is not None]
            if floats:
                hit = np.isin(col.float_values, np.array(floats, np.float64))
                mask[col.float_rows[hit]] = True


def _mark_range(mask: np.ndarray, col: FieldColumn, op: str, bound: int | float | str) -> None:
    """Rows with a number `op` bound (strict for gt/lt), or with a datetime string `op` a datetime bound."""
    if isinstance(bound, str):
        instants, rows = col.datetimes()
        b = parse_datetime(bound)
        if op in ("gt", "gte"):
            mask[rows[int(np.searchsorted(instants, b, "right" if op == "gt" else "left")):]] = True
        else:
            mask[rows[:int(np.searchsorted(instants, b, "left" if op == "lt" else "right"))]] = True
        return
    values = col.int_values
    if len(values):
        # v > b  <=>  v > floor(b);  v >= b  <=>  v >= ceil(b);  v < b  <=>  v < ceil(b);  v <= b  <=>  v <= floor(b)
        if op in ("gt", "gte"):
            low = math.floor(bound) + 1 if op == "gt" else math.ceil(bound)
            if low <= _I64_MAX:
                start = 0 if low < _I64_MIN else int(np.searchsorted(values, np.int64(low), "left"))
                mask[col.int_rows[start:]] = True
        else:
            high = math.ceil(bound) - 1 if op == "lt" else math.floor(bound)
            if high >= _I64_MIN:
                stop = len(values) if high > _I64_MAX else int(np.searchsorted(values, np.int64(high), "right"))
                mask[col.int_rows[:stop]] = True
    values = col.float_values
    if len(values):
        fb = float(bound)
        # Values other than fb compare with bound as with fb (fb is the float nearest bound, so no
        # float lies strictly between them); values equal to fb compare as fb does.
        if op in ("gt", "gte"):
            passes_at = fb > bound or (fb == bound and op == "gte")
            start = int(np.searchsorted(values, fb, "left" if passes_at else "right"))
            mask[col.float_rows[start:]] = True
        else:
            passes_at = fb < bound or (fb == bound and op == "lte")
            stop = int(np.searchsorted(values, fb, "right" if passes_at else "left"))
            mask[col.float_rows[:stop]] = True


# ---- per-shard cache ----


@dataclass(frozen=True, eq=False)
class _Chunk:
    start: int  # first fresh row it covers (fresh numbering: row - sealed.size)
    stop: int
    columns: Columns


class _FreshColumns:
    """Columns over one fresh segment's payload list, grown as rows are appended to it."""

    def __init__(self, payloads: list[str]) -> None:
        self.payloads = payloads  # held: the cache key is this object's identity
        self.chunks: tuple[_Chunk, ...] = ()

    @property
    def covered(self) -> int:
        return self.chunks[-1].stop if self.chunks else 0

    def extend_to(self, f: int) -> None:
        """Cover fresh rows [0, f) (the caller holds the lock)."""
        start = self.covered
        if f <= start:
            return
        chunks = list(self.chunks)
        chunks.append(_Chunk(start, f, Columns.build(self.payloads[start:f])))
        while len(chunks) >= 2 and _size(chunks[-2]) <= 2 * _size(chunks[-1]):
            b, a = chunks.pop(), chunks.pop()
            chunks.append(_Chunk(a.start, b.stop, Columns.build(self.payloads[a.start:b.stop])))
        self.chunks = tuple(chunks)


def _size(c: _Chunk) -> int:
    return c.stop - c.start


def fields_of(f: Filter) -> frozenset[str]:
    """The payload fields a filter reads."""
    out: set[str] = set()
    stack = [f]
    while stack:
        node = stack.pop()
        if isinstance(node, Condition):
            out.add(node.field)
        elif isinstance(node, Not):
            stack.append(node.item)
        else:
            stack.extend(node.items)
    return frozenset(out)


UNINDEXED_BUDGET_BYTES = 64 << 20  # per shard: columns of fields without a declared index kept for reuse


class SegmentFilter:
    """One shard's filter evaluation: column caches for its sealed generations and fresh segments.

    The sealed segment's columns are read per field, when a filter first needs one: a declared
    payload index's field (`set_indexed`) is read in the background and kept for the generation
    (and read again by each index build, before the new generation is swapped in); any other
    field is read from the payloads by the first filter that names it and kept while the
    unindexed columns of the shard stay within `budget` bytes (past that, the least recently used
    are dropped, and a column larger than the budget is used once and not kept). The fresh
    segment (small, append-only) keeps every field's columns in chunks.

    Thread-safe: building happens under a lock (one builder per segment, the others wait for it),
    evaluation outside it over immutable columns. The last `keep` sealed generations and fresh
    segments are kept, so a search still holding a view from before a rebuild does not evict the
    new generation's columns."""

    def __init__(self, keep: int = 2, budget: int = UNINDEXED_BUDGET_BYTES) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self._budget = budget
        self._indexed: frozenset[str] = frozenset()
        self._sealed: OrderedDict[str, Columns] = OrderedDict()
        self._recent: OrderedDict[str, None] = OrderedDict()  # unindexed fields, least recently used first
        self._fresh: OrderedDict[int, _FreshColumns] = OrderedDict()

    @property
    def indexed(self) -> frozenset[str]:
        return self._indexed

    def set_indexed(self, fields: frozenset[str]) -> None:
        """The fields with a declared payload index (their columns are kept whatever the budget)."""
        with self._lock:
            self._indexed = frozenset(fields)

    def prebuild_fields(self) -> frozenset[str]:
        """What a new sealed generation should read before it serves: the indexed fields, and the unindexed
        ones filters use now (so the first filtered search after a rebuild does not pay for them)."""
        with self._lock:
            return self._indexed | frozenset(self._recent)

    def sealed_columns(self, sealed: Sealed, fields: frozenset[str] | None = None) -> Columns:
        """The sealed segment's columns covering `fields` (None: every field), read from its payloads as needed."""
        with self._lock:
            cols = self._sealed.get(sealed.uid)
            if cols is None or cols.n != sealed.size:
                cols = Columns(sealed.size, {}, frozenset(), False)
            if fields is None:
                if not cols.complete:
                    cols = cols.merged(Columns.of_texts(sealed.payloads, sealed.size))
            elif not cols.covers(fields):
                cols = cols.merged(Columns.of_texts(sealed.payloads, sealed.size, fields - cols.read))
            keep = self._trim(cols, fields or frozenset())
            self._sealed[sealed.uid] = keep
            self._sealed.move_to_end(sealed.uid)
            while len(self._sealed) > self._keep:
                self._sealed.popitem(last=False)
            return cols

    def _trim(self, cols: Columns, needed: frozenset[str]) -> Columns:
        """`cols` as kept: unindexed columns within the budget (lock held). A column larger than the whole budget
        is not kept (and evicts nothing); then the least recently used go first."""
        sizes = {f: c.nbytes for f, c in cols.fields.items() if f not in self._indexed}
        drop = {f for f in needed if sizes.get(f, 0) > self._budget}
        for f in needed - self._indexed - drop:
            self._recent[f] = None
            self._recent.move_to_end(f)
        total = sum(b for f, b in sizes.items() if f not in drop)
        for f in list(self._recent):
            if total <= self._budget:
                break
            if f in sizes and f not in drop:
                total -= sizes[f]
                drop.add(f)
            del self._recent[f]
        for f in drop:
            self._recent.pop(f, None)
        return cols.without(frozenset(drop)) if drop else cols

    def unindexed_bytes(self) -> int:
        with self._lock:
            return sum(c.nbytes for cols in self._sealed.values() for f, c in cols.fields.items()
                       if f not in self._indexed)

    def fresh_chunks(self, view: View) -> tuple[_Chunk, ...]:
        """Chunks covering at least fresh rows [0, view.n - view.s), in order."""
        f = view.n - view.s
        if f <= 0:
            return ()
        with self._lock:
            key = id(view.fresh_payloads)
            entry = self._fresh.get(key)
            if entry is None or entry.payloads is not view.fresh_payloads:
                entry = self._fresh[key] = _FreshColumns(view.fresh_payloads)
            self._fresh.move_to_end(key)
            while len(self._fresh) > self._keep:
                self._fresh.popitem(last=False)
            entry.extend_to(f)
            return entry.chunks

    def mask_for(self, view: View, f: Filter) -> np.ndarray:
        """Which rows [0, view.n) are alive and pass `f`."""
        s, n = view.s, view.n
        out = np.empty(n, bool)
        if s:
            out[:s] = evaluate(f, self.sealed_columns(view.sealed, fields_of(f)), s)
        for chunk in self.fresh_chunks(view):
            if s + chunk.start >= n:
                break
            m = min(n - s, chunk.stop) - chunk.start
            out[s + chunk.start:s + chunk.start + m] = evaluate(f, chunk.columns, m)
        out &= view.alive[:n]
        return out

    def rows_for(self, view: View, f: Filter) -> np.ndarray:
        """The rows that are alive and pass `f`, ascending (int64)."""
        return np.flatnonzero(self.mask_for(view, f))

    def count(self, view: View, f: Filter | None = None) -> int:
        """How many live rows pass `f` (all live rows when f is None)."""
        if f is None:
            return int(np.count_nonzero(view.alive[:view.n]))
        return int(np.count_nonzero(self.mask_for(view, f)))
