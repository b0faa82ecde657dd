"""One partition of one collection: ScaNN coarse index + exact fresh buffer + tombstones.

Search = coarse top-(k x oversample) from ScaNN over the sealed rows, plus an exact scan
of the fresh rows written since the last build, minus tombstones, re-ranked exactly on
full-precision vectors. A write is searchable once `upsert` returns. When the fresh
buffer passes a threshold a background thread builds a new index over the live rows and
swaps it in under a short lock; ScaNN releases the GIL while building, so searches keep
running in the meantime. Plain Python: no Ray, no gRPC.
"""

from __future__ import annotations

import bisect
import errno
import logging
import math
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsearch.contract.errors import (DeadlineExceeded, FailedPrecondition, ResourceExhausted, SimsearchError,
                                       Unavailable, invalid)
from simsearch.reranker import ExactScorer, Scorer, normalize, top_k
from simsearch.shard import memory, snapshot, wal
from simsearch.shard.config import DEFAULT_OVERSAMPLE, IndexParams
from simsearch.contract import payloads as payload_rules
from simsearch.contract.filters import Filter
from simsearch.shard.faults import CheckpointDamaged
from simsearch.shard.filtering import SegmentFilter
from simsearch.shard.scann_index import CoarseIndex
from simsearch.shard.storage import Rows, Sealed, View
from simsearch.shard.wal import WriteAheadLog

log = logging.getLogger(__name__)
MAX_CHUNK = 256
CHUNK_BYTES = 64 << 20  # bounds each chunk's temporaries (candidate gather, distance matrix)


# The filtered search's cost model, in units of one row scored exactly inside a large batch (measured at 784-d
# on a 2-core VM; docs/architecture.md "Filters"): the cheaper path per call is taken.
SCAN_GATHER_COST = 20  # scan: gathering one passing row, once per call (shared by the call's queries)
LEAF_ROW_COST = 0.6  # ScaNN: one row of the leaves searched (its AH codes)
CANDIDATE_COST = 5  # ScaNN: selecting one candidate
RERANK_COST = 40  # ...and re-ranking it exactly, which only the candidates that pass (a fraction p) need
RERANK_CHUNK = 16  # queries re-ranked together (measured best of 8..128 on 784-d, 40 candidates)
TICK_S = 0.25  # how often the maintenance thread looks at the shard
IDLE_FOLD_S = 1.0  # no writes for this long: fold the fresh rows into the index (after a bulk load)...
FOLD_MIN_FRACTION = 64  # ...when they are at least 1/64 of the indexed rows (else they wait for more)
CHECKPOINT_LOG_BYTES = 128 << 20  # a checkpoint once the log holds this much: bounds disk use and replay
CHECKPOINT_IDLE_S = 10.0  # no writes for this long and records not yet in a checkpoint: write one
CHECKPOINT_RETRY_S = 10.0  # after a failed checkpoint (a full disk), wait this long before the next try
CLOSE_WAIT_S = 5.0  # how long a stop waits for a checkpoint already being written before leaving it


def _best_k(pos: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of each row of candidates (padded with +inf when there are fewer)."""
    order, best = top_k(dist, k)
    pos = np.take_along_axis(pos, order, axis=1)
    if best.shape[1] < k:
        pad = k - best.shape[1]
        pos = np.pad(pos, ((0, 0), (0, pad)))
        best = np.pad(best, ((0, 0), (0, pad)), constant_values=np.inf)
    return pos, best


def _chunk(per_query_bytes: int) -> int:
    """Queries per chunk so that a chunk's temporaries stay near CHUNK_BYTES."""
    return max(1, min(MAX_CHUNK, CHUNK_BYTES // max(1, per_query_bytes)))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dst)
        snapshot.fsync_path(Path(dst))


def _storage_error(e: OSError, what: str) -> SimsearchError:
    """A disk failure as the platform's error: the write was not acknowledged, and says why."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(f"could not {what}: the disk is full ({e.strerror}); the write was not applied")
    return Unavailable(f"could not {what} ({e.strerror or e}); the write was not acknowledged")


@dataclass(frozen=True)
class SearchResult:
    ids: np.ndarray  # (n, k) object; "" where fewer than k exist
    distances: np.ndarray  # (n, k) float32, smaller is closer; +inf where missing
    payloads: np.ndarray | None = None  # (n, k) object: canonical JSON ("" for none), when asked for
    # How the shard answered: "index" (ScaNN + exact re-rank), "exact" (a scan of every row),
    # "filter-exact" (a scan of just the rows that pass the filter), "filter-index" (ScaNN
    # candidates that pass, widened until k do), with "+fallback" when some queries needed a scan.
    path: str = ""


class Shard:
    def __init__(self, dim: int, metric: str, params: IndexParams, *, data_dir: Path | None = None,
                 scorer: Scorer | None = None, background: bool = True, durability: str = "fsync",
                 durability_interval_ms: int = 100, checkpoint_log_bytes: int = CHECKPOINT_LOG_BYTES):
        """data_dir: where the shard's checkpoints and write-ahead log live (None: memory only).
        durability: when a write is acknowledged (shard/wal.py): "fsync", "interval" or "none".
        background: build indexes in the background when the fresh rows pass the threshold, and fold
        them in after a bulk load. checkpoint_log_bytes: log size that forces a checkpoint.
        Raises StorageFault (shard.faults) when data_dir holds state that cannot be loaded as written."""
        memory.limit_arenas()
        self.dim = dim
        self.metric = metric
        self.params = params
        self.data_dir = data_dir
        self.scorer = scorer or ExactScorer(metric)
        self.background = background
        self.checkpoint_log_bytes = checkpoint_log_bytes
        self._lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()  # one checkpoint at a time
        self._deferred = threading.local()  # apply_ops: this thread's writes wait for durability once, at the end
        self._rows = Rows(dim)
        self._filters = SegmentFilter()  # payload columns for filters, per sealed generation
        self._payload_indexes: dict[str, str] = {}  # declared field -> type (contract/payload_index.py)
        self._indexing: threading.Thread | None = None  # reads newly declared fields' columns
        self._scroll_order: tuple[str, np.ndarray] | None = None  # (sealed uid, its rows in id order)
        self._index: CoarseIndex | None = None
        self._builder: threading.Thread | None = None
        self._builds = 0
        self._last_build_s: float | None = None  # the newest build's duration, reported by stats()
        self._closed = False
        self._build_error: str | None = None
        self._checkpoint_error: str | None = None
        self._checkpointed = ("", 0)  # (sealed generation, last seq) of the newest checkpoint
        self._last_write = time.monotonic()
        self._stop = threading.Event()
        self._maintainer: threading.Thread | None = None
        self._wal: WriteAheadLog | None = None
        if data_dir is not None:
            self._wal = WriteAheadLog(data_dir / "wal", durability, durability_interval_ms)
            self._restore(data_dir)
        if background or data_dir is not None:
            self._maintainer = threading.Thread(target=self._maintain, name="shard-maintenance", daemon=True)
            self._maintainer.start()

    # ---- writes -------------------------------------------------------------------------

    def _as_rows(self, vectors: np.ndarray, field: str) -> np.ndarray:
        """float32 rows of this shard's dimension (normalised for cosine). Values are not re-checked:
        the router validates every request once, at the edge, before any shard sees it."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise invalid(field, f"must have shape (n, {self.dim}), got {vectors.shape}")
        if self.metric == "cosine":
            vectors = normalize(vectors)
        return vectors

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[str] | None = None) -> int:
        """payloads: each point's canonical JSON payload ("" for none; contract.payloads), or None
        when the request carries none. An upsert replaces the point, payload included."""
        vectors = self._as_rows(vectors, "vectors")
        if len(ids) != len(vectors):
            raise invalid("ids", f"must have one id per vector row ({len(vectors)}), got {len(ids)}")
        with self._lock:
            self._check_open()  # under the lock: nothing is appended after close() has begun
            seq = self._log(wal.UPSERT, ids, vectors, payloads)  # logged first: a refused write is not applied
            self._rows.append(ids, vectors, payloads)
            self._last_write = time.monotonic()
        self._durable(seq)  # outside the lock, so concurrent writers share one fsync
        self._maybe_rebuild()
        return len(ids)

    def delete(self, ids: list[str]) -> int:
        return self._delete(lambda: ids)

    def _delete(self, choose: Callable[[], list[str]]) -> int:
        """Delete the ids `choose()` names, chosen under the write lock; logged, then applied."""
        with self._lock:
            self._check_open()
            ids = choose()
            if not ids:
                return 0
            seq = self._log(wal.DELETE, ids)
            removed = self._rows.kill(ids)
            self._last_write = time.monotonic()
        self._durable(seq)
        self._maybe_rebuild()
        return removed

    def set_payload(self, ids: list[str], patch: str, delete_keys: list[str] | None = None,
                    replace: bool = False) -> int:
        """Change the payloads of the stored points among `ids` (patch: a canonical JSON object set on each,
        or replacing each with `replace`; then `delete_keys` removed). Logged as an upsert of the same
        vectors with the new payloads, so a replay needs nothing else. Returns how many were stored."""
        fields = payload_rules.decode(patch)
        with self._lock:
            self._check_open()
            found, rows = self._rows.lookup(ids)
            if not len(rows):
                return 0
            view = self._rows.view()
            hit = [ids[i] for i in np.flatnonzero(found).tolist()]
            docs = [payload_rules.merge(old, fields, delete_keys or (), replace=replace, where=f"payload of {name!r}")
                    for name, old in zip(hit, view.payload_list(rows))]  # all checked before anything is written
            vectors = view.vectors(rows)  # stored rows, already normalised: not normalised again
            seq = self._log(wal.UPSERT, hit, vectors, docs)
            self._rows.append(hit, vectors, docs)
            self._last_write = time.monotonic()
        self._durable(seq)
        self._maybe_rebuild()
        return len(hit)

    def delete_where(self, f: Filter) -> int:
        """Delete every live point that passes `f`. The filter is evaluated under the write lock, so no
        write slips between choosing the points and deleting them; the log records the ids chosen (a
        plain delete), so replay never re-evaluates the filter."""
        def passing() -> list[str]:
            view = self._rows.view()
            return view.id_list(self._filters.rows_for(view, f))

        return self._delete(passing)

    def scroll(self, limit: int, cursor: str = "", f: Filter | None = None, *, with_vectors: bool = False,
               with_payload: bool = False) -> tuple[list[str], np.ndarray | None, list[str] | None]:
        """The first `limit` live points (that pass `f`) whose ids come after `cursor`, in id order (code
        points): (ids, their vectors or None, their payloads or None). The sealed segment's id order is
        sorted once per build (`_id_order`); the fresh rows are sorted per call (they are few)."""
        with self._lock:
            view = self._rows.view()
        ok = view.alive[:view.n] if f is None else self._filters.mask_for(view, f)
        s = view.s
        picked: list[tuple[str, int]] = []
        if s:
            order = self._id_order(view.sealed)
            start = bisect.bisect_right(range(s), cursor, key=lambda i: view.sealed.id_list(order[i:i + 1])[0])
            while start < s and len(picked) < limit:
                chunk = order[start:start + 2 * limit]
                rows = chunk[ok[chunk]]
                picked += zip(view.sealed.id_list(rows), rows.tolist())
                start += len(chunk)
            picked = picked[:limit]
        fresh_rows = np.flatnonzero(ok[s:view.n]) + s
        if len(fresh_rows):
            names = view.id_list(fresh_rows)
            picked += sorted((x, r) for x, r in zip(names, fresh_rows.tolist()) if x > cursor)[:limit]
        picked.sort()
        picked = picked[:limit]
        ids = [x for x, _ in picked]
        rows = np.array([r for _, r in picked], np.int64)
        return (ids, view.vectors(rows) if with_vectors else None,
                view.payload_list(rows) if with_payload else None)

    def _id_order(self, sealed: Sealed) -> np.ndarray:
        """The sealed rows in id order, sorted once per sealed generation (the segment never changes)."""
        cached = self._scroll_order
        if cached is not None and cached[0] == sealed.uid:
            return cached[1]
        names = sealed.id_list(np.arange(sealed.size))
        order = np.array(sorted(range(sealed.size), key=names.__getitem__), np.int32 if sealed.size < 2**31 else np.int64)
        self._scroll_order = (sealed.uid, order)
        return order

    def count(self, f: Filter | None = None) -> int:
        """Live points that pass `f` (all of them when None)."""
        with self._lock:
            view = self._rows.view()
        return self._filters.count(view, f)

    def _log(self, kind: int, ids: list[str], vectors: np.ndarray | None = None,
             payloads: list[str] | None = None) -> int:
        if self._wal is None:
            return 0
        try:
            return self._wal.append(kind, ids, vectors, payloads)
        except OSError as e:
            raise _storage_error(e, "append to the write-ahead log") from None

    def _durable(self, seq: int) -> None:
        """Return once record `seq` is durable (under the log's policy): only then is the write acknowledged.
        Inside apply_ops, only noted: the batch waits once for its last record."""
        pending = getattr(self._deferred, "last", None)
        if pending is not None:
            self._deferred.last = max(pending, seq)
            return
        if self._wal is not None and seq:
            try:
                self._wal.sync(seq)
            except OSError as e:
                raise _storage_error(e, "fsync the write-ahead log") from None

    WRITES = frozenset({"upsert", "delete", "delete_where", "set_payload"})

    def apply_ops(self, ops: list[tuple[str, tuple]]) -> list:
        """Several writes in order, durable together: [(method, args)] -> each one's result, or the
        SimsearchError it raised (the others still apply). A replicated shard sends the writes queued
        while its previous batch was out this way (cluster/replicas.py): one call and one log sync per
        batch, where one at a time would pay both per write."""
        results: list = []
        self._deferred.last = 0
        try:
            for method, args in ops:
                if method not in self.WRITES:
                    raise invalid("ops", f"must name writes ({', '.join(sorted(self.WRITES))}), got {method!r}")
                try:
                    results.append(getattr(self, method)(*args))
                except SimsearchError as e:
                    results.append(e)
        finally:
            last, self._deferred.last = self._deferred.last, None
        self._durable(last)
        return results

    def get(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(found mask over ids, the found rows' vectors, their payloads as canonical JSON, "" for none)."""
        with self._lock:
            found, rows = self._rows.lookup(ids)
            view = self._rows.view()
        return found, view.vectors(rows), view.payload_list(rows)  # rows never change once written

    # ---- payload indexes ----------------------------------------------------------------

    def set_payload_indexes(self, indexes: dict[str, str]) -> None:
        """The collection's declared payload indexes (field -> type). Their columns are read in a background
        thread now and by every index build from then on; filters work meanwhile (reading what they need)."""
        self._payload_indexes = dict(indexes)
        self._filters.set_indexed(frozenset(indexes))
        if indexes:
            thread = threading.Thread(target=self._read_indexed, name="payload-index", daemon=True)
            self._indexing = thread
            thread.start()

    def _read_indexed(self) -> None:
        try:
            with self._lock:
                view = self._rows.view()
            fields = self._filters.indexed
            if view.s and view.sealed.payloads is not None:
                self._filters.sealed_columns(view.sealed, fields)
            self._filters.fresh_chunks(view)
        except Exception:  # noqa: BLE001 (filters still read what they need; the stats say "building")
            log.exception("shard %s: reading the payload index columns failed", self.data_dir)

    def wait_payload_indexes(self, timeout_s: float | None = None) -> bool:
        """Whether the declared indexes' columns are read (waiting up to timeout_s for the background read)."""
        thread = self._indexing
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    def payload_index_stats(self) -> dict[str, dict]:
        """Per declared field: its type, "building" or "ready", the live points holding it, and the live points
        holding a value its type does not admit (written before it was declared; filters still see them)."""
        indexes = dict(self._payload_indexes)
        if not indexes:
            return {}
        building = self._indexing is not None and self._indexing.is_alive()
        with self._lock:
            view = self._rows.view()
        out: dict[str, dict] = {}
        if building:
            return {f: {"type": t, "state": "building", "points": 0, "invalid": 0} for f, t in indexes.items()}
        fields = frozenset(indexes)
        parts: list[tuple[int, object]] = []  # (row offset, Columns)
        if view.s:
            parts.append((0, self._filters.sealed_columns(view.sealed, fields)))
        parts += [(view.s + c.start, c.columns) for c in self._filters.fresh_chunks(view)]
        alive = view.alive[:view.n]
        for f, kind in indexes.items():
            present, invalid = 0, 0
            for offset, cols in parts:
                col = cols.fields.get(f)
                if col is None:
                    continue
                stop = view.n - offset
                rows = col.present[col.present < stop] + offset
                present += int(np.count_nonzero(alive[rows]))
                bad = col.rows_not_admitted(kind)
                bad = bad[bad < stop] + offset
                invalid += int(np.count_nonzero(alive[bad]))
            out[f] = {"type": kind, "state": "ready", "points": present, "invalid": invalid}
        return out

    # ---- search -------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, leaves_to_search: int = 0, oversample: int = 0,
               exact: bool = False, timeout_s: float | None = None, with_payload: bool = False,
               filter: Filter | None = None, target_recall: float = 0.0) -> SearchResult:  # noqa: A002 (the API's word)
        """timeout_s: how long the caller still waits, from when this call starts (a duration, not a
        time, so clocks of other nodes do not matter); checked before each chunk of queries, so a
        search that has lost its caller stops instead of holding a core. filter: only points whose
        payload passes it are returned (contract.filters), never fewer than k when k pass.
        target_recall: the cheapest calibrated setting that meets it, for what the search does not name."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        queries = self._as_rows(queries, "queries")
        with self._lock:
            view, index = self._rows.view(), self._index
        if exact or index is None:
            index = None
        leaves_to_search, oversample = self._setting(index, leaves_to_search, oversample, target_recall)
        if filter is not None:
            return self._search_filtered(view, index, queries, k, leaves_to_search, oversample, filter, deadline,
                                         with_payload)
        # l2 re-rank holds the gather and its difference: 2 x (k*oversample, dim) floats per query;
        # the exact scan holds ~3 (n,) float rows per query.
        per_query = max(2 * k * oversample * self.dim, 3 * (view.n if index is None else view.n - view.s)) * 4
        step = _chunk(per_query)
        parts = []
        for i in range(0, len(queries), step):
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(f"shard search passed its deadline after {i} of {len(queries)} queries")
            parts.append(self._search_chunk(view, index, queries[i : i + step], k, leaves_to_search, oversample))
        rows = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        dist = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        return self._result(view, rows, dist, with_payload, "index" if index is not None else "exact")

    @staticmethod
    def _result(view: View, rows: np.ndarray, dist: np.ndarray, with_payload: bool, path: str) -> SearchResult:
        valid = np.isfinite(dist)
        return SearchResult(ids=view.ids(rows, valid), distances=dist,
                            payloads=view.payloads(rows, valid) if with_payload else None, path=path)

    def _search_filtered(self, view: View, index: CoarseIndex | None, queries: np.ndarray, k: int, leaves: int,
                         oversample: int, f: Filter, deadline: float | None, with_payload: bool) -> SearchResult:
        """Only rows that pass `f`. The shard counts them first (payload columns, shard/filtering.py) and
        takes the cheaper of two paths by the cost model above (per call: the scan's gather is shared by the
        call's queries): a scan of exactly the rows that pass, or ScaNN's candidates with the filter as
        their liveness, from p^-1/4 times the leaves and asked for k x oversample / p candidates (p: the
        fraction that pass; only those that pass are re-ranked), widened once like deletes are; a query
        still short of min(k, passing) after that, or whose candidates pass far less often than p, is
        answered by the scan, so a filter never returns fewer than k hits when k pass."""
        mask = self._filters.mask_for(view, f)
        passing = np.flatnonzero(mask)
        n = len(queries)
        if not len(passing):
            return self._result(view, np.zeros((n, k), np.int64), np.full((n, k), np.inf, np.float32), with_payload,
                                "filter-exact")
        p = len(passing) / max(view.n, 1)
        per_row = 1 + SCAN_GATHER_COST / n  # the scan gathers the passing rows once per call, shared by its queries
        scann_cost = math.inf
        if index is not None:
            # p^-1/4 times the leaves (the passing neighbours sit a little further out) and k x oversample / p
            # candidates (about k x oversample of them pass): measured on Fashion-MNIST, recall >= 0.999
            leaves = min(index.num_leaves, math.ceil((leaves or index.default_leaves) * p ** -0.25))
            count = int(min(index.size, max(k * oversample, math.ceil(k * oversample / p))))
            scann_cost = (LEAF_ROW_COST * index.size * leaves / max(index.num_leaves, 1)
                          + (CANDIDATE_COST + RERANK_COST * p) * count + per_row * (view.n - view.s))
        if index is None or len(passing) * per_row <= scann_cost:
            rows, dist = self._scan_rows(view, queries, passing, k, deadline)
            return self._result(view, rows, dist, with_payload, "filter-exact")
        step = _chunk(max(2 * count * self.dim, 3 * (view.n - view.s)) * 4)
        parts, found = [], []
        for i in range(0, n, step):
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(f"shard search passed its deadline after {i} of {n} queries")
            # one widening round at most (4x the candidates): past that the scan of the passing rows is cheaper
            parts.append(self._search_chunk(view, index, queries[i:i + step], k, leaves, oversample, live=mask,
                                            count=count, cap=min(index.size, 4 * count), found_out=found))
        rows = np.concatenate([p_[0] for p_ in parts]) if len(parts) > 1 else parts[0][0]
        dist = np.concatenate([p_[1] for p_ in parts]) if len(parts) > 1 else parts[0][1]
        # A query whose candidates pass far less often than the filter does overall (under a quarter of the
        # count x p expected) sits where the passing points are not: a filter that is anti-correlated with
        # it (a label other than the query's own). Its nearest passing points lie outside the leaves
        # searched, so it is answered by the scan too, like a query left short.
        local = np.concatenate(found) if found else np.zeros(n, np.int64)
        short = np.flatnonzero((np.isfinite(dist).sum(axis=1) < min(k, len(passing))) | (local < count * p / 4))
        path = "filter-index"
        if len(short):  # ScaNN's leaves held too few passing points for these: scan exactly the rows that pass
            rows[short], dist[short] = self._scan_rows(view, queries[short], passing, k, deadline)
            path += "+fallback"
        return self._result(view, rows, dist, with_payload, path)

    def _scan_rows(self, view: View, queries: np.ndarray, rows: np.ndarray, k: int,
                   deadline: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of each query over just `rows` (live, ascending), in chunks of queries."""
        vecs = view.vectors(rows)
        ok = np.ones(len(rows), bool)
        step = _chunk(3 * len(rows) * 4)
        out_rows, out_dist = [], []
        for i in range(0, len(queries), step):
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded(f"shard search passed its deadline after {i} of {len(queries)} queries")
            pos, dist = self._exact(queries[i:i + step], vecs, ok, k)
            pos, best = _best_k(pos, dist, k)
            out_rows.append(rows[pos])
            out_dist.append(best)
        return np.concatenate(out_rows), np.concatenate(out_dist)

    def max_id_bytes(self) -> int:
        """The longest live id, in UTF-8 bytes (one pass over the ids: asked once per router start)."""
        with self._lock:
            return self._rows.max_id_bytes()

    def search_setting(self, leaves_to_search: int = 0, oversample: int = 0,
                       target_recall: float = 0.0) -> tuple[int, int]:
        """(leaves_to_search, oversample) a search with these parameters uses (shard/calibration.py)."""
        return self._setting(self._index, leaves_to_search, oversample, target_recall)

    def _setting(self, index: CoarseIndex | None, leaves: int, oversample: int,
                 target_recall: float) -> tuple[int, int]:
        if index is None:
            return leaves, oversample or self.params.oversample or DEFAULT_OVERSAMPLE
        return index.setting(leaves, oversample, target_recall)

    def search_work(self, n: int, k: int, *, exact: bool = False, leaves_to_search: int = 0,
                    oversample: int = 0, target_recall: float = 0.0) -> int:
        """About how many floats a search of n queries touches: the exact scans (every row without an
        index or when exact, else the fresh rows), the exact re-rank of k x oversample candidates,
        and ScaNN's scan of the leaves it searches (~1/8 float per dimension with AH codes). What a
        caller reads to tell small, bounded work from a long scan."""
        index, rows = self._index, self._rows.n
        if exact or index is None:
            return n * rows * self.dim
        leaves, oversample = index.setting(leaves_to_search, oversample, target_recall)
        candidates = min(k * oversample, index.size)
        coarse = index.size * min(leaves, index.num_leaves) // max(index.num_leaves, 1) // 8
        return n * self.dim * (rows - index.size + candidates + coarse)

    def _search_chunk(self, view: View, index: CoarseIndex | None, q: np.ndarray, k: int,
                      leaves: int, oversample: int, *, live: np.ndarray | None = None,
                      count: int = 0, cap: int = 0, found_out: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from each part (ScaNN over the sealed rows, or an exact scan of them without an
        index; an exact scan of the fresh rows), then the best k of their exact distances. live: which
        rows may be returned (default: the live ones; a filter narrows it); count: ScaNN candidates."""
        live = view.alive if live is None else live
        cand_rows, cand_dist = [], []
        s = view.s
        if index is not None:  # the index covers exactly the sealed rows
            rows, dist = self._coarse(view, index, q, k, count or k * oversample, leaves, live, cap, found_out)
            cand_rows.append(rows)
            cand_dist.append(dist)
        elif s:
            rows, dist = self._exact(q, view.sealed.vectors, live[:s], k)
            cand_rows.append(rows)
            cand_dist.append(dist)
        if view.n > s:
            rows, dist = self._exact(q, view.fresh[: view.n - s], live[s:view.n], k)
            cand_rows.append(rows + s)
            cand_dist.append(dist)
        if not cand_rows:
            return np.zeros((len(q), k), np.int64), np.full((len(q), k), np.inf, np.float32)
        rows = np.concatenate(cand_rows, axis=1) if len(cand_rows) > 1 else cand_rows[0]
        dist = np.concatenate(cand_dist, axis=1) if len(cand_dist) > 1 else cand_dist[0]
        pos, best = top_k(dist, k)
        rows = rows[np.arange(len(rows))[:, None], pos]
        if best.shape[1] < k:  # fewer candidates than k: pad
            pad = k - best.shape[1]
            rows = np.pad(rows, ((0, 0), (0, pad)))
            best = np.pad(best, ((0, 0), (0, pad)), constant_values=np.inf)
        return rows, best

    def _coarse(self, view: View, index: CoarseIndex, q: np.ndarray, k: int, count: int,
                leaves: int, live: np.ndarray, cap: int = 0,
                found_out: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        """ScaNN candidates re-ranked exactly; tombstoned and padded candidates get +inf.

        When deletes leave a query with fewer than k live candidates while the index holds
        more live rows, those queries are asked again for 4x the candidates (up to 3 times),
        so clustered deletes cannot crowd out live neighbours.
        """
        rows, ok = index.search(q, count, leaves)  # (c, kk)
        keep = ok & live[rows]
        found = keep.sum(axis=1)
        width = int(found.max()) if len(found) else 0
        if width < rows.shape[1] // 2:  # a filter (or deletes) passes few: re-rank only the candidates that pass
            order = np.argsort(~keep, axis=1, kind="stable")[:, :max(width, 1)]
            rows, keep = np.take_along_axis(rows, order, axis=1), np.take_along_axis(keep, order, axis=1)
        dist = np.where(keep, self._rerank(q, view.sealed.vectors, rows), np.inf).astype(np.float32)
        if found_out is not None:
            found_out.append(found)  # live candidates per query, before any widening
        short = np.flatnonzero(found < k)
        if len(short):  # only then count the live indexed rows (O(N)): fewer than k may exist at all
            short = short[found[short] < min(k, int(live[: index.size].sum()))]
        cap = cap or index.size
        if len(short) and count < cap:
            more_rows, more_dist = self._coarse(view, index, q[short], k, min(count * 4, cap), leaves, live, cap)
            width = max(rows.shape[1], more_rows.shape[1])
            rows = np.pad(rows, ((0, 0), (0, width - rows.shape[1])))
            dist = np.pad(dist, ((0, 0), (0, width - dist.shape[1])), constant_values=np.inf)
            rows[short, : more_rows.shape[1]] = more_rows
            dist[short, : more_dist.shape[1]] = more_dist
        return rows, dist

    def _rerank(self, q: np.ndarray, vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact distances to the candidates, RERANK_CHUNK queries at a time: the gathered candidates then
        stay in cache for the scoring pass (1,000 FMNIST queries x 40 candidates: 87 -> 50 ms)."""
        if len(q) <= RERANK_CHUNK:
            return self.scorer.score_candidates(q, vectors[rows])
        out = np.empty(rows.shape, np.float32)
        for i in range(0, len(q), RERANK_CHUNK):
            out[i:i + RERANK_CHUNK] = self.scorer.score_candidates(q[i:i + RERANK_CHUNK], vectors[rows[i:i + RERANK_CHUNK]])
        return out

    def _exact(self, q: np.ndarray, vecs: np.ndarray, alive: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over one segment's rows (positions within it): a fast matmul pass picks 2k+8
        finalists, which are then scored in the precise difference form (the matmul form loses digits
        on large norms)."""
        dist = self.scorer.score_all(q, vecs).astype(np.float32)  # (c, rows)
        dist[:, ~alive] = np.inf
        pos, _ = top_k(dist, 2 * k + 8)
        precise = self.scorer.score_candidates(q, vecs[pos]).astype(np.float32)
        precise = np.where(np.isfinite(np.take_along_axis(dist, pos, axis=1)), precise, np.inf)
        return pos, precise

    # ---- index maintenance --------------------------------------------------------------

    def _maybe_rebuild(self) -> None:
        with self._lock:
            indexed = self._index.size if self._index else 0
            fresh = self._rows.n - indexed
            too_fresh = fresh >= self.params.rebuild_after(indexed) and self._rows.live >= self.params.min_index_size
            too_dead = self._rows.dead > max(1024, self._rows.n // 5)
            busy = self._builder is not None and self._builder.is_alive()
        if (too_fresh or too_dead) and not busy and self.background and not self._closed:
            self.build_index(wait=False)

    def build_index(self, wait: bool = True) -> None:
        """Fold the fresh rows into a new index (and drop tombstoned rows); swap it in atomically."""
        with self._lock:
            if self._builder is not None and self._builder.is_alive():
                thread = self._builder
            else:
                thread = threading.Thread(target=self._rebuild, name="scann-build", daemon=True)
                self._builder = thread
                thread.start()
        if wait:
            thread.join()
            if self._build_error:
                raise FailedPrecondition(f"index build failed: {self._build_error}")
            # A build already running when we asked may have missed the newest rows: one more pass.
            with self._lock:
                behind = self._rows.n - (self._index.size if self._index else 0)
                again = behind and self._rows.live >= self.params.min_index_size
            if again:
                self.build_index(wait=False)
                self._builder.join()
                if self._build_error:
                    raise FailedPrecondition(f"index build failed: {self._build_error}")

    def _rebuild(self) -> None:
        t0 = time.perf_counter()
        built = self._build_and_swap()
        if built is not None:
            memory.release_freed()  # the old segments and the build's copies are garbage now
            log.info("shard index built over %d rows in %.2fs", built, time.perf_counter() - t0)

    def _build_and_swap(self) -> int | None:
        """Build over the live rows and install the result; the number of rows built over, None when
        the build failed or the shard closed meanwhile."""
        t0 = time.perf_counter()
        with self._lock:
            view = self._rows.view()
            m = view.n
            keep = np.flatnonzero(view.alive[:m])
        # Rows never change once written, so they are copied, hashed and indexed outside the lock.
        vectors = view.vectors(keep)
        ids = view.id_list(keep)
        payloads = view.payload_list(keep)
        try:
            index = CoarseIndex.build(vectors, self.metric, self.params) if len(keep) >= self.params.min_index_size else None
            if index is not None:  # here, before the swap: no index serves uncalibrated
                index.calibrate(vectors, self.scorer, self.params)
            sealed = Sealed.build(vectors, ids, payloads=payloads) if index is not None else Sealed.empty(self.dim)
            prebuild = self._filters.prebuild_fields()
            if prebuild and sealed.payloads is not None:  # here, not in the first filtered search after the swap
                self._filters.sealed_columns(sealed, prebuild)
        except Exception as e:  # keep serving from the old index; report through stats()
            log.exception("index build failed")
            self._build_error = f"{type(e).__name__}: {e}"
            return None
        with self._lock:
            if self._closed:  # the shard stopped while we built: its last checkpoint stands
                return None
            rows = self._rows
            tail = np.arange(m, rows.n)  # rows written while we built
            alive = rows.alive[keep]  # current liveness: deletes made during the build stick
            now = rows.view()
            tail_vectors, tail_ids, tail_alive = now.vectors(tail), now.id_list(tail), rows.alive[m:rows.n]
            tail_payloads = now.payload_list(tail)
            if index is not None:
                self._rows = Rows.assemble(sealed, alive, tail_vectors, tail_ids, tail_alive, tail_payloads)
            else:  # too few live rows for an index: every row stays fresh, searched exactly
                self._rows = Rows.assemble(sealed, alive[:0], np.concatenate([vectors, tail_vectors]), ids + tail_ids,
                                           np.concatenate([alive, tail_alive]), payloads + tail_payloads)
            self._index = index
            self._builds += 1
            self._last_build_s = time.perf_counter() - t0
            self._build_error = None
        return len(keep)

    def _building(self) -> bool:
        return self._builder is not None and self._builder.is_alive()

    # ---- lifecycle ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("shard is closed")

    def stats(self) -> dict:
        """Counts, and the index parameters in use (what "auto" resolved to for this shard's size);
        the ScaNN ones are 0 while there is no index (the shard searches exactly). `fresh` counts the
        live points the index does not cover yet (scanned exactly); index_state is "ready" only when
        there are none, "partial" while some wait for the next build."""
        with self._lock:
            index, rows = self._index, self._rows
            fresh = len(self._rows.row_of) if index else self._rows.live
            indexed = self._rows.live - fresh
            state = "building" if self._building() else ("none" if index is None else ("partial" if fresh else "ready"))
            out = {
                "points": self._rows.live,
                "indexed": indexed,
                "fresh": fresh,
                "deleted": self._rows.dead,
                "index_state": state,
                "num_leaves": index.num_leaves if index else 0,
                "leaves_to_search": index.default_leaves if index else 0,
                "dims_per_block": self.params.block_dims_for(self.dim) if index else 0,
                "oversample": index.default_oversample if index else self.params.oversample or DEFAULT_OVERSAMPLE,
                "target_recall": self.params.recall_target,
                "calibrated_recall": index.calibrated_recall if index else 0.0,  # 0.0: not (yet) calibrated
                "calibration_s": index.calibration.seconds if index and index.calibration else 0.0,
                "rebuild_threshold": self.params.rebuild_after(index.size if index else 0),
                "builds": self._builds,
                "last_build_s": self._last_build_s,
                "position": self.position(),
                "error": self._build_error or (f"checkpoint failed: {self._checkpoint_error}" if self._checkpoint_error else ""),
                "pid": os.getpid(),  # where it runs: the router's process, or a Ray actor's (and on which host)
                "host": socket.gethostname(),
            }
        out["payload_bytes"] = rows.payload_bytes()  # outside the lock: O(rows); rows never change once written
        if self._payload_indexes:  # outside the lock: it reads the columns (built once per generation)
            out["payload_indexes"] = self.payload_index_stats()
        return out

    # ---- checkpoints and maintenance -----------------------------------------------------

    def _maintain(self) -> None:
        """The shard's background duties, once per tick: fold the fresh rows in after a bulk load, and
        write a checkpoint after an index build, when the log passes its size limit, or when writes
        stop with records not yet checkpointed (so the log and the replay after a crash stay short)."""
        retry_at = trimmed_at = 0.0
        while not self._stop.wait(TICK_S):
            idle = time.monotonic() - self._last_write
            try:
                if idle >= IDLE_FOLD_S and self._last_write > trimmed_at:  # writes stopped: their buffers are garbage
                    trimmed_at = time.monotonic()
                    memory.release_freed()
                if self.background and idle >= IDLE_FOLD_S:
                    self._fold()
                if self._wal is not None and time.monotonic() >= retry_at and self._checkpoint_due(idle):
                    self.save()
            except OSError as e:  # a full or read-only disk: writes report it; retry later
                self._checkpoint_error = f"{e.strerror or e}"
                retry_at = time.monotonic() + CHECKPOINT_RETRY_S
                log.warning("shard %s: checkpoint failed (%s); retrying in %.0fs", self.data_dir,
                            self._checkpoint_error, CHECKPOINT_RETRY_S)
            except Exception:  # noqa: BLE001 (a bug must not kill the thread that keeps the log bounded)
                log.exception("shard %s: maintenance failed", self.data_dir)
                retry_at = time.monotonic() + CHECKPOINT_RETRY_S

    def _fold(self) -> None:
        with self._lock:
            indexed = self._index.size if self._index else 0
            fresh = len(self._rows.row_of)
            due = (fresh and fresh >= indexed // FOLD_MIN_FRACTION and self._rows.live >= self.params.min_index_size
                   and not self._building() and not self._closed)
        if due:
            self.build_index(wait=False)

    def _checkpoint_due(self, idle: float) -> bool:
        with self._lock:
            if self._closed:
                return False
            sealed_uid, done_seq = self._checkpointed
            newer_build = self._index is not None and self._rows.sealed.uid != sealed_uid
            pending = self._wal.last_seq > done_seq
        return newer_build or (pending and (idle >= CHECKPOINT_IDLE_S or self._wal.size_bytes() >= self.checkpoint_log_bytes))

    def save(self) -> None:
        """Write a checkpoint of every row (and the index) under data_dir, then drop the log it covers.
        Does not wait for a running build: the log holds every acknowledged write, and the build's
        result is checkpointed when it lands."""
        if self.data_dir is None:
            return
        with self._checkpoint_lock:
            with self._lock:  # writes hold this lock while they log and apply: the copy and the seq agree
                rows, index = self._rows, self._index
                s, n = rows.sealed.size, rows.n
                view = rows.view()
                fresh = view.fresh[: n - s].copy()
                fresh_ids = rows.fresh_ids[: n - s]
                fresh_payloads = rows.fresh_payloads[: n - s]
                alive = rows.alive[:n].copy()
                last_seq = self._wal.rotate() if self._wal is not None else 0
            if self._checkpointed == (rows.sealed.uid, last_seq):
                return  # nothing new since the last one
            indexed = index is not None and index.size == s
            snapshot.save(self.data_dir, sealed=rows.sealed, sealed_alive=alive[:s], fresh=fresh, fresh_ids=fresh_ids,
                          fresh_alive=alive[s:], num_leaves=index.num_leaves if indexed else 0,
                          save_index=index.save if indexed else None, last_seq=last_seq,
                          fresh_payloads=fresh_payloads)
            memory.release_freed()  # ScaNN's serialize frees ~6x the index's codes in small blocks (1.1 GB on 60k x 784)
            self._checkpointed = (rows.sealed.uid, last_seq)
            self._checkpoint_error = None
            if self._wal is not None:
                self._wal.truncate_through(last_seq)  # the checkpoint holds every record up to last_seq

    def _restore(self, root: Path) -> None:
        """The latest checkpoint, then every logged write after its sequence number, in order."""
        t0 = time.perf_counter()
        assert self._wal is not None
        ckpt = snapshot.load(root)
        after = ckpt.last_seq if ckpt is not None else 0
        first = self._wal.first_seq()
        if first is not None and first > after + 1:
            what = f"the checkpoint in {ckpt.path} ends at record {after}" if ckpt else f"there is no checkpoint ({root / snapshot.MANIFEST} is missing)"
            raise CheckpointDamaged(f"write-ahead log {self._wal.directory} starts at record {first} but {what}: records "
                                    f"{after + 1}..{first - 1} are missing; restore the checkpoint, or move {root} away "
                                    f"to give up this shard's data")
        if ckpt is not None:
            self._rows = Rows.assemble(ckpt.sealed, ckpt.sealed_alive, ckpt.fresh, ckpt.fresh_ids, ckpt.fresh_alive,
                                       ckpt.fresh_payloads)
            if ckpt.index_dir is not None:
                try:
                    self._index = CoarseIndex.load(ckpt.index_dir, ckpt.sealed.size, ckpt.num_leaves, self.params)
                    if self._index.calibration is None:  # saved before calibration existed: measured in the background
                        threading.Thread(target=self._index.calibrate, args=(ckpt.sealed.vectors, self.scorer, self.params),
                                         name="calibration", daemon=True).start()
                except Exception:  # checksums passed, yet ScaNN refused it: rebuilt from the vectors, the source of truth
                    log.exception("could not load the saved index in %s; rebuilding", ckpt.index_dir)
                    self._index = None
            self._checkpointed = (ckpt.sealed.uid, ckpt.last_seq)
        replayed = 0
        for rec in self._wal.recover(after):
            if rec.kind == wal.UPSERT:
                self._rows.append(rec.ids, rec.vectors, rec.payloads)
            else:
                self._rows.kill(rec.ids)
            replayed += 1
        memory.release_freed()
        if replayed or ckpt is not None:
            log.info("shard %s restored: checkpoint of %d rows + %d logged writes in %.2fs", root,
                     ckpt.sealed.size + len(ckpt.fresh_ids) if ckpt is not None else 0, replayed,
                     time.perf_counter() - t0)
        self._maybe_rebuild()

    def position(self) -> int:
        """How far this shard's write history goes: its log's last record number. Replicas of one shard
        are sent the same writes in the same order and log each one the same way (a filter's or a patch's
        result is logged, not the request), so equal positions mean the same writes applied."""
        return self._wal.last_seq if self._wal is not None else 0

    def copy_to(self, dest: Path) -> int:
        """Make `dest` a copy of this shard's stored state, for a replica catching up: a fresh checkpoint,
        then its files hard-linked (a checkpoint's files are never changed once written: a later one
        writes new files, and the ScaNN assets file is replaced, not edited) or copied where links are
        not possible, and an empty log that continues at this shard's position. The caller sends no
        write meanwhile (cluster/replicas.py holds the shard's write order); a checkpoint the maintenance
        thread starts waits for this one. Returns the position copied."""
        if self.data_dir is None or self._wal is None:
            raise FailedPrecondition("a shard without a data directory cannot be copied")
        self.save()
        with self._checkpoint_lock:
            position = self.position()
            manifest = snapshot.read_manifest(self.data_dir)
            if dest.exists():
                for child in dest.iterdir():  # its replica is closed and out of the in-sync set meanwhile
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            dest.mkdir(parents=True, exist_ok=True)
            if manifest is not None:
                shutil.copytree(self.data_dir / manifest["snapshot"], dest / manifest["snapshot"],
                                copy_function=_link_or_copy)
                snapshot.fsync_path(dest / manifest["snapshot"])
                snapshot.write_json_atomic(dest / snapshot.MANIFEST, manifest)  # last: names a complete copy
        return position

    def close(self, save: bool = True) -> None:
        """Stop: no write is accepted after this begins. Does not wait for a running index build (the
        log and the checkpoint hold every acknowledged write; the build's result is dropped), nor more
        than CLOSE_WAIT_S for a checkpoint the maintenance thread is writing (then none is written here)."""
        with self._lock:
            self._closed = True
        self._stop.set()
        if self._maintainer is not None and self._maintainer is not threading.current_thread():
            self._maintainer.join(CLOSE_WAIT_S)
            if self._maintainer.is_alive():  # mid-checkpoint (a large one after a build): not worth a slow stop
                log.warning("shard %s: a checkpoint is still being written; stopping without it (the log holds "
                            "every acknowledged write and the next start replays it)", self.data_dir)
                save = False
        if save:
            self.save()
        if self._wal is not None:
            self._wal.close()
