"""The router's async core: catalog, fan-out to shards (in-process or Ray actors), merge, cache.

Servicers convert protos to the arguments here and back; this class owns no gRPC and no
protobuf: it takes numpy arrays and validated options and answers domain objects
(`router.replies`). Every search runs under one `Deadline` computed at the edge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Callable
from typing import Any, TypeVar
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from simsearch.cluster import LocalShardHandle, RayShardHandle, ShardHandle
from simsearch.cluster.replicas import ReplicatedShardHandle
from simsearch.contract.errors import (AlreadyExists, DeadlineExceeded, FailedPrecondition, NotFound,
                                       SimsearchError, Unavailable, excerpt)
from simsearch.contract.payload_index import check_document, check_documents, check_filter
from simsearch.contract.payloads import project
from simsearch.reranker import to_score
from simsearch.router import metrics
from simsearch.router.cache import HotQueryCache, make_cache
from simsearch.router.deadline import Deadline
from simsearch.router.drift_monitor import KINDS as DRIFT_KINDS, DriftMonitor, DriftSettings, export_drift
from simsearch.router.recall_monitor import RecallMonitor, RecallSettings, filter_shape, recall_at_k
from simsearch.router.catalog import TENANTS_DIR, Catalog, CollectionRecord, write_error
from simsearch.router.encoders import EncoderHub
from simsearch.router.guard import AuditLog, FailedAuthGuard
from simsearch.router.quotas import TenantLimits, UsageLedger
from simsearch.router.hashing import group_by_shard
from simsearch.router.feedback_store import FeedbackEvent, FeedbackStore
from simsearch.router.inputs_store import InputStore
from simsearch.router.merge import merge
from simsearch.router.reindex import Migration, ReindexOptions, WriteGate, job_view, remove_paths
from simsearch.router.reindex_catalog import ReindexJob
from simsearch.router.shard_monitor import ShardMonitor
from simsearch.router.replies import CollectionStatus, Hits, SearchReply, decode_hits, encode_hits
from simsearch.contract.limits import DEFAULT_TIMEOUT_S, FEEDBACK_PAGE_BYTES, MAX_ID_BYTES, MAX_QUERIES, longest_utf8
from simsearch.router.validate import (SearchOptions, check_get_payloads, check_get_reply, check_reply_size,
                                       check_search_payloads, check_shape, check_vectors)
from simsearch.shard import CollectionSpec, memory
from simsearch.shard.config import DEFAULT_RECALL_SLO, DEFAULT_TARGET_RECALL
from simsearch.shard.config import check_rows
from simsearch.shard.faults import StorageFault
from simsearch.shard.snapshot import fsync_path

log = logging.getLogger(__name__)
RETRY_UNAVAILABLE_S = 1.0  # the back-off a client is told (RetryInfo) when a shard did not answer
T = TypeVar("T")
IDLE_TRIM_S = 2.0  # writes stopped this long: the router returns freed heap to the OS
CACHE_BOUND_S = 0.05  # the cache backend's own bound on a lookup (RedisBackend's socket timeout)
ShardFactory = Callable[..., ShardHandle]  # (label, record, shard number, path, **Shard options)


def ray_factory(label: str, rec: CollectionRecord, shard: int, path: Path, **options: Any) -> RayShardHandle:
    """options: Shard's, plus a replica's placement (avoid_hosts) and resend window (retry_s)."""
    return RayShardHandle.create(label, rec.spec.dim, rec.spec.metric, rec.spec.index, path, **options)


def local_factory(label: str, rec: CollectionRecord, shard: int, path: Path, *, avoid_hosts: Any = None,
                  retry_s: float = 0.0, **options: Any) -> LocalShardHandle:
    """Replicas in the router's process share its fate: they serve tests and one-machine trials."""
    return LocalShardHandle.create(label, rec.spec.dim, rec.spec.metric, rec.spec.index, path, **options)


FACTORIES: dict[str, ShardFactory] = {"ray": ray_factory, "local": local_factory}


def _record_search(tenant: str, collection: str, timings: dict[str, float], cached: bool, partial: bool,
                   n: int) -> None:
    m = metrics.tenant_search(tenant)
    metrics.collection_search(tenant, collection).observe(timings["total"])
    if "cache" in timings:
        (m.cache_hit if cached else m.cache_miss).inc()
    for stage, seconds in timings.items():
        metrics.stage_seconds(stage).observe(seconds)
    m.outcomes["cached" if cached else ("partial" if partial else "ok")].inc()
    m.queries.inc(n)


OFF_LOOP_VALUES = 1 << 20  # a check or hash over more floats than this (~1-3 ms here) runs in a worker thread


async def off_loop_if_large(values: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args) inline when it reads few values, else in a worker thread (numpy and hashlib release the
    GIL): a 64 MiB request's checks take tens of ms, which the event loop must not spend."""
    if values <= OFF_LOOP_VALUES:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _unstoppable(coro: Any) -> Any:
    """Await `coro` in its own task, shielded: a caller that goes away (a cancelled RPC) stops waiting,
    but a catalog change and what goes with it (directories, shards) still finish together."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


def _kill(handles: list[ShardHandle]) -> None:
    for h in handles:
        h.kill()


def _stop(live: "LiveCollection") -> None:
    """A dropped collection's shards, and a running reindex's with its task."""
    if live.migration is not None:
        if live.migration.task is not None:
            live.migration.task.cancel()
        _kill(live.migration.target.shards)
    _kill(live.shards)


def _target_record(live: "LiveCollection", job: ReindexJob) -> CollectionRecord:
    """The record of a reindex's new generation: the job's spec, the collection's uid and layout."""
    return CollectionRecord.from_row(live.record.tenant, json.dumps(job.spec), live.record.uid,
                                     live.record.created_at)


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


@dataclass
class LiveCollection:
    record: CollectionRecord
    shards: list[ShardHandle]
    cache_scope: str  # the cache keys' prefix: tenant, collection uid, router epoch
    generation: int = 0
    # The longest id stored, in UTF-8 bytes: sizes a search's reply before it is computed. None until the
    # first search asks the shards (after a restart they hold ids written by an earlier process).
    id_bytes: int | None = None
    writes: WriteGate = field(default_factory=WriteGate)  # every write shares it; a reindex's steps take it alone
    migration: Migration | None = None  # a running reindex (router/reindex.py)

    @property
    def spec(self) -> CollectionSpec:
        return self.record.spec


class CollectionDamaged(Exception):
    """A catalogued collection whose stored state cannot be loaded (a shard's StorageFault, a missing
    directory); `reason` quotes the fault, which names the file."""

    def __init__(self, record: CollectionRecord, reason: str):
        super().__init__(f"collection {record.tenant}/{record.spec.name} cannot be loaded: {reason}")
        self.record = record
        self.reason = reason


@dataclass(frozen=True)
class DamagedCollection:
    """A collection kept in the catalog but not served (start-up with skip_damaged): listed, described
    as unavailable with the reason, refused for data calls, and droppable."""

    record: CollectionRecord
    reason: str

    def refusal(self, field: str) -> FailedPrecondition:
        # FAILED_PRECONDITION, not UNAVAILABLE: retrying cannot help until an operator restores the
        # files or drops the collection (and the SDK retries UNAVAILABLE on its own).
        return FailedPrecondition(f"collection {excerpt(self.record.spec.name)} is unavailable (its files could not "
                                  f"be loaded at start-up; drop it, or restore them and restart): {self.reason}",
                                  field=field)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Engine:
    def __init__(self, catalog: Catalog, *, cache: HotQueryCache | None = None,
                 shard_factory: ShardFactory = local_factory, default_timeout_s: float = DEFAULT_TIMEOUT_S,
                 clock: Callable[[], float] = time.perf_counter, encoders: EncoderHub | None = None,
                 durability: str = "fsync", durability_interval_ms: int = 100,
                 checkpoint_log_bytes: int = 128 << 20, drift: DriftSettings | None = None,
                 recall: RecallSettings | None = None):
        """durability: when a shard acknowledges a write ("fsync", "interval", "none": shard/wal.py);
        checkpoint_log_bytes: a shard's log size that forces a checkpoint; drift: how queries and writes are
        sampled and checked for drift (router/drift_monitor.py).
        Serves no collection until `open` has started the catalogued ones."""
        self.catalog = catalog
        self.auth_guard = FailedAuthGuard()  # wrong keys answered slowly, per source (router/guard.py)
        self.limits = TenantLimits()  # per-tenant rate and concurrent-search limits (router/quotas.py)
        self.usage = UsageLedger()  # points and payload bytes per tenant, for max_points / max_payload_bytes
        self.audit: AuditLog | None = AuditLog(catalog.root)  # admin actions, JSON lines
        self.encoders = encoders or EncoderHub(catalog.root / "models")
        self.cache = cache or make_cache(None)
        self._factory = shard_factory
        self._shard_options = dict(durability=durability, durability_interval_ms=durability_interval_ms,
                                   checkpoint_log_bytes=checkpoint_log_bytes)
        self.default_timeout_s = default_timeout_s  # the edge's deadline for a call that sets none
        self._clock = clock
        self._live: dict[tuple[str, str], LiveCollection] = {}
        self._side_stores: dict[tuple[str, str, str], Any] = {}  # (tenant, collection uid, kind) -> side store
        memory.limit_arenas()  # this process's request buffers too (shard/memory.py), wherever the shards are
        self._last_write = 0.0
        self._trim: asyncio.TimerHandle | None = None
        self._damaged: dict[tuple[str, str], DamagedCollection] = {}
        self._retiring: dict[asyncio.Task, list[ShardHandle]] = {}  # retired generations' shards, stopped soon
        self.drift = DriftMonitor(drift)
        self.recall = RecallMonitor(recall)
        self._tuned: dict[tuple[str, str], float] = {}  # recall targets the live monitor raised
        self._tuned_since: dict[tuple[str, str], int] = {}  # sampled queries when each was last raised
        self._background: set[asyncio.Task] = set()
        self._drift_task: asyncio.Task | None = None
        self.shard_monitor = ShardMonitor(self.serving_shards)  # shard availability and builds as metrics
        # Each process start is a new cache epoch, so a restarted router never reads entries
        # written under the same (collection, generation) by an earlier incarnation.
        self._epoch = f"{time.time_ns():x}"

    async def open(self, *, skip_damaged: bool = False) -> list[DamagedCollection]:
        """Remove orphaned collection directories, then start every catalogued collection's shards.
        A collection that cannot be loaded raises CollectionDamaged (the shards started so far are
        left for `close`), or with skip_damaged is kept listed but unavailable, one warning each.
        Returns the skipped collections."""
        for path in self.catalog.orphans():
            log.warning("removing %s: no catalogued collection owns it (a crash during a create or a drop)", path)
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
        for rec in self.catalog.records():
            key = (rec.tenant, rec.spec.name)
            job = self.catalog.active_reindex(rec.tenant, rec.spec.name)
            keep = {rec.spec.embedding_generation} | ({job.generation} if job else set())
            stale = self.catalog.stale_generations(rec, keep)
            if stale:
                log.info("removing %d files of %s/%s's retired embedding generations", len(stale), *key)
                await asyncio.to_thread(remove_paths, stale)
            try:
                self._live[key] = live = await self._start_checked(rec)
                await self._declare_indexes(live)
                if job is not None:
                    await self._resume(live, job)
            except CollectionDamaged as e:
                if not skip_damaged:
                    raise
                self._damaged[key] = DamagedCollection(rec, e.reason)
                log.warning("serving without collection %s/%s (listed as unavailable): %s", rec.tenant, rec.spec.name,
                            e.reason)
        for live in self._live.values():
            self._watch(live)
        self._drift_task = asyncio.ensure_future(self._drift_loop())
        self.shard_monitor.start()
        return list(self._damaged.values())

    def _watch(self, live: LiveCollection) -> None:
        key = (live.record.tenant, live.spec.name)
        self.drift.watch(key, self.catalog.collection_dir(live.record), live.spec.dim)
        self.recall.watch(key, live.spec.recall_slo or DEFAULT_RECALL_SLO)

    async def _drift_loop(self) -> None:
        """Every interval: each watched collection's drift and health checked (in a worker thread) and exported."""
        while True:
            await asyncio.sleep(self.drift.settings.interval_s)
            try:
                for key, view in await asyncio.to_thread(self.drift.check_all):
                    export_drift(*key, view)
            except Exception:  # noqa: BLE001 - a check must never stop the loop; logged with its traceback
                log.exception("drift check failed")

    def serving_shards(self) -> list[tuple[str, str, int, ShardHandle]]:
        """(tenant, collection, shard number, handle) of every serving shard: what the shard monitor polls."""
        return [(t, n, i, h) for (t, n), live in self._live.items() for i, h in enumerate(live.shards)]

    def _start(self, rec: CollectionRecord) -> LiveCollection:
        handles: list[ShardHandle] = []
        try:
            for i in range(rec.spec.shards):
                label = f"{rec.tenant}/{rec.spec.name}-{rec.uid}/shard-{i}"
                if rec.spec.replicas == 1:
                    handles.append(self._factory(label, rec, i, self.catalog.shard_dir(rec, i), **self._shard_options))
                    continue

                def make(j: int, path: Path, avoid: frozenset[str], label: str = label, i: int = i) -> ShardHandle:
                    return self._factory(f"{label}/replica-{j}", rec, i, path, avoid_hosts=avoid,
                                         retry_s=0.0, **self._shard_options)

                handles.append(ReplicatedShardHandle.create(
                    label, [self.catalog.shard_dir(rec, i, j) for j in range(rec.spec.replicas)], rec.spec.quorum,
                    self.catalog.replica_state(rec, i), make))
        except BaseException:
            _kill(handles)
            raise
        return LiveCollection(rec, handles, f"{rec.tenant}:{rec.uid}.{rec.spec.embedding_generation}.{self._epoch}")

    async def _start_checked(self, rec: CollectionRecord) -> LiveCollection:
        """Start a catalogued collection's shards and wait until each answers. CollectionDamaged when a
        shard directory is missing (a shard would start empty there) or a shard cannot load its files."""
        for i in range(rec.spec.shards):
            for j in range(rec.spec.replicas):
                path = self.catalog.shard_dir(rec, i, j)
                if not path.is_dir():
                    raise CollectionDamaged(rec, f"its shard directory {path} is missing")
        try:
            live = self._start(rec)  # a local shard loads its checkpoint and replays its log here
        except (StorageFault, OSError) as e:
            raise CollectionDamaged(rec, _one_line(str(e))) from e
        try:  # a Ray shard loads in its actor: a failure there surfaces at its first call
            await asyncio.gather(*(h.stats() for h in live.shards))
        except SimsearchError as e:
            _kill(live.shards)
            raise CollectionDamaged(rec, _one_line(e.message)) from e
        return live

    def spec(self, tenant: str, name: str) -> CollectionSpec:
        return self._get(tenant, name).spec

    def resolve(self, tenant: str, name: str) -> str:
        """The collection a request's name means: itself, or the target of the alias it is (one dict probe).
        A request resolves once, at its start, and keeps that collection to its end (a switch meanwhile
        changes what later requests see, not this one)."""
        return self.catalog.resolve(tenant, name)

    def _get(self, tenant: str, name: str, field: str = "collection") -> LiveCollection:
        live = self._live.get((tenant, name))
        if live is None:
            name = self.catalog.resolve(tenant, name)  # an alias: its target, else the name as given
            live = self._live.get((tenant, name))
            if live is not None:
                return live
            damaged = self._damaged.get((tenant, name))
            if damaged is not None:
                raise damaged.refusal(field)
            raise NotFound(f"collection {excerpt(name)} does not exist", field=field)
        return live

    # ---- collections ----

    async def create_collection(self, tenant: str, spec: CollectionSpec,
                                indexes: dict[str, str] | None = None) -> CollectionStatus:
        """All or nothing: the directories and the shards first, then the catalog commit. A failure before
        the commit undoes the rest (a crash leaves an orphan directory, removed at the next start); a disk
        that refuses a write answers UNAVAILABLE or RESOURCE_EXHAUSTED. Runs to the end even when the
        caller goes away, so a commit is never half undone."""
        if self.catalog.exists(tenant, spec.name) or (tenant, spec.name) in self._damaged:
            raise AlreadyExists(f"collection {excerpt(spec.name)} already exists", field="name")
        self.catalog.check_collections_quota(tenant)  # before any directory or shard is made
        self.catalog.check_not_alias(tenant, spec.name)  # checked again under the catalog's lock at the commit
        await _unstoppable(self._create(tenant, spec, indexes or {}))
        return await self.describe(tenant, spec.name)

    async def _create(self, tenant: str, spec: CollectionSpec, indexes: dict[str, str]) -> None:
        rec = self.catalog.plan(tenant, spec)
        try:
            await asyncio.to_thread(self._make_dirs, rec)
            live = self._start(rec)
        except BaseException as e:
            await asyncio.to_thread(shutil.rmtree, self.catalog.collection_dir(rec), ignore_errors=True)
            if isinstance(e, OSError):
                raise write_error(e, f"create collection {excerpt(spec.name)}") from e
            raise
        try:
            await asyncio.gather(*(h.stats() for h in live.shards))  # a Ray shard that cannot start fails here
            await asyncio.to_thread(self.catalog.insert, rec, indexes)
        except BaseException:
            _kill(live.shards)
            await asyncio.to_thread(shutil.rmtree, self.catalog.collection_dir(rec), ignore_errors=True)
            raise
        self._live[(tenant, spec.name)] = live
        self._watch(live)
        await self._declare_indexes(live)

    def _make_dirs(self, rec: CollectionRecord) -> None:
        """Every shard directory of a new collection, durable before the catalog names it."""
        for i in range(rec.spec.shards):
            for j in range(rec.spec.replicas):
                self.catalog.shard_dir(rec, i, j).mkdir(parents=True)
        collection = self.catalog.collection_dir(rec)
        generation = self.catalog.generation_dir(rec)  # the collection's own for generation 0
        for path in dict.fromkeys((generation, collection, collection.parent, collection.parent.parent,
                                   self.catalog.root)):
            fsync_path(path)

    async def drop_collection(self, tenant: str, name: str) -> None:
        """The catalog commit first (a refused write leaves the collection listed and serving), then the
        shards stop and the files go, off the loop (a crash in between leaves an orphan, removed at start)."""
        key = (tenant, name)
        if key not in self._live and key not in self._damaged:
            if self.catalog.alias_target(tenant, name) is None:
                raise NotFound(f"collection {excerpt(name)} does not exist", field="name")
            # an alias: catalog.remove refuses it (FAILED_PRECONDITION naming its target); drop by the real name
        await _unstoppable(self._drop(tenant, name))

    async def _drop(self, tenant: str, name: str) -> None:
        rec = await asyncio.to_thread(self.catalog.remove, tenant, name, delete_files=False)
        live = self._live.pop((tenant, name), None)
        self._damaged.pop((tenant, name), None)
        if live is not None:
            _stop(live)
        self._forget_monitors((tenant, name))
        self._close_side_stores(rec)
        self.usage.forget(tenant)
        # the files go in a worker thread: a large collection takes a while, and the loop serves everyone
        await asyncio.to_thread(shutil.rmtree, self.catalog.collection_dir(rec), ignore_errors=True)

    def list_collections(self, tenant: str) -> list[str]:
        return self.catalog.names(tenant)

    # ---- tenants ----

    async def run_catalog(self, fn: Callable[..., T], *args: Any) -> T:
        """A catalog change in a worker thread (an fsync'd commit), finished even if the caller goes away."""
        return await _unstoppable(asyncio.to_thread(fn, *args))

    async def tenant_usage(self, tenant: str) -> dict[str, int]:
        """Collections, live points and their payload bytes (what the shards report; unavailable shards count
        0) and keys."""
        names = self.catalog.names(tenant)
        lives = [self._live[(tenant, n)] for n in names if (tenant, n) in self._live]
        stats = [s for s in await asyncio.gather(*(h.stats() for live in lives for h in live.shards),
                                                 return_exceptions=True) if isinstance(s, dict)]
        inputs = [(await self._input_store(live)).stored_bytes() for live in lives if live.spec.encoder]
        return {"collections": len(names), "points": sum(s["points"] for s in stats),
                "payload_bytes": sum(s.get("payload_bytes", 0) for s in stats) + sum(inputs),
                "keys": len(self.catalog.keys_of(tenant))}

    async def _side_store(self, live: LiveCollection, kind: type[T]) -> T:
        """One of the collection's side files beside its shards (kept raw inputs, the feedback log), opened on
        first use, off the loop."""
        key = (live.record.tenant, live.record.uid, kind.__name__)
        store = self._side_stores.get(key)
        if store is None:
            store = await asyncio.to_thread(kind, self.catalog.collection_dir(live.record))
            store = self._side_stores.setdefault(key, store)
        return store

    async def _input_store(self, live: LiveCollection) -> InputStore:
        """The collection's kept raw inputs."""
        return await self._side_store(live, InputStore)

    def _close_side_stores(self, rec: CollectionRecord) -> None:
        for key in [k for k in self._side_stores if k[:2] == (rec.tenant, rec.uid)]:
            self._side_stores.pop(key).close()

    async def record_feedback(self, tenant: str, name: str, query: np.ndarray | bytes, shown: list[str],
                              chosen: str) -> int:
        """Append a feedback event (durable on return): the query as a vector (checked against the collection's
        dimension) or as a compressed raw input (checked by the caller against its encoder)."""
        live = self._get(tenant, name)
        if isinstance(query, np.ndarray):
            check_vectors(query, live.spec, "query", rows=1)
            kind, blob = "vector", np.ascontiguousarray(query, np.float32).tobytes()
        else:
            kind, blob = "input", query
        store = await self._side_store(live, FeedbackStore)
        return await asyncio.to_thread(store.record, kind, blob, shown, chosen)

    async def list_feedback(self, tenant: str, name: str, after: int, limit: int) -> tuple[list[FeedbackEvent], int]:
        """A page of the collection's feedback events after sequence number `after`, and the next page's
        `after` (0 after the last); a page stops early at FEEDBACK_PAGE_BYTES, so it fits a reply."""
        live = self._get(tenant, name)
        store = await self._side_store(live, FeedbackStore)
        return await asyncio.to_thread(store.page, after, limit, FEEDBACK_PAGE_BYTES)

    async def get_inputs(self, tenant: str, name: str, ids: list[str]) -> list[bytes | None]:
        """The kept raw input of each id (None where none is kept: a point upserted as a vector)."""
        live = self._get(tenant, name)
        if not live.spec.encoder:
            raise FailedPrecondition(f"collection {excerpt(live.spec.name)} is not bound to an encoder, so it keeps "
                                     f"no raw inputs", field="with_inputs")
        return await asyncio.to_thread((await self._input_store(live)).get, ids)

    async def delete_tenant(self, tenant: str) -> tuple[int, int]:
        """Forget the tenant and all of it in one catalog commit, then stop its shards and remove its files
        (off the loop; a crash in between leaves orphans, removed at the next start). (collections, keys)."""
        return await _unstoppable(self._delete_tenant(tenant))

    async def _delete_tenant(self, tenant: str) -> tuple[int, int]:
        records, keys = await asyncio.to_thread(self.catalog.remove_tenant, tenant)
        for rec in records:
            live = self._live.pop((tenant, rec.spec.name), None)
            self._damaged.pop((tenant, rec.spec.name), None)
            if live is not None:
                _stop(live)
            self._forget_monitors((tenant, rec.spec.name))
            self._close_side_stores(rec)
        self.usage.forget(tenant)
        await asyncio.to_thread(shutil.rmtree, self.catalog.root / TENANTS_DIR / tenant, ignore_errors=True)
        log.info("deleted tenant %s: %d collections, %d keys", tenant, len(records), keys)
        return len(records), keys

    # ---- aliases ----

    # Catalog writes run in a worker thread (an fsync'd commit); once one returns, the catalog's in-memory
    # copy already holds the change, so every request admitted after it resolves to the new target.

    async def create_alias(self, tenant: str, alias: str, collection: str) -> None:
        await _unstoppable(asyncio.to_thread(self.catalog.create_alias, tenant, alias, collection))

    async def switch_alias(self, tenant: str, alias: str, collection: str) -> str:
        return await _unstoppable(asyncio.to_thread(self.catalog.switch_alias, tenant, alias, collection))

    async def delete_alias(self, tenant: str, alias: str) -> str:
        return await _unstoppable(asyncio.to_thread(self.catalog.delete_alias, tenant, alias))

    def list_aliases(self, tenant: str) -> list[tuple[str, str]]:
        return self.catalog.aliases(tenant)

    async def describe(self, tenant: str, name: str) -> CollectionStatus:
        name = self.catalog.resolve(tenant, name)
        damaged = self._damaged.get((tenant, name))
        if damaged is not None:  # every shard reported unavailable, with the reason
            rec = damaged.record
            return CollectionStatus(rec.spec, 0, rec.created_at, [{"unavailable": damaged.reason}] * rec.spec.shards,
                                    dict(self.catalog.payload_indexes(tenant, name)))
        live = self._get(tenant, name, "name")
        replies = await asyncio.gather(*(h.stats() for h in live.shards), return_exceptions=True)
        # last_build_s is the shard monitor's (router/shard_monitor.py); ShardInfo has no field for it
        stats = [{k: v for k, v in r.items() if k != "last_build_s"} if isinstance(r, dict) else {"unavailable": str(r)}
                 for r in replies]
        return CollectionStatus(live.spec, live.generation, live.record.created_at, stats,
                                dict(self.catalog.payload_indexes(tenant, name)), self.reindex_jobs(tenant, name),
                                self.drift.view((tenant, name)),
                                {**self.recall.view((tenant, name)), "tuned_target": self._tuned.get((tenant, name), 0.0)})

    async def build_index(self, tenant: str, name: str, wait: bool) -> CollectionStatus:
        name = self.catalog.resolve(tenant, name)
        live = self._get(tenant, name, "name")
        await asyncio.gather(*(h.build_index(wait) for h in live.shards))
        return await self.describe(tenant, name)

    # ---- payload indexes ----

    def payload_indexes(self, tenant: str, name: str) -> dict[str, str]:
        """The declared payload indexes of a collection (its own name), field -> type."""
        return self.catalog.payload_indexes(tenant, name)

    async def _declare_indexes(self, live: LiveCollection, changed: bool = False) -> None:
        """Tell every shard the collection's declared indexes (each reads their columns in the background);
        at start-up and creation only when there are some, after a change always (an index may have gone)."""
        indexes = self.catalog.payload_indexes(live.record.tenant, live.spec.name)
        if indexes or changed:
            await asyncio.gather(*(h.set_payload_indexes(dict(indexes)) for h in live.shards))

    async def create_payload_index(self, tenant: str, name: str, field: str, kind: str, wait: bool,
                                   timeout_s: float | None = None) -> CollectionStatus:
        """Declare `field` indexed as `kind` (durable in the catalog first), then every shard reads its column
        in the background; with `wait`, answer once all have (or timeout_s passed: the state still says so)."""
        name = self.catalog.resolve(tenant, name)
        live = self._get(tenant, name, "collection")
        await self.run_catalog(self.catalog.add_payload_index, tenant, name, field, kind)
        await _unstoppable(self._declare_indexes(live, changed=True))
        if live.migration is not None:  # a reindex's new generation serves with the same declarations
            await _unstoppable(self._declare_indexes(live.migration.target, changed=True))
        if wait:
            await asyncio.gather(*(h.wait_payload_indexes(timeout_s) for h in live.shards))
        return await self.describe(tenant, name)

    async def drop_payload_index(self, tenant: str, name: str, field: str) -> CollectionStatus:
        name = self.catalog.resolve(tenant, name)
        live = self._get(tenant, name, "collection")
        await self.run_catalog(self.catalog.drop_payload_index, tenant, name, field)
        await _unstoppable(self._declare_indexes(live, changed=True))
        if live.migration is not None:
            await _unstoppable(self._declare_indexes(live.migration.target, changed=True))
        return await self.describe(tenant, name)

    def check_filter(self, tenant: str, name: str, f: Any) -> list[str]:
        """Refuse a filter whose values cannot match an indexed field's type; the unindexed fields it reads."""
        return check_filter(f, self.catalog.payload_indexes(tenant, name)) if f is not None else []

    # ---- points ----

    # The edge (servicers' `admit`) has bounded every request already: id counts, lengths and uniqueness,
    # matrix headers, k x queries. What needs the collection is checked here: dimension, values, reply sizes.

    async def upsert(self, tenant: str, name: str, ids: list[str], vectors: np.ndarray,
                     payloads: list[str] | None = None, inputs: list[bytes] | None = None) -> tuple[int, int]:
        """payloads: canonical JSON per id (checked at the edge), or None when the request sends none.
        inputs: the raw input of each id, compressed (protos/convert.py encode_inputs), kept durably before
        the shards are written (router/inputs_store.py) and counted with the payload bytes. While a reindex
        runs, the inputs are embedded by its encoder too and written to both generations."""
        live = self._get(tenant, name)
        await off_loop_if_large(vectors.size, check_vectors, vectors, live.spec, "vectors", rows=len(ids))
        schema = self.catalog.payload_indexes(tenant, live.spec.name)
        if schema and payloads is not None:
            check_documents(payloads, ids, schema)
        async with self._reserve_points(tenant, len(ids), payloads, sum(map(len, inputs or ()))), \
                self._writing(live) as live:
            mig = live.migration
            mirrored = None
            if mig is not None:
                if inputs is None:
                    raise FailedPrecondition(f"collection {excerpt(live.spec.name)} is being reindexed to "
                                             f"{mig.encoder}: upsert raw inputs (a vector cannot be embedded again by "
                                             f"the new encoder), or wait for the reindex to end", field="vectors")
                mirrored = await self.encoders.embed_kept(mig.encoder, inputs)
            if inputs is not None:
                store = await self._input_store(live)
                await asyncio.to_thread(store.put, ids, inputs)
            elif live.spec.encoder:  # upserted as vectors now: an input kept from before no longer matches them
                store = await self._input_store(live)
                await asyncio.to_thread(store.delete, ids)
            await self.upsert_shards(live, ids, vectors, payloads)
            if mig is not None:
                await self._mirror(mig, self.upsert_shards(mig.target, ids, mirrored, payloads))
        self.drift.observe((tenant, live.spec.name), "writes", vectors)
        metrics.UPSERTED.labels(tenant).inc(len(ids))
        return len(ids), live.generation

    async def upsert_shards(self, live: LiveCollection, ids: list[str], vectors: np.ndarray,
                            payloads: list[str] | None) -> None:
        """Write points to one generation's shards, each id to its own shard."""
        if live.id_bytes is not None:
            live.id_bytes = max(live.id_bytes, longest_utf8(ids))
        ids_arr = np.asarray(ids, dtype=object)
        docs = None if payloads is None else np.asarray(payloads, dtype=object)
        await self._write(live, {i: h.upsert(ids_arr[pos].tolist(), vectors[pos],
                                             None if docs is None else docs[pos].tolist())
                                 for i, (h, pos) in enumerate(zip(live.shards, group_by_shard(ids, live.spec.shards)))
                                 if len(pos)})

    @asynccontextmanager
    async def _writing(self, live: LiveCollection):
        """Hold the collection's write gate for a write; a write that waited while a reindex promoted its new
        generation goes to the collection that serves now."""
        key = (live.record.tenant, live.spec.name)
        while True:
            async with live.writes.shared():
                current = self._live.get(key)
                if current is live:
                    yield live
                    return
            if current is None:
                raise NotFound(f"collection {excerpt(key[1])} does not exist", field="collection")
            live = current

    @staticmethod
    async def _mirror(mig: Migration, write: Any) -> None:
        """A write's copy to a reindex's new generation: its failure fails the reindex, not the write (the serving
        generation has it)."""
        try:
            await write
        except SimsearchError as e:
            mig.fail_soon(e.message)

    def _reserve_points(self, tenant: str, adding: int, payloads: list[str] | None = None, extra_bytes: int = 0):
        """Hold `adding` points and the payloads' UTF-8 bytes (plus extra_bytes: kept raw inputs) of the tenant's
        quotas while the write runs (router/quotas.py UsageLedger: QuotaExceeded before any work when they would
        not fit)."""
        new_bytes = extra_bytes + sum(len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass"))
                                      for t in payloads or ())

        async def count() -> tuple[int, int]:
            usage = await self.tenant_usage(tenant)
            return usage["points"], usage["payload_bytes"]

        return self.usage.reserve(tenant, adding, new_bytes, self.catalog.quotas(tenant), count)

    async def delete(self, tenant: str, name: str, ids: list[str]) -> tuple[int, int]:
        live = self._get(tenant, name)
        async with self._writing(live) as live:
            removed = await self._delete_ids(live, ids)
            if live.migration is not None:
                await self._mirror(live.migration, self._delete_ids(live.migration.target, ids))
            if live.spec.encoder:
                await asyncio.to_thread((await self._input_store(live)).delete, ids)
        self.usage.forget(tenant)  # freed room counts at the next write, not a second later
        return removed, live.generation

    async def _delete_ids(self, live: LiveCollection, ids: list[str]) -> int:
        ids_arr = np.asarray(ids, dtype=object)
        return sum(await self._write(live, {i: h.delete(ids_arr[pos].tolist()) for i, (h, pos)
                                            in enumerate(zip(live.shards, group_by_shard(ids, live.spec.shards)))
                                            if len(pos)}))

    async def set_payload(self, tenant: str, name: str, ids: list[str], patch: str, delete_keys: list[str],
                          replace: bool) -> tuple[int, int]:
        """Change the payloads of the stored points among ids (each owning shard logs the new payloads)."""
        live = self._get(tenant, name)
        schema = self.catalog.payload_indexes(tenant, live.spec.name)
        if schema and patch:
            check_document(json.loads(patch), schema, "payload")
        ids_arr = np.asarray(ids, dtype=object)

        def calls(gen: LiveCollection) -> dict[int, Any]:
            return {i: h.set_payload(ids_arr[pos].tolist(), patch, delete_keys, replace)
                    for i, (h, pos) in enumerate(zip(gen.shards, group_by_shard(ids, gen.spec.shards))) if len(pos)}

        # at most the patch's size again on each point (an upper bound: fields it replaces shrink it)
        async with self._reserve_points(tenant, 0, [patch] * len(ids) if patch else None), \
                self._writing(live) as live:
            changed = await self._write(live, calls(live))
            if live.migration is not None:
                await self._mirror(live.migration, self._write(live.migration.target, calls(live.migration.target)))
        return sum(changed), live.generation

    async def delete_where(self, tenant: str, name: str, f: Any) -> tuple[int, int]:
        """Delete every point that passes filter `f`, on every shard (each logs the ids it deleted)."""
        live = self._get(tenant, name)
        self.check_filter(tenant, live.spec.name, f)
        async with self._writing(live) as live:
            removed = await self._write(live, {i: h.delete_where(f) for i, h in enumerate(live.shards)})
            if live.migration is not None:
                target = live.migration.target
                await self._mirror(live.migration,
                                   self._write(target, {i: h.delete_where(f) for i, h in enumerate(target.shards)}))
        self.usage.forget(tenant)
        return sum(removed), live.generation

    async def scroll(self, tenant: str, name: str, limit: int, cursor: str, f: Any, with_vectors: bool,
                     with_payload: bool) -> tuple[list[str], np.ndarray | None, list[str] | None, str]:
        """One page in id order: (ids, vectors or None, payloads or None, next cursor or ""). Each shard
        answers its first `limit` ids after the cursor; the page is the first `limit` of their union,
        and the cursor is its last id whenever more may follow."""
        live = self._get(tenant, name)
        self.check_filter(tenant, live.spec.name, f)
        return await self.scroll_live(live, limit, cursor, f, with_vectors, with_payload)

    async def scroll_live(self, live: LiveCollection, limit: int, cursor: str, f: Any, with_vectors: bool,
                          with_payload: bool) -> tuple[list[str], np.ndarray | None, list[str] | None, str]:
        """`scroll` on one generation's shards."""
        pages = await asyncio.gather(*(h.scroll(limit, cursor, f, with_vectors, with_payload) for h in live.shards))
        merged = sorted((x, s, i) for s, (ids, _, _) in enumerate(pages) for i, x in enumerate(ids))
        more = len(merged) > limit or any(len(p[0]) == limit for p in pages)
        merged = merged[:limit]
        ids = [x for x, _, _ in merged]
        vectors = payloads = None
        if with_vectors:  # one gather over the shards' pages laid end to end
            starts = np.cumsum([0] + [len(pg[0]) for pg in pages])
            flat = np.array([starts[s] + i for _, s, i in merged], np.int64)
            vectors = np.concatenate([pg[1] for pg in pages if len(pg[0])] or
                                     [np.empty((0, live.spec.dim), np.float32)])[flat]
        if with_payload:
            payloads = [pages[s][2][i] for _, s, i in merged]
        check_get_payloads(ids, live.spec.dim if with_vectors else 0, payloads or [])
        return ids, vectors, payloads, (ids[-1] if more and ids else "")

    async def count(self, tenant: str, name: str, f: Any = None) -> int:
        """Points that pass filter `f` (every live point when None), summed over the shards."""
        live = self._get(tenant, name)
        self.check_filter(tenant, live.spec.name, f)
        return await self.count_live(live, f)

    @staticmethod
    async def count_live(live: LiveCollection, f: Any = None) -> int:
        return sum(await asyncio.gather(*(h.count(f) for h in live.shards)))

    def _trim_when_idle(self) -> None:
        """After a write: once writes have stopped for IDLE_TRIM_S, hand the heap that request buffers freed
        back to the OS. With shards in Ray hosts nothing else in this process does (a local shard trims
        after its own builds and checkpoints): measured, 300k x 50-d points left the router 36 MiB larger
        (scripts/ray_memory.py)."""
        self._last_write = time.monotonic()
        if self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(IDLE_TRIM_S, self._trim_if_idle)

    def _trim_if_idle(self) -> None:
        idle = time.monotonic() - self._last_write
        if idle < IDLE_TRIM_S:
            self._trim = asyncio.get_running_loop().call_later(IDLE_TRIM_S - idle, self._trim_if_idle)
            return
        self._trim = None
        asyncio.ensure_future(asyncio.to_thread(memory.release_freed)).add_done_callback(_retrieve)

    async def _write(self, live: LiveCollection, calls: dict[int, Any]) -> list:
        try:
            return await self._write_shards(live, calls)
        finally:
            self._trim_when_idle()

    @staticmethod
    async def _write_shards(live: LiveCollection, calls: dict[int, Any]) -> list:
        """Run one write's shard calls (shard number -> its call); the generation moves before and after
        *all* of them settle.

        The bump before makes results computed during the write unreachable; the bump after
        (in a done-callback, so it also happens when the RPC is cancelled and the shards finish
        later) makes anything cached from a half-applied state unreachable too. When some shards
        applied their part and others failed, the error says which did which: never a silent half
        write (sending it again is safe: this platform's writes are idempotent).
        """
        live.generation += 1
        shards = list(calls)
        settled = asyncio.ensure_future(asyncio.gather(*calls.values(), return_exceptions=True))

        def bump(_: asyncio.Future) -> None:
            live.generation += 1

        settled.add_done_callback(bump)
        results = await asyncio.shield(settled)
        await asyncio.sleep(0)  # let the done-callback run before the caller reads the generation
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            first = errors[0]
            applied = [shards[i] for i, r in enumerate(results) if not isinstance(r, BaseException)]
            if applied and isinstance(first, SimsearchError):
                failed = [shards[i] for i, r in enumerate(results) if isinstance(r, BaseException)]
                raise type(first)(f"{first.message}; this write was applied on shard(s) "
                                  f"{', '.join(map(str, applied))} and not on {', '.join(map(str, failed))}: "
                                  f"sending it again is safe", field=first.field,
                                  retry_after_s=first.retry_after_s,
                                  info={"reason": "PARTIAL_WRITE", "applied_shards": ",".join(map(str, applied)),
                                        "failed_shards": ",".join(map(str, failed))}) from first
            raise first
        return results

    async def get(self, tenant: str, name: str, ids: list[str]) -> tuple[list[str], np.ndarray, list[str], list[str]]:
        """(found ids in request order, their vectors, missing ids, the found ids' payloads)."""
        live = self._get(tenant, name)
        check_get_reply(ids, live.spec.dim)
        return await self.get_live(live, ids)

    @staticmethod
    async def get_live(live: LiveCollection, ids: list[str]) -> tuple[list[str], np.ndarray, list[str], list[str]]:
        """`get` on one generation's shards."""
        ids_arr = np.asarray(ids, dtype=object)
        groups = group_by_shard(ids, live.spec.shards)
        replies = await asyncio.gather(*(h.get(ids_arr[pos].tolist()) for h, pos in zip(live.shards, groups)))
        found = np.zeros(len(ids), bool)
        vectors = np.empty((len(ids), live.spec.dim), np.float32)
        payloads = np.full(len(ids), "", dtype=object)
        for pos, (mask, vecs, docs) in zip(groups, replies):
            found[pos[mask]] = True
            vectors[pos[mask]] = vecs
            payloads[pos[mask]] = docs
        check_get_payloads(ids, live.spec.dim, payloads[found].tolist())
        return ids_arr[found].tolist(), vectors[found], ids_arr[~found].tolist(), payloads[found].tolist()

    # ---- search ----

    async def search(self, tenant: str, name: str, queries: np.ndarray, opts: SearchOptions,
                     deadline: Deadline, live: LiveCollection | None = None) -> SearchReply:
        """The merged exact top-k of every shard, or the cached one. Every stage runs under `deadline`.
        live: another generation of the collection to search (a reindex's canary)."""
        t0 = self._clock()
        canary, live = live is not None, live or self._get(tenant, name)
        unindexed = tuple(self.check_filter(tenant, live.spec.name, opts.filter))
        # Shape first, values after the cache: a cached entry's bytes passed check_rows when they
        # were computed (the key holds them and the collection's uid), so a hit skips re-checking.
        check_shape(queries, live.spec, "queries", max_rows=MAX_QUERIES)
        check_reply_size(opts.k, len(queries), await self._id_bytes(live))
        if not canary:  # a canary's queries are another encoder's embeddings
            self.drift.observe((tenant, live.spec.name), "queries", queries)
        opts = self._collection_settings(tenant, live.spec, opts)
        generation = live.generation  # read before fan-out: a write during the search invalidates this key
        timings: dict[str, float] = {}
        key, hot = None, False
        if not opts.no_cache:
            key = await off_loop_if_large(queries.size, HotQueryCache.key, live.cache_scope, generation, opts.k,
                                          opts.cache_tag(), np.ascontiguousarray(queries))
            lookup = self.cache.lookup(key)
            # The backend bounds its own round trip (50 ms for Redis); only a tighter deadline needs a timer.
            value, hot = await (deadline.run("cache lookup", lookup) if deadline.remaining() < CACHE_BOUND_S
                                else lookup)
            timings["cache"] = self._clock() - t0
            if value is not None:
                return self._finish(decode_hits(value), tenant, timings, t0, generation, cached=True,
                                    unindexed=unindexed, collection=live.spec.name)

        await off_loop_if_large(queries.size, check_rows, queries, live.spec.metric, "queries")
        t1 = self._clock()
        missing, results, paths = await self._fan_out(live, queries, opts, deadline)
        t2 = self._clock()
        timings["fanout"] = t2 - t1
        merged = merge(results, opts.k, len(queries))
        payloads = merged.payloads
        if payloads is not None and opts.payload_fields:
            valid = np.isfinite(merged.distances)
            payloads = payloads.copy()
            payloads[valid] = project(payloads[valid].tolist(), opts.payload_fields)
        hits = Hits.from_rows(merged.ids, to_score(merged.distances, live.spec.metric), np.isfinite(merged.distances),
                              payloads)
        if hits.payloads is not None:
            check_search_payloads(len(hits.ids), sum(map(len, hits.payloads)), await self._id_bytes(live))
        timings["merge"] = self._clock() - t2
        if key is not None and hot and not missing:
            await self.cache.admit(key, encode_hits(hits))
        if not canary and not missing and self.recall.take((tenant, live.spec.name)):
            self._sample_recall(tenant, live, queries, opts, hits)
        return self._finish(hits, tenant, timings, t0, generation, missing=missing, paths=paths, unindexed=unindexed,
                            collection=live.spec.name)

    def _collection_settings(self, tenant: str, spec: CollectionSpec, opts: SearchOptions) -> SearchOptions:
        """What a search that names no leaves_to_search, oversample or target_recall uses: the collection's
        settings (changed at run time by UpdateCollection, so the shards' own copy from their start may be
        older), and the recall target the live monitor tuned. One tuple built only when something applies."""
        ix = spec.index
        tuned = self._tuned.get((tenant, spec.name), 0.0)
        if (opts.leaves_to_search or not ix.leaves_to_search) and (opts.oversample or not ix.oversample) and \
                (opts.target_recall or not (tuned or ix.target_recall)):
            return opts
        return opts._replace(leaves_to_search=opts.leaves_to_search or ix.leaves_to_search,
                             oversample=opts.oversample or ix.oversample,
                             target_recall=opts.target_recall or max(tuned, ix.target_recall))

    def _sample_recall(self, tenant: str, live: LiveCollection, queries: np.ndarray, opts: SearchOptions,
                       hits: Hits) -> None:
        """Re-run the first queries of a served search exactly, in the background (router/recall_monitor.py)."""
        m = min(len(queries), self.recall.settings.max_queries)
        ends = np.cumsum(hits.counts[:m])
        served = [hits.ids[e - c:e] for e, c in zip(ends.tolist(), hits.counts[:m].tolist())]
        task = asyncio.ensure_future(self._exact_recall(tenant, live, np.array(queries[:m], np.float32), opts, served))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _exact_recall(self, tenant: str, live: LiveCollection, queries: np.ndarray, opts: SearchOptions,
                            served: list[list[str]]) -> None:
        key = (tenant, live.spec.name)
        t0 = time.perf_counter()
        recalls = None
        try:
            exact_opts = opts._replace(exact=True, with_payload=False, payload_fields=(), allow_partial=False)
            _, results, _ = await self._fan_out(live, queries, exact_opts, Deadline.at_edge(None, 0, 60.0))
            merged = merge(results, opts.k, len(queries))
            valid = np.isfinite(merged.distances)
            recalls = recall_at_k(served, [row[ok].tolist() for row, ok in zip(merged.ids, valid)])
        except SimsearchError as e:  # a shard that did not answer: no sample
            log.debug("live recall re-run of %s/%s failed: %s", *key, e)
        shape = filter_shape(opts.filter)
        self.recall.done(key, recalls, time.perf_counter() - t0, shape)
        view = self.recall.view(key)
        if not view:
            return
        metrics.LIVE_RECALL.labels(*key).set(view["recall"])
        if shape and recalls is not None:
            by = view["by_filter"].get(shape) or view["by_filter"].get("other")
            if by:
                metrics.LIVE_RECALL_BY_FILTER.labels(*key, shape if shape in view["by_filter"] else "other").set(
                    by["recall"])
        metrics.LIVE_RECALL_SLO.labels(*key).set(view["slo"])
        metrics.LIVE_RECALL_BREACHED.labels(*key).set(float(view["breached"]))
        if recalls is not None and not opts.leaves_to_search:  # the shards chose the setting: tune their target
            self._retune(key, live.spec, view)

    def _retune(self, key: tuple[str, str], spec: CollectionSpec, view: dict[str, Any]) -> None:
        """Measured recall below the collection's target: ask the shards for a higher one (each picks the cheapest
        calibrated setting that meets it), by the shortfall; once a window has been measured at the new one."""
        target = spec.index.target_recall or DEFAULT_TARGET_RECALL
        if view["samples"] < self.recall.settings.min_samples or view["recall"] >= target - 0.01:
            return
        since = self._tuned_since.get(key, 0)
        if view["sampled_queries"] - since < self.recall.settings.window:
            return
        current = max(self._tuned.get(key, 0.0), target)
        self._tuned[key] = min(0.999, current + (target - view["recall"]))
        self._tuned_since[key] = view["sampled_queries"]
        log.info("live recall of %s/%s is %.3f, below its target %.3f: searches now ask the shards for %.3f", *key,
                 view["recall"], target, self._tuned[key])

    async def search_ids(self, live: LiveCollection, queries: np.ndarray, k: int) -> list[list[str]]:
        """Each query's top-k ids from one generation, through the serving path (ScaNN as configured, merged),
        without the cache: what the reindex's quality gate compares."""
        opts = SearchOptions(k, 0, 0, False, 0, False, True)
        out: list[list[str]] = []
        for start in range(0, len(queries), MAX_QUERIES):
            part = np.ascontiguousarray(queries[start:start + MAX_QUERIES], np.float32)
            _, results, _ = await self._fan_out(live, part, opts, Deadline.at_edge(None, 0, 600.0))
            merged = merge(results, k, len(part))
            valid = np.isfinite(merged.distances)
            out += [row[ok].tolist() for row, ok in zip(merged.ids, valid)]
        return out

    @staticmethod
    async def build_live(live: LiveCollection) -> None:
        await asyncio.gather(*(h.build_index(True) for h in live.shards))

    @staticmethod
    async def _id_bytes(live: LiveCollection) -> int:
        """The collection's longest stored id (asked of the shards once per process; then kept up to date by
        upserts). A shard that cannot say counts as holding the longest ids allowed."""
        if live.id_bytes is None:
            replies = await asyncio.gather(*(h.max_id_bytes() for h in live.shards), return_exceptions=True)
            longest = max((r if isinstance(r, int) else MAX_ID_BYTES for r in replies), default=0)
            live.id_bytes = max(longest, 1)
        return live.id_bytes

    async def _fan_out(self, live: LiveCollection, queries: np.ndarray, opts: SearchOptions,
                       deadline: Deadline) -> tuple[list[int], list, list[str]]:
        arg = live.shards[0].share(queries)
        extra = {"with_payload": True} if opts.with_payload else {}
        if opts.filter is not None:
            extra["filter"] = opts.filter
        if opts.target_recall:
            extra["target_recall"] = opts.target_recall
        tasks = [asyncio.ensure_future(h.search(arg, opts.k, leaves_to_search=opts.leaves_to_search,
                                                oversample=opts.oversample, exact=opts.exact,
                                                timeout_s=deadline.remaining(), **extra))
                 for h in live.shards]
        try:
            done, _ = await asyncio.wait(tasks, timeout=deadline.remaining())
        finally:  # also when this call itself is cancelled (the client gave up)
            for t in tasks:
                if not t.done():
                    t.cancel()
                    t.add_done_callback(_retrieve)  # a late shard's own DeadlineExceeded is expected
        results, missing, errors = [], [], []
        paths = [""] * len(tasks)
        for i, t in enumerate(tasks):
            if t not in done:
                missing.append(i)
                errors.append(deadline.expired(f"the fan-out (shard {i} had not answered)"))
            elif t.exception() is not None:  # retrieved for every task, so none is logged as forgotten
                missing.append(i)
                errors.append(t.exception())
            else:
                results.append(t.result())
                paths[i] = t.result().path
        fatal = [e for e in errors if not isinstance(e, (Unavailable, DeadlineExceeded))]
        if fatal:  # bad input or a bug: not a reason to answer partially
            raise fatal[0]
        if missing and (not opts.allow_partial or not results):  # no shard answered: nothing to return
            first = errors[0]
            retry = RETRY_UNAVAILABLE_S if isinstance(first, Unavailable) else None  # sent as RetryInfo
            hint = "; set params.allow_partial to accept partial results" if results else ""
            raise type(first)(f"{len(missing)} of {len(tasks)} shards did not answer ({first.message}){hint}",
                              retry_after_s=retry)
        return missing, results, paths

    def _finish(self, hits: Hits, tenant: str, timings: dict[str, float], t0: float, generation: int,
                *, cached: bool = False, missing: list[int] | None = None,
                paths: list[str] | None = None, unindexed: tuple[str, ...] = (), collection: str = "") -> SearchReply:
        """The reply; its metrics are recorded on the next turn of the event loop, once the reply is
        on its way: measured in place, the five Prometheus updates cost a cache hit ~30 µs of
        latency, about as much as the rest of its in-server work (BENCHMARKS.md)."""
        timings["total"] = self._clock() - t0
        asyncio.get_running_loop().call_soon(_record_search, tenant, collection, timings, cached, bool(missing),
                                             len(hits.counts))
        return SearchReply(hits, generation, cached, bool(missing), tuple(missing or ()), timings,
                           tuple(paths or ()), unindexed)

    # ---- reindex (router/reindex.py) ----

    async def start_reindex(self, tenant: str, name: str, encoder: str, options: ReindexOptions) -> ReindexJob:
        """Start re-embedding the collection with `encoder` (name@version) into a new generation. Checked before
        any work: the collection keeps raw inputs (it is bound to an encoder), the target is another version of
        the same kind of input, no reindex is running."""
        name = self.catalog.resolve(tenant, name)
        live = self._get(tenant, name)
        spec = live.spec
        if not spec.encoder:
            raise FailedPrecondition(f"collection {excerpt(name)} is not bound to an encoder, so it keeps no raw inputs "
                                     f"to embed again", field="collection")
        options = options.checked()
        current = self.encoders.manifest(spec.encoder, "encoder")
        target = self.encoders.manifest(encoder, "encoder")
        if target["ref"] == spec.encoder:
            raise FailedPrecondition(f"collection {excerpt(name)} is already embedded by {spec.encoder}", field="encoder")
        if target["kind"] != current["kind"] or list(target["input_shape"]) != list(current["input_shape"]):
            raise FailedPrecondition(f"encoder {target['ref']} takes {target['kind']} {target['input_shape']}, but the "
                                     f"collection's inputs are {current['kind']} {current['input_shape']} "
                                     f"({spec.encoder})", field="encoder")
        if live.migration is not None or self.catalog.active_reindex(tenant, name) is not None:
            running = live.migration.job if live.migration else self.catalog.active_reindex(tenant, name)
            raise FailedPrecondition(f"collection {excerpt(name)} is already being reindexed to {running.encoder} "
                                     f"({running.state}); wait for it or cancel it", field="collection")
        generation = 1 + max([spec.embedding_generation, *(j.generation for j in self.catalog.reindex_jobs(tenant, name))])
        new_spec = replace(spec, encoder=target["ref"], dim=target["embedding_dim"], embedding_generation=generation)
        job = ReindexJob(tenant, name, generation, target["ref"], spec.encoder, asdict(new_spec),
                         options={k: v for k, v in asdict(options).items()})
        await self.encoders.warm(target["ref"])  # seconds (torch in a new actor): before the job exists
        return await _unstoppable(self._start_reindex(live, job))

    async def _start_reindex(self, live: LiveCollection, job: ReindexJob) -> ReindexJob:
        """The new generation's directories and shards, the job's row, then (under the write gate, so every write
        from now on is mirrored) the migration."""
        target_rec = _target_record(live, job)
        await asyncio.to_thread(remove_paths, [self.catalog.generation_dir(target_rec)])  # a crashed attempt's
        await asyncio.to_thread(self._make_dirs, target_rec)
        try:
            target = self._start(target_rec)
            await asyncio.gather(*(h.stats() for h in target.shards))
            await self._declare_indexes(target)
        except BaseException:
            await asyncio.to_thread(remove_paths, [self.catalog.generation_dir(target_rec)])
            raise
        try:
            async with live.writes.exclusive():
                job = await asyncio.to_thread(self.catalog.start_reindex, job)
                live.migration = Migration(self, live, target, job)
        except BaseException:
            _kill(target.shards)
            await asyncio.to_thread(remove_paths, [self.catalog.generation_dir(target_rec)])
            raise
        live.migration.start()
        log.info("reindexing %s/%s from %s to %s (generation %d)", job.tenant, job.collection, job.from_encoder,
                 job.encoder, job.generation)
        return job

    async def _resume(self, live: LiveCollection, job: ReindexJob) -> None:
        """A job that was running when the server stopped: its new generation's shards restart from their own
        files (every mirrored write is in their logs) and it goes on from its cursor."""
        target_rec = _target_record(live, job)
        try:
            target = await self._start_checked(target_rec)
            await self._declare_indexes(target)
        except CollectionDamaged as e:
            await asyncio.to_thread(self.catalog.update_reindex, replace(job, state="failed",
                                                                         error=f"could not restart: {e.reason}"))
            return
        live.migration = Migration(self, live, target, job)
        live.migration.start()
        log.info("resuming the reindex of %s/%s to %s (%s, %d points copied)", job.tenant, job.collection,
                 job.encoder, job.state, job.copied)

    async def promote(self, mig: Migration) -> None:
        """The new generation serves from the next request on (one catalog commit under the write gate); the old
        generation's shards stop once the searches already on them are past their deadline."""
        live, target = mig.live, mig.target
        async with live.writes.exclusive():
            mig.job = await asyncio.to_thread(self.catalog.promote, mig.job, target.spec)
            target.record = self.catalog.get(live.record.tenant, live.record.spec.name)
            live.migration = None
            self._live[(live.record.tenant, live.record.spec.name)] = target
        key = (live.record.tenant, live.record.spec.name)
        self.drift.reset(key)  # another embedding space: a new reference, and recall measured afresh
        self._watch(target)
        self._measure_recall_afresh(key, target.spec)
        log.info("promoted %s/%s to %s (generation %d)", mig.job.tenant, mig.job.collection, mig.encoder,
                 mig.job.generation)
        self._retire_later(live.shards, [self.catalog.generation_dir(live.record)] if live.spec.embedding_generation
                           else self.catalog.stale_generations(target.record, {target.spec.embedding_generation}))

    def _retire_later(self, shards: list[ShardHandle], paths: list[Path]) -> None:
        """Stop a retired generation's shards after the longest a search may still run on them, then remove its
        files (a crash before that leaves them for the next start's clean-up)."""

        async def retire() -> None:
            await asyncio.sleep(self.default_timeout_s + 1.0)
            _kill(shards)
            await asyncio.to_thread(remove_paths, paths)

        task = asyncio.ensure_future(retire())
        self._retiring[task] = shards
        task.add_done_callback(lambda t: self._retiring.pop(t, None))

    async def end_migration(self, mig: Migration) -> None:
        """A job that ended without promotion: the collection goes on as it was; the new generation goes."""
        live = mig.live
        if live.migration is mig:
            async with live.writes.exclusive():
                live.migration = None
        _kill(mig.target.shards)
        await asyncio.to_thread(remove_paths, [self.catalog.generation_dir(mig.target.record)])

    async def cancel_reindex(self, tenant: str, name: str) -> ReindexJob:
        name = self.catalog.resolve(tenant, name)
        live = self._get(tenant, name)
        mig = live.migration
        if mig is None:
            raise FailedPrecondition(f"collection {excerpt(name)} has no reindex running", field="collection")
        if mig.task is not None:
            mig.task.cancel()
        await _unstoppable(mig.end("cancelled"))
        return mig.job

    def reindex_jobs(self, tenant: str, name: str) -> list[dict[str, Any]]:
        """The collection's reindex jobs, newest first, as describe shows them."""
        name = self.catalog.resolve(tenant, name)
        live = self._live.get((tenant, name))
        mig = live.migration if live is not None else None
        return [job_view(mig.job if mig is not None and mig.job.generation == j.generation else j, mig)
                for j in self.catalog.reindex_jobs(tenant, name)]

    async def reset_drift_reference(self, tenant: str, name: str, kind: str = "") -> CollectionStatus:
        """Forget a collection's drift reference (queries, writes, or both for ""): the next vectors seen form it."""
        name = self.catalog.resolve(tenant, name)
        self._get(tenant, name)
        if kind not in ("", *DRIFT_KINDS):
            from simsearch.contract.errors import invalid
            raise invalid("kind", f"must be \"\", \"queries\" or \"writes\", got {excerpt(kind)}")
        await asyncio.to_thread(self.drift.reset, (tenant, name), (kind,) if kind else DRIFT_KINDS)
        return await self.describe(tenant, name)

    def _forget_monitors(self, key: tuple[str, str]) -> None:
        self.drift.forget(key)
        self.recall.forget(key)
        self._tuned.pop(key, None)
        self._tuned_since.pop(key, None)

    async def update_collection(self, tenant: str, name: str, changes: dict[str, float]) -> CollectionStatus:
        """Change search-time settings (leaves_to_search, oversample, target_recall, recall_slo; 0 = automatic),
        validated as at creation, committed in the catalog; searches admitted afterwards use them, and the live
        recall is measured afresh."""
        name = self.catalog.resolve(tenant, name)
        live = self._get(tenant, name, "name")
        index = {k: v for k, v in changes.items() if k in ("leaves_to_search", "oversample", "target_recall")}
        spec = replace(live.spec, index=replace(live.spec.index, **index),
                       recall_slo=changes.get("recall_slo", live.spec.recall_slo))
        live.record = await self.run_catalog(self.catalog.update_spec, tenant, name, spec)
        self._measure_recall_afresh((tenant, name), spec)
        return await self.describe(tenant, name)

    def _measure_recall_afresh(self, key: tuple[str, str], spec: CollectionSpec) -> None:
        """Settings or the embedding space changed: what the live-recall window held and the target it tuned say
        nothing about them."""
        self.recall.watch(key, spec.recall_slo or DEFAULT_RECALL_SLO)
        self.recall.reset(key)
        self._tuned.pop(key, None)
        self._tuned_since.pop(key, None)

    def migration_of(self, tenant: str, name: str) -> Migration | None:
        live = self._live.get((tenant, name))
        return live.migration if live is not None else None

    async def input_store(self, live: LiveCollection) -> InputStore:
        return await self._input_store(live)

    # ---- lifecycle ----

    async def close(self, save: bool = True) -> None:
        """Snapshot every shard (clean shutdown keeps every point), then release the cache."""
        if self._trim is not None:
            self._trim.cancel()
        if self._drift_task is not None:
            self._drift_task.cancel()
        for task in list(self._background):  # live-recall re-runs
            task.cancel()
        await self.shard_monitor.stop()
        await asyncio.to_thread(self.drift.save_all)
        migrations = [live.migration for live in self._live.values() if live.migration is not None]
        for mig in migrations:  # stopped, not ended: the job resumes at the next start
            if mig.task is not None:
                mig.task.cancel()
        for task, shards in list(self._retiring.items()):  # their files go at the next start
            task.cancel()
            _kill(shards)
        calls = [h.close(save) for live in self._live.values() for h in live.shards]
        calls += [h.close(save) for mig in migrations for h in mig.target.shards]
        results = await asyncio.gather(*calls, return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                log.error("shard close failed: %s", r)
        for live in self._live.values():
            _kill(live.shards)
        for mig in migrations:
            _kill(mig.target.shards)
        for store in self._side_stores.values():
            store.close()
        self._side_stores.clear()
        self._live.clear()
        self._damaged.clear()
        self.encoders.close()
        await self.cache.close()
        if self.audit is not None:
            self.audit.close()
        self.catalog.close()
