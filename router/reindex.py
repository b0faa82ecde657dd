"""Re-embedding a collection with another encoder while it serves, its quality gate and its canary.

A reindex builds a new *embedding generation* of the collection: shards of their own (gen-<g>/
beside the serving ones), filled with every point's kept raw input (router/inputs_store.py)
embedded by the target encoder on its replicas, and the points' payloads. The collection's name
keeps meaning the serving generation until the job promotes the new one: one catalog commit
changes the collection's spec (encoder, dim, generation), like an alias switch, and later requests
resolve to the new shards while those already running finish on the old ones.

Nothing is lost on the way:
- every write is mirrored: from the job's start, an upsert (of raw inputs: a bare vector cannot be
  re-embedded, so it is refused while a job runs) is embedded by both encoders and written to both
  generations; deletes and payload changes go to both;
- the backfill copies pages in id order; a page is embedded outside any lock, then written under
  the collection's exclusive write lock (`WriteGate`) after re-reading each point's input and
  payload, so a point a user wrote or deleted meanwhile is never overwritten with older data;
- the job (target encoder, new spec, the backfill's cursor) is a catalog row: after a crash the
  server restarts the new generation's shards (their logs hold every mirrored write) and resumes
  after the cursor.

Before promotion the quality gate (router/quality_gate.py) searches both generations through the
serving path: labelled evaluation points (a payload field as the label, optionally a filter naming
held-out points) give P@1, R@K and MAP@R; recent live queries (raw inputs seen while the job ran)
give the two generations' top-k overlap. Only a generation at least as good by the configured
margin is promoted. An optional canary then sends a fraction of raw-input searches to the new
generation for a while and rolls back when its error rate or latency regresses. Every decision and
its figures stay in the job's row, which `describe` shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import shutil
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, AsyncIterator

import numpy as np

from simsearch.contract import filters as F
from simsearch.contract.errors import FailedPrecondition, SimsearchError, Unavailable, invalid
from simsearch.router.quality_gate import (MAX_DEPTH, GateRule, canary_verdict, labelled_metrics, overlap,
                                           ranked_labels)
from simsearch.router.reindex_catalog import ReindexJob

if TYPE_CHECKING:
    from simsearch.router.engine import Engine, LiveCollection

log = logging.getLogger(__name__)
RECENT_QUERIES = 256  # raw-input searches kept for the gate's live-overlap figure
RETRY_UNAVAILABLE_S = 600.0  # how long a job waits out UNAVAILABLE (a restart's replicas starting) before failing
SCROLL_PAGE = 1000


@dataclass(frozen=True)
class ReindexOptions:
    """What a Reindex request asks of the gate, the canary and the backfill (0 / "" take the defaults)."""

    label_field: str = ""  # the payload field holding each point's label; "" only with skip_gate
    eval_filter: dict | None = None  # which labelled points are evaluation queries (None: any of them)
    eval_size: int = 500
    k: int = 10
    min_gain: float = 0.0  # the new generation's P@1 and MAP@R must reach the current ones plus this
    min_overlap: float = 0.0  # and, when > 0, its top k on live queries must share this much with the current
    canary_fraction: float = 0.0  # of raw-input searches served by the new generation before promotion
    canary_seconds: float = 30.0
    max_latency_ratio: float = 2.0  # the canary rolls back when its p50 exceeds the current's by this factor
    batch: int = 256  # points embedded and copied per backfill step
    skip_gate: bool = False  # promote once built, without evaluating (recorded as such)

    def checked(self) -> "ReindexOptions":
        if not self.skip_gate and not self.label_field:
            raise invalid("label_field", "must name the payload field holding the labels the quality gate "
                                         "evaluates on (or set skip_gate to promote without evaluating)")
        if self.eval_filter is not None:
            F.parse(self.eval_filter, "eval_filter")
        for name, value, lo, hi in (("eval_size", self.eval_size, 10, 10_000), ("k", self.k, 1, MAX_DEPTH - 1),
                                    ("batch", self.batch, 1, 4096)):
            if not lo <= value <= hi:
                raise invalid(name, f"must be 0 (default) or in [{lo}, {hi}], got {value}")
        for name, value, lo, hi in (("min_gain", self.min_gain, -1.0, 1.0), ("min_overlap", self.min_overlap, 0.0, 1.0),
                                    ("canary_fraction", self.canary_fraction, 0.0, 0.5),
                                    ("canary_seconds", self.canary_seconds, 1.0, 86_400.0),
                                    ("max_latency_ratio", self.max_latency_ratio, 1.0, 100.0)):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise invalid(name, f"must be in [{lo:g}, {hi:g}], got {value:g}")
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReindexOptions":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class WriteGate:
    """A collection's writes share it; the reindex takes it alone for a moment (a backfill page's commit,
    the start, the promotion), so no write runs half on one side of such a step. Single event loop: the
    check and the count happen without an await between them."""

    def __init__(self) -> None:
        self._writers = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self._open.is_set():
            await self._open.wait()
        self._writers += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._writers -= 1
            if not self._writers:
                self._idle.set()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Waits for the writes in flight; new ones wait until it is released (one holder: the job's task)."""
        self._open.clear()
        try:
            while self._writers:
                await self._idle.wait()
            yield
        finally:
            self._open.set()


class CanaryStats:
    """Searches served by each generation during the canary: count, failures, latencies."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {"canary": [], "current": []}
        self.failed = {"canary": 0, "current": 0}

    def record(self, side: str, seconds: float, ok: bool) -> None:
        if ok:
            self.latency[side].append(seconds)
        else:
            self.failed[side] += 1

    def figures(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for side in ("canary", "current"):
            lat = self.latency[side]
            n = len(lat) + self.failed[side]
            out[f"{side}_searches"] = n
            out[f"{side}_error_rate"] = self.failed[side] / n if n else 0.0
            out[f"{side}_p50_ms"] = float(np.percentile(lat, 50) * 1e3) if lat else float("nan")
        return out


class Migration:
    """One running reindex of a live collection."""

    def __init__(self, engine: "Engine", live: "LiveCollection", target: "LiveCollection", job: ReindexJob):
        self.engine = engine
        self.live = live
        self.target = target
        self.job = job
        self.options = ReindexOptions.from_dict(job.options)
        self.recent: deque[bytes] = deque(maxlen=RECENT_QUERIES)
        self.canary: CanaryStats | None = None
        self.task: asyncio.Task | None = None
        self._ended = False

    @property
    def encoder(self) -> str:
        return self.job.encoder

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    # ---- the job ----

    async def _run(self) -> None:
        """The job's steps; a step that meets UNAVAILABLE (an encoder replica or a shard still starting after a
        restart, a node lost) is tried again after a back-off, from the committed cursor, for up to
        RETRY_UNAVAILABLE_S; any other error fails the job."""
        waited, backoff = 0.0, 1.0
        while True:
            try:
                await self._steps()
                return
            except asyncio.CancelledError:
                raise
            except Unavailable as e:
                if waited >= RETRY_UNAVAILABLE_S:
                    await self._fail(e)
                    return
                log.info("reindex of %s/%s to %s waits %.0f s: %s", self.job.tenant, self.job.collection,
                         self.encoder, backoff, e.message)
                await asyncio.sleep(backoff)
                waited += backoff
                backoff = min(backoff * 2, 30.0)
            except Exception as e:  # the job fails; the serving generation is untouched
                await self._fail(e)
                return

    async def _fail(self, e: Exception) -> None:
        reason = e.message if isinstance(e, SimsearchError) else f"{type(e).__name__}: {e}"
        log.warning("reindex of %s/%s to %s failed: %s", self.job.tenant, self.job.collection, self.encoder, reason)
        await self.end("failed", reason)

    async def _steps(self) -> None:
        """Build, evaluate, (canary,) promote: each from the state the job row says it is in."""
        if self.job.state == "building":
            await self._backfill()
            await self._store(state="evaluating")
        if self.job.state == "evaluating":
            passed = await self._evaluate()
            if not passed:
                await self.end("refused")
                return
            if self.options.canary_fraction > 0:
                await self._store(state="canary")
        if self.job.state == "canary":
            if not await self._run_canary():
                await self.end("rolled-back")
                return
        await self.engine.promote(self)

    async def _store(self, **changes: Any) -> None:
        self.job = replace(self.job, **changes)
        self.job = await asyncio.to_thread(self.engine.catalog.update_reindex, self.job)

    async def end(self, state: str, error: str = "") -> None:
        """A job that did not promote: recorded, the new generation's shards stopped and its files removed."""
        if self._ended:
            return
        self._ended = True
        await self._store(state=state, error=error[:2000])
        await self.engine.end_migration(self)

    def fail_soon(self, reason: str) -> None:
        """A mirrored write the new generation refused: it no longer holds every acknowledged write, so the
        job fails (the write itself succeeded on the serving generation and is acknowledged)."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        asyncio.ensure_future(self._end("failed", f"the new generation missed a write: {reason}"))

    # ---- backfill ----

    async def _backfill(self) -> None:
        """Copy every point in id order, `parallel` pages at a time: their embeddings run at once on the target's
        replicas (round-robin), then each page is written under the write gate, and the cursor is committed."""
        engine, live = self.engine, self.live
        store = await engine.input_store(live)
        cursor = self.job.cursor
        if "total" not in self.job.decision:
            await self._store(decision={**self.job.decision, "total": await engine.count_live(live)})
        more = True
        while more:
            pages: list[list[str]] = []
            while more and len(pages) < engine.encoders.parallelism:
                ids, _, _, nxt = await engine.scroll_live(live, self.options.batch, cursor, None, False, False)
                more = bool(nxt)
                if ids:
                    pages.append(ids)
                    cursor = ids[-1]
            blobs = [await asyncio.to_thread(store.get, ids) for ids in pages]
            for ids, page in zip(pages, blobs):
                lacking = [i for i, b in zip(ids, page) if b is None]
                if lacking:
                    raise FailedPrecondition(
                        f"point {lacking[0]!r} (and {len(lacking) - 1} more in this page) has no kept raw input: it "
                        f"was upserted as a vector, so it cannot be re-embedded; upsert it with its raw input (or "
                        f"delete it) and reindex again", field="collection")
            vectors = await asyncio.gather(*(engine.encoders.embed_kept(self.encoder, page) for page in blobs))
            for ids, page, vecs in zip(pages, blobs, vectors):
                await self._commit_page(store, ids, page, vecs)
            await self._store(cursor=cursor, copied=self.job.copied + sum(map(len, pages)))

    async def _commit_page(self, store: Any, ids: list[str], blobs: list[bytes], vectors: np.ndarray) -> None:
        """Write a page to the new generation with each point's payload as stored now, leaving out the points a
        user rewrote or deleted since the page was read (their writes were mirrored already)."""
        engine, live = self.engine, self.live
        async with live.writes.exclusive():  # no write in flight: what is read now is what is stored
            now = await asyncio.to_thread(store.get, ids)
            found, _, _, docs = await engine.get_live(live, ids)
            payload_of = dict(zip(found, docs))
            keep = [n for n, (i, b) in enumerate(zip(ids, blobs)) if now[n] == b and i in payload_of]
            if keep:
                await engine.upsert_shards(self.target, [ids[n] for n in keep], vectors[keep],
                                           [payload_of[ids[n]] for n in keep])

    # ---- the gate ----

    async def _evaluate(self) -> bool:
        engine, opt = self.engine, self.options
        await engine.build_live(self.target)  # evaluated with the index it will serve with
        decision: dict[str, Any] = {"total": self.job.decision.get("total", 0)}
        if opt.skip_gate:
            decision.update(passed=True, reason="skip_gate: promoted without evaluating")
            await self._store(decision=decision)
            return True
        label_of = await self._labels(None)
        pool = list(label_of) if opt.eval_filter is None else [i for i in await self._labels(opt.eval_filter)
                                                                if i in label_of]
        counts: dict[str, int] = {}
        for lab in label_of.values():
            counts[lab] = counts.get(lab, 0) + 1
        pool = [i for i in pool if counts[label_of[i]] > 1]
        if len(pool) < 10:
            raise FailedPrecondition(f"the quality gate needs at least 10 evaluation points whose label (payload "
                                     f"field {opt.label_field!r}) another point shares; found {len(pool)}",
                                     field="label_field")
        rng = random.Random(self.job.generation)
        queries = sorted(rng.sample(pool, min(opt.eval_size, len(pool))))
        labels = [label_of[q] for q in queries]
        relevant = [counts[lab] - 1 for lab in labels]
        depth = min(MAX_DEPTH, max(opt.k, max(relevant)) + 1)
        figures = {}
        for side, gen in (("current", self.live), ("candidate", self.target)):
            found, vectors, _, _ = await engine.get_live(gen, queries)
            if len(found) != len(queries):
                raise FailedPrecondition(f"{len(queries) - len(found)} evaluation points changed during the "
                                         f"evaluation; reindex again", field="collection")
            hits = await engine.search_ids(gen, vectors, depth)
            figures[side] = labelled_metrics(ranked_labels(hits, queries, label_of), labels, relevant, opt.k)
        live_overlap, n_live = await self._live_overlap()
        passed, reason = GateRule(opt.min_gain, opt.min_overlap).decide(figures["current"], figures["candidate"],
                                                                        live_overlap)
        decision.update(current=figures["current"], candidate=figures["candidate"], eval_queries=len(queries),
                        depth=depth, live_overlap=None if math.isnan(live_overlap) else live_overlap,
                        live_queries=n_live, passed=passed, reason=reason)
        await self._store(decision=decision)
        log.info("reindex gate of %s/%s (%s -> %s): %s", self.job.tenant, self.job.collection, self.job.from_encoder,
                 self.encoder, reason)
        return passed

    async def _labels(self, f: dict | None) -> dict[str, str]:
        """id -> label of every point with the label field (that passes `f`), read page by page."""
        out: dict[str, str] = {}
        cursor = ""
        flt = F.parse(f, "eval_filter") if f is not None else None
        while True:
            ids, _, payloads, cursor = await self.engine.scroll_live(self.live, SCROLL_PAGE, cursor, flt, False, True)
            for i, doc in zip(ids, payloads or ()):
                value = _field(doc, self.options.label_field)
                if value not in (None, ""):
                    out[i] = str(value)
            if not cursor:
                return out

    async def _live_overlap(self) -> tuple[float, int]:
        """The two generations' top-k overlap on the raw-input searches seen while the job ran."""
        blobs = list(self.recent)
        if not blobs:
            return float("nan"), 0
        kinds = {b[:1] for b in blobs}  # texts and images are never mixed in one embed call
        a_all: list[list[str]] = []
        b_all: list[list[str]] = []
        for kind in kinds:
            part = [b for b in blobs if b[:1] == kind]
            cur = await self.engine.encoders.embed_kept(self.job.from_encoder, part)
            new = await self.engine.encoders.embed_kept(self.encoder, part)
            a_all += await self.engine.search_ids(self.live, cur, self.options.k)
            b_all += await self.engine.search_ids(self.target, new, self.options.k)
        return overlap(a_all, b_all, self.options.k), len(blobs)

    # ---- the canary ----

    async def _run_canary(self) -> bool:
        self.canary = stats = CanaryStats()
        await asyncio.sleep(self.options.canary_seconds)
        figures = stats.figures()
        passed, reason = canary_verdict(figures, self.options.max_latency_ratio)
        canary = {**{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in figures.items()},
                  "passed": passed, "reason": reason}
        self.canary = None
        await self._store(decision={**self.job.decision, "canary": canary})
        return passed

    def route(self) -> bool:
        """Whether this raw-input search goes to the canary."""
        return self.canary is not None and random.random() < self.options.canary_fraction


def _field(doc: str, name: str) -> Any:
    """A top-level payload field of a canonical JSON document."""
    if not doc:
        return None
    value = json.loads(doc).get(name)
    return value if isinstance(value, (str, int, float, bool)) else None


def remove_paths(paths: list) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def job_view(job: ReindexJob, migration: Migration | None = None) -> dict[str, Any]:
    """What describe shows of a job: its row, plus the live canary's figures."""
    out = asdict(job)
    out.pop("spec")
    if migration is not None and migration.canary is not None:
        out["decision"] = {**out["decision"], "canary_so_far": migration.canary.figures()}
    return out

