"""The Ray facade for one shard: a shard held by a shard host actor (cluster/shard_host.py), failures
mapped to platform errors. This module and shard_host.py are the only places that know shards run
remotely.

A shard whose host dies is opened again on the restarted host, which restores it from its
checkpoint and log (shard/wal.py), so what was acknowledged is there again. A call that meets a
dead or restarting host, or a host that no longer holds the shard, is sent again with backoff
until it succeeds or its time is up (a search's own timeout, else RESTART_WAIT_S): reads are safe
to resend, and so are this platform's writes (an upsert, a delete, a payload change or a build
applied twice leaves what applying it once does). Not resent: a shard whose files cannot be loaded
and a shard this router stopped (`kill`). A host that is gone for good (its node died) is replaced by
one on a surviving node, where the shard opens from the shared data path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import ray

from simsearch.cluster._calls import ActorInitFailed, call_actor
from simsearch.cluster.handle import ForwardingShardHandle
from simsearch.cluster.runtime import NAMESPACE, direct_host
from simsearch.cluster.shard_host import HostClient, HostPool, ShardNotOpen
from simsearch.contract.errors import Unavailable
from simsearch.shard import IndexParams, SearchResult

log = logging.getLogger(__name__)
RESTART_WAIT_S = 60.0  # how long a call waits for a restarting host when it has no timeout of its own
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 1.0  # the backoff between tries
_POOL: tuple[Any, HostPool] | None = None  # (the Ray job it belongs to, the pool)


def _hosts() -> HostPool:
    """This process's host pool, made afresh when Ray was restarted in it (the old hosts died with it)."""
    global _POOL
    job = ray.get_runtime_context().get_job_id()
    if _POOL is None or _POOL[0] != job:
        _POOL = (job, HostPool(direct_host()))
    return _POOL[1]


class RayShardHandle(ForwardingShardHandle):
    """Async calls to one shard on its host; raises SimsearchError subclasses only."""


    def __init__(self, host: HostClient, label: str, open_args: tuple, retry_s: float = RESTART_WAIT_S):
        self._host = host
        self.label = label
        self.node = host.node
        self.host_name = host.name
        self.retry_s = retry_s  # how long a call is resent while the host restarts (0: once; a replica fails over)
        self._open_args = open_args
        self._opened = False
        self._opening: asyncio.Lock | None = None
        self._killed = False

    @classmethod
    def create(cls, label: str, dim: int, metric: str, params: IndexParams, data_dir: Path | None, *,
               avoid_hosts: frozenset[str] = frozenset(), retry_s: float = RESTART_WAIT_S,
               **shard_options: Any) -> "RayShardHandle":
        """shard_options: Shard's keyword options (durability, durability_interval_ms). avoid_hosts: the hosts
        holding this shard's other replicas (HostPool.place)."""
        return cls(_hosts().place(avoid_hosts), label, (dim, metric, params, data_dir, shard_options), retry_s)

    async def _open(self) -> None:
        """Open the shard on its host once (again after the host restarted)."""
        if self._opened:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not self._opened:
                await call_actor(self._host.actor, self.label, "open_shard", self.label, *self._open_args)
                self._opened = True

    async def _on_host(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        await self._open()
        try:
            return await attempt()
        except ShardNotOpen:
            self._opened = False  # the host restarted: open it there again, then resend
            raise

    async def _retrying(self, attempt: Callable[[], Awaitable[Any]], timeout_s: float | None) -> Any:
        """attempt() on the open shard, again with backoff while the host is unavailable (dead and
        restarting) or has lost the shard, until timeout_s (else RESTART_WAIT_S) has passed."""
        give_up = time.monotonic() + min(timeout_s or self.retry_s, self.retry_s)
        delay = RETRY_FIRST_S
        while True:
            if self._killed:
                raise Unavailable(f"{self.label} is unavailable: it was stopped")
            try:
                return await self._on_host(attempt)
            except ActorInitFailed:
                raise  # its files cannot be loaded: opening it again will not help
            except Unavailable:
                if time.monotonic() + delay >= give_up:
                    raise
                if await self.host_gone():  # its node died: a host on a surviving node opens it
                    await self.rehome(frozenset())
            await asyncio.sleep(delay)  # the host is restarting (Ray queues the next call until it is up)
            delay = min(2 * delay, RETRY_MAX_S)

    async def host_gone(self) -> bool:
        """Whether the host is dead for good (its node died, or it was killed): its name is released then,
        while a restarting actor keeps it (a GCS lookup, off the loop)."""
        try:
            await asyncio.to_thread(ray.get_actor, self._host.name, namespace=NAMESPACE)
            return False
        except ValueError:
            return True

    async def rehome(self, avoid: frozenset[str]) -> None:
        """Move this shard to a host on a surviving node (avoid: the hosts of its other replicas); it opens
        there from its directory on the shared data path."""
        old = self._host.name
        self._host = await asyncio.to_thread(_hosts().replace, self._host, avoid)
        self.node, self.host_name, self._opened = self._host.node, self._host.name, False
        log.warning("%s: its host %s is gone; placed on %s (node %s)", self.label, old, self._host.name,
                    self.node[:12])

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Over the host's direct connection (cluster/direct.py): Ray only places and restarts the host."""
        return await self._retrying(lambda: self._host.call(self.label, method, args, kwargs), kwargs.get("timeout_s"))

    async def search(self, queries: Any, k: int, **params: Any) -> SearchResult:
        """Over the host's direct connection, with the other searches for that host this turn (merged into
        batches where they can be). The fan-out's query array goes as is (`share` is the identity: measured,
        a 1,000-query batch through Ray's object store searched at 0.67x the direct connection's rate)."""
        return await self._retrying(lambda: self._host.search(self.label, queries, k, params), params.get("timeout_s"))

    async def close(self, save: bool = True) -> None:
        if self._opened:
            await call_actor(self._host.actor, self.label, "close_shard", self.label, save)
            self._opened = False

    async def reopen(self) -> None:
        """Close the shard on its host (if it is open there); the next call opens it from its directory."""
        await call_actor(self._host.actor, self.label, "close_shard", self.label, False)
        self._opened = False

    def kill(self) -> None:
        """Stop serving this shard at once (drop_collection); nothing is saved."""
        self._killed = True
        self._host.actor.close_shard.remote(self.label, False)
