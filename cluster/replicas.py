"""Replicated shards: R copies of one shard behind one `ShardHandle`, so losing a node loses no request.

What a serious database does here, and what this does:

- **Writes in one order, acknowledged at a quorum.** A shard's writes go out from one writer, so every
  replica applies them in the same order (two concurrent upserts of one id must not land in different
  orders on different copies); the writes queued while a batch is out go together in the next one
  (`Shard.apply_ops`: one call and one log sync per replica and batch). Each write goes to every
  *in-sync* replica that is up and is acknowledged once `quorum` of them applied it durably (each
  under the server's `--durability`); a replica that failed it is marked down.
- **The in-sync set is durable** (Kafka's ISR, in spirit): `state_path` names the replicas that hold
  every acknowledged write. A replica leaves the set, on disk, *before* a write is acknowledged
  without it, so after any crash of the router, a node or a replica, every replica in the set holds
  every acknowledged write; one outside the set is never read until it has caught up. When every
  in-sync replica is down, the shard is unavailable until one returns (never served from a stale copy).
- **Reads** go to one serving replica, the one with the fewest calls in flight (ties in turn); a
  replica that answers UNAVAILABLE is marked down and the read goes to the next, within its deadline.
- **Catching up.** A background task probes each down replica until it answers (Ray restarts its host,
  on another node when its node is gone, and the host reopens it from the shared data path). An
  in-sync replica at the same position as the serving ones serves again at once; any other is closed,
  gets a copy of a serving replica's checkpoint (`Shard.copy_to`: hard links on the shared path), is
  reopened, rejoins the in-sync set and serves. Writes to the shard wait during the copy; reads go on.

Positions (`Shard.position`, the log's last record number) compare replicas: they apply the same writes
in the same order and log each the same way. Placement spreads a shard's replicas over nodes (`avoid`
nodes already holding one); see docs/architecture.md for why this is not a STRICT_SPREAD placement group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simsearch.cluster.handle import ForwardingShardHandle, ShardHandle
from simsearch.contract.errors import DeadlineExceeded, Internal, SimsearchError, Unavailable
from simsearch.shard import Shard
from simsearch.shard.snapshot import write_json_atomic

log = logging.getLogger(__name__)

SERVING, DOWN, CATCHING_UP = "serving", "down", "catching-up"
PROBE_TIMEOUT_S = 10.0  # one probe of a down replica (its host may be restarting meanwhile)
START_WAIT_S = 600.0  # at start-up, how long the first in-sync replica may take to restore itself
REPAIR_TICK_S = 0.5  # between probes of replicas still down
WRITE_TIMEOUT_S = 30.0  # a replica that has not applied a batch of writes by then is taken for down
WRITE_BATCH = 64  # writes sent to the replicas in one call, at most
WRITES = Shard.WRITES  # the calls that change a shard: in one order, to every replica
STATS_TIMEOUT_S = 5.0
RETRY_AFTER_S = 1.0


@dataclass(eq=False)
class Replica:
    index: int
    handle: ShardHandle
    path: Path  # its own directory on the shared data path
    state: str = DOWN
    in_flight: int = 0
    error: str = ""
    down_since: float = 0.0


def _why(e: BaseException) -> str:
    text = e.message if isinstance(e, SimsearchError) else f"{type(e).__name__}: {e}"
    return text.splitlines()[0][:300] if text else type(e).__name__


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class ReplicatedShardHandle(ForwardingShardHandle):
    """A ShardHandle over R replica handles (each a RayShardHandle or LocalShardHandle of its own directory)."""

    def __init__(self, label: str, replicas: list[Replica], quorum: int, state_path: Path):
        self.label = label
        self._replicas = replicas
        self.node = replicas[0].handle.node
        self._quorum = quorum
        self._state_path = state_path
        self._in_sync = self._load_in_sync()
        self._order: asyncio.Lock | None = None
        self._started = False
        self._repairing: asyncio.Future | None = None
        self._indexes: dict[str, str] | None = None
        self._queued: list[tuple[str, tuple, asyncio.Future]] = []  # writes waiting for the writer
        self._writer: asyncio.Future | None = None
        self._killed = False
        self._turn = 0
        self.restored: list[tuple[int, float, bool]] = []  # (replica, seconds down, copied): for operators and tests

    @classmethod
    def create(cls, label: str, paths: list[Path], quorum: int, state_path: Path,
               make: Callable[[int, Path, frozenset[str]], ShardHandle]) -> "ReplicatedShardHandle":
        """make(replica, its directory, the hosts holding the other replicas) -> its handle."""
        replicas: list[Replica] = []
        try:
            for j, path in enumerate(paths):
                handle = make(j, path, frozenset(r.handle.host_name for r in replicas))
                replicas.append(Replica(j, handle, path))
        except BaseException:
            for r in replicas:
                r.handle.kill()
            raise
        nodes = {r.handle.node for r in replicas}
        if len(nodes) < len(replicas) and "local" not in nodes:
            log.warning("%s: %d replicas on %d node(s): the cluster has fewer nodes than replicas, so some share a "
                        "node (each in a host process of its own; losing the node loses them together)",
                        label, len(replicas), len(nodes))
        return cls(label, replicas, quorum, state_path)

    # ---- the in-sync set ---------------------------------------------------------------------

    def _load_in_sync(self) -> set[int]:
        try:
            return set(json.loads(self._state_path.read_text())["in_sync"])
        except FileNotFoundError:
            return {r.index for r in self._replicas}  # a new shard: every replica is empty, so all agree

    async def _set_in_sync(self, members: set[int]) -> None:
        """Durable before it matters: before a write is acknowledged without a replica, and before a copied
        replica serves."""
        if members != self._in_sync:
            await asyncio.to_thread(write_json_atomic, self._state_path, {"in_sync": sorted(members)})
            self._in_sync = set(members)

    def _lock(self) -> asyncio.Lock:
        if self._order is None:
            self._order = asyncio.Lock()
        return self._order

    # ---- start-up and repair -----------------------------------------------------------------

    async def _ensure_started(self) -> None:
        """On first use (the engine's start-up check): ask every replica its position, waiting as long as a
        restore from its checkpoint and log takes (up to START_WAIT_S) for an in-sync one, then PROBE_TIMEOUT_S
        for the rest; the in-sync replicas at the highest position serve, the others catch up in the
        background. When no in-sync replica answered, none serves (calls answer UNAVAILABLE) until the
        repair brings one back."""
        if self._started:
            return
        async with self._lock():
            if self._started:
                return
            answers = await self._positions()
            ready = {i: p for i, p in answers.items() if i in self._in_sync and not isinstance(p, BaseException)}
            top = max(ready.values(), default=None)
            for r in self._replicas:
                if top is not None and ready.get(r.index) == top:
                    r.state = SERVING
                else:
                    a = answers.get(r.index)
                    r.state, r.down_since = DOWN, time.monotonic()
                    r.error = _why(a) if isinstance(a, BaseException) else ("no answer yet" if a is None else "catching up")
            self._started = True
        if any(r.state != SERVING for r in self._replicas):
            self._start_repair()  # when every in-sync replica is down, it serves the first one back

    async def _positions(self) -> dict[int, Any]:
        """replica index -> its position, or the error it answered; replicas still silent are left out."""
        tasks = {asyncio.ensure_future(r.handle.position()): r.index for r in self._replicas}
        answers: dict[int, Any] = {}
        give_up = time.monotonic() + START_WAIT_S
        pending = set(tasks)
        while pending and not any(i in self._in_sync and not isinstance(a, BaseException) for i, a in answers.items()):
            done, pending = await asyncio.wait(pending, timeout=max(0.0, give_up - time.monotonic()),
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
            for t in done:
                answers[tasks[t]] = t.exception() or t.result()
        if pending:
            done, pending = await asyncio.wait(pending, timeout=PROBE_TIMEOUT_S)
            for t in done:
                answers[tasks[t]] = t.exception() or t.result()
        for t in pending:
            t.cancel()  # the repair asks again
        return answers

    def _down(self, r: Replica, e: BaseException) -> None:
        if r.state == SERVING:
            r.state, r.down_since = DOWN, time.monotonic()
            log.warning("%s: replica %d is down (%s); %s", self.label, r.index, _why(e),
                        "reads go to the others" if self._serving() else "no replica is serving")
        r.error = _why(e)
        self._start_repair()

    def _start_repair(self) -> None:
        if not self._killed and (self._repairing is None or self._repairing.done()):
            self._repairing = asyncio.ensure_future(self._repair_loop())

    async def _repair_loop(self) -> None:
        while not self._killed:
            waiting = [r for r in self._replicas if r.state != SERVING]
            if not waiting:
                return
            await asyncio.gather(*(self._restore(r) for r in waiting))
            if any(r.state != SERVING for r in self._replicas):
                await asyncio.sleep(REPAIR_TICK_S)

    async def _restore(self, r: Replica) -> None:
        """One try to bring replica r back: it must answer, then serve as it is or after a copy."""
        try:
            position: int | None = await asyncio.wait_for(r.handle.position(), PROBE_TIMEOUT_S)
        except (Unavailable, asyncio.TimeoutError, DeadlineExceeded) as e:
            r.error = _why(e)
            if await r.handle.host_gone():  # its node died: a host on another node opens its directory
                await r.handle.rehome(frozenset(x.handle.host_name for x in self._replicas if x is not r))
            return
        except Exception as e:  # noqa: BLE001 (files it cannot load: a copy replaces them)
            r.error, position = _why(e), None
        try:
            async with self._lock():
                if r.state == SERVING or self._killed:
                    return
                source = self._source()
                if source is None:  # no replica serves: only one holding every acknowledged write may
                    if r.index in self._in_sync and position is not None:
                        self._serve(r, copied=False)
                    else:
                        r.error = "waiting for an in-sync replica to copy from"
                    return
                if r.index in self._in_sync and position == await source.handle.position():
                    self._serve(r, copied=False)
                    return
                await self._copy(source, r)
        except Exception as e:  # noqa: BLE001 (tried again next tick; the reason shows in describe)
            r.state, r.error = DOWN, _why(e)
            log.warning("%s: replica %d could not catch up yet: %s", self.label, r.index, r.error)

    async def _copy(self, source: Replica, r: Replica) -> None:
        """Under the write order: r leaves the in-sync set (on disk), closes, gets a copy of source's
        checkpoint in its directory, reopens, and rejoins the set at source's position."""
        r.state = CATCHING_UP
        await self._set_in_sync(self._in_sync - {r.index})
        try:
            await r.handle.close(save=False)
        except SimsearchError:
            pass  # not open there (its host restarted), or its files could not be loaded
        copied = await source.handle.copy_to(r.path)
        await r.handle.reopen()
        position = await r.handle.position()
        if position != copied:
            raise Internal(f"{self.label}: replica {r.index} reopened at position {position}, not the {copied} copied")
        if self._indexes is not None:
            await r.handle.set_payload_indexes(dict(self._indexes))
        await self._set_in_sync(self._in_sync | {r.index})
        self._serve(r, copied=True)

    def _serve(self, r: Replica, copied: bool) -> None:
        down_s = time.monotonic() - r.down_since if r.down_since else 0.0
        r.state, r.error = SERVING, ""
        self.restored.append((r.index, down_s, copied))
        log.info("%s: replica %d serves again after %.1fs%s", self.label, r.index, down_s,
                 " (caught up from a copy)" if copied else "")

    def _serving(self) -> list[Replica]:
        return [r for r in self._replicas if r.state == SERVING and r.index in self._in_sync]

    def _source(self) -> Replica | None:
        serving = self._serving()
        return min(serving, key=lambda r: r.in_flight) if serving else None

    # ---- reads ---------------------------------------------------------------------------------

    def _pick(self, tried: set[int]) -> Replica | None:
        candidates = [r for r in self._serving() if r.index not in tried]
        if not candidates:
            return None
        self._turn += 1
        n = len(self._replicas)
        return min(candidates, key=lambda r: (r.in_flight, (r.index - self._turn) % n))

    async def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        await self._ensure_started()
        tried: set[int] = set()
        while True:
            r = self._pick(tried)
            if r is None:
                states = ", ".join(f"replica {x.index} {x.state}" + (f" ({x.error})" if x.error else "")
                                   for x in self._replicas)
                raise Unavailable(f"{self.label} is unavailable: no replica is serving ({states})",
                                  retry_after_s=RETRY_AFTER_S)
            r.in_flight += 1
            try:
                return await getattr(r.handle, method)(*args, **kwargs)
            except Unavailable as e:
                self._down(r, e)
                tried.add(r.index)
            finally:
                r.in_flight -= 1

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """ForwardingShardHandle's one door: writes go through the shard's writer, builds to every serving
        replica, everything else is a read of one replica."""
        if method in WRITES:
            return await self._write(method, *args)
        if method == "build_index":
            await self._each(method, *args)
            return None
        return await self._read(method, *args, **kwargs)

    # ---- writes --------------------------------------------------------------------------------

    async def _write(self, method: str, *args: Any) -> Any:
        """Queue the write; the shard's writer sends it with the others queued meanwhile, in order."""
        await self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # read even when its caller went away
        self._queued.append((method, args, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_queued())
        return await asyncio.shield(future)  # a caller that goes away does not take the write out of order

    async def _write_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[:WRITE_BATCH], self._queued[WRITE_BATCH:]
            try:
                async with self._lock():
                    await self._send(batch)
            except BaseException as e:  # noqa: BLE001 (every caller hears of it; the writer goes on)
                error = e if isinstance(e, SimsearchError) else Unavailable(
                    f"{self.label}: the writes were not applied: {_why(e)}", retry_after_s=RETRY_AFTER_S)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(e, Exception):
                    raise

    async def _send(self, batch: list[tuple[str, tuple, asyncio.Future]]) -> None:
        """One batch, under the write order: to every serving in-sync replica as one call (Shard.apply_ops:
        applied in order, durable together); each write is acknowledged when `quorum` replicas applied it.
        A replica whose call failed, or that refused a write another replica applied, leaves the in-sync
        set (on disk) before any write of the batch is acknowledged without it."""
        up = self._serving()
        total, q = len(self._replicas), self._quorum
        if len(up) < q:
            refusal = Unavailable(f"{self.label} cannot take writes: {len(up)} of its {total} replicas can, and the "
                                  f"write quorum is {q} (nothing was written)", retry_after_s=RETRY_AFTER_S)
            for _, _, future in batch:
                future.set_exception(refusal)
            return
        await self._set_in_sync({r.index for r in up})  # the down ones will miss these writes
        ops = [(method, args) for method, args, _ in batch]
        replies = await asyncio.gather(*(asyncio.wait_for(r.handle.apply_ops(ops), WRITE_TIMEOUT_S) for r in up),
                                       return_exceptions=True)
        answered = {r.index: reply for r, reply in zip(up, replies) if not isinstance(reply, BaseException)}
        for r, reply in zip(up, replies):
            if isinstance(reply, BaseException):
                self._down(r, reply if isinstance(reply, SimsearchError)
                           else Unavailable(f"no answer in {WRITE_TIMEOUT_S:.0f}s"))
        diverged = {i for i, results in answered.items() for n, res in enumerate(results)
                    if isinstance(res, BaseException)
                    and any(not isinstance(other[n], BaseException) for other in answered.values())}
        for r in up:
            if r.index in diverged:  # it refused a write another replica applied (its own disk, say)
                self._down(r, next(res for res in answered[r.index] if isinstance(res, BaseException)))
        good = {i: results for i, results in answered.items() if i not in diverged}
        if len(good) >= q:
            await self._set_in_sync(set(good))  # durable before a write is acknowledged without the others
        for n, (_, _, future) in enumerate(batch):
            outcomes = [results[n] for results in good.values()]
            applied = [o for o in outcomes if not isinstance(o, BaseException)]
            if len(applied) >= q:
                future.set_result(applied[0])
            elif outcomes and not applied:
                future.set_exception(outcomes[0])  # the request's own fault, the same on every replica
            elif not answered:
                first = replies[0]
                future.set_exception(first if isinstance(first, SimsearchError) else
                                     Unavailable(f"{self.label}: no replica applied the write within "
                                                 f"{WRITE_TIMEOUT_S:.0f}s", retry_after_s=RETRY_AFTER_S))
            else:
                future.set_exception(Unavailable(
                    f"{self.label}: the write was applied on {len(applied)} of {total} replicas, fewer than the "
                    f"write quorum {q}, so it is not acknowledged; sending it again is safe",
                    retry_after_s=RETRY_AFTER_S))

    # ---- every serving replica -----------------------------------------------------------------

    async def _each(self, method: str, *args: Any) -> list:
        """method on every serving replica (builds and index declarations are each replica's own work);
        a replica that fails is marked down, and the call fails only when none succeeded."""
        await self._ensure_started()
        up = self._serving()
        if not up:
            raise Unavailable(f"{self.label} is unavailable: no replica is serving", retry_after_s=RETRY_AFTER_S)
        results = await asyncio.gather(*(getattr(r.handle, method)(*args) for r in up), return_exceptions=True)
        ok = [res for res in results if not isinstance(res, BaseException)]
        for r, res in zip(up, results):
            if isinstance(res, Unavailable):
                self._down(r, res)
        if not ok:
            raise results[0]
        return ok

    async def set_payload_indexes(self, indexes: dict[str, str]) -> None:
        self._indexes = dict(indexes)  # a replica that catches up later is told them too
        await self._each("set_payload_indexes", indexes)

    async def wait_payload_indexes(self, timeout_s: float | None) -> bool:
        return all(await self._each("wait_payload_indexes", timeout_s))

    async def stats(self) -> dict:
        """A serving replica's stats, plus every replica's node, state, position and lag (the highest
        position minus its own)."""
        await self._ensure_started()
        answers = await asyncio.gather(*(asyncio.wait_for(r.handle.stats(), STATS_TIMEOUT_S)
                                         for r in self._replicas), return_exceptions=True)
        base = next((a for r, a in zip(self._replicas, answers)
                     if r.state == SERVING and r.index in self._in_sync and isinstance(a, dict)), None)
        if base is None:
            raise Unavailable(f"{self.label} is unavailable: no replica is serving", retry_after_s=RETRY_AFTER_S)
        top = max(a.get("position", 0) for a in answers if isinstance(a, dict))
        out = dict(base)
        out["replicas"] = [{
            "replica": r.index, "state": r.state, "in_sync": r.index in self._in_sync,
            "node": a.get("node", r.handle.node) if isinstance(a, dict) else r.handle.node,
            "position": a.get("position", 0) if isinstance(a, dict) else -1,
            "lag": top - a.get("position", 0) if isinstance(a, dict) else -1,
            "error": r.error if r.state != SERVING else "",
        } for r, a in zip(self._replicas, answers)]
        return out

    async def copy_to(self, dest: Path) -> int:
        raise Internal(f"{self.label}: a replicated shard is copied replica by replica")

    async def reopen(self) -> None:
        raise Internal(f"{self.label}: a replicated shard reopens replica by replica")

    # ---- lifecycle -----------------------------------------------------------------------------

    async def close(self, save: bool = True) -> None:
        self._killed = True
        if self._repairing is not None:
            self._repairing.cancel()
        await asyncio.gather(*(r.handle.close(save) for r in self._replicas if r.state == SERVING),
                             return_exceptions=True)

    def kill(self) -> None:
        self._killed = True
        if self._repairing is not None:
            self._repairing.cancel()
        for r in self._replicas:
            r.handle.kill()
