"""Shard health as Prometheus series: a periodic router task asks every serving shard for its stats.

Shards may run in Ray actor processes, whose own metrics this process never sees, so the router
records what they report: whether each answered (`simsearch_shard_available`), the points its index
does not cover yet, a failed build or checkpoint, and its index builds (count and duration).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from simsearch.router import metrics

log = logging.getLogger(__name__)
POLL_S = 5.0  # how often every shard is asked; a scrape every 15 s sees at most one poll old
STATS_TIMEOUT_S = 2.0  # a shard that has not answered by then counts as unavailable for this poll

Shards = Callable[[], Iterable[tuple[str, str, int, Any]]]  # () -> (tenant, collection, shard number, ShardHandle)
_PER_SHARD = (metrics.SHARD_AVAILABLE, metrics.SHARD_FRESH_POINTS, metrics.SHARD_ERROR)


class ShardMonitor:
    def __init__(self, shards: Shards, *, interval_s: float = POLL_S, timeout_s: float = STATS_TIMEOUT_S):
        self._shards = shards
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._builds: dict[tuple[str, str, str], tuple[Any, int]] = {}  # labels -> (handle, builds it reported)
        self._known: set[tuple[str, str, str]] = set()  # the label sets with series
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="shard-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:  # the monitor must outlive a bug in one poll
                log.exception("shard stats poll failed")
            await asyncio.sleep(self.interval_s)

    async def poll(self) -> None:
        shards = list(self._shards())
        answers = await asyncio.gather(*(asyncio.wait_for(h.stats(), self.timeout_s) for *_, h in shards),
                                       return_exceptions=True)
        seen = set()
        for (tenant, collection, i, handle), stats in zip(shards, answers):
            key = (tenant, collection, str(i))
            seen.add(key)
            ok = isinstance(stats, dict)
            metrics.SHARD_AVAILABLE.labels(*key).set(1 if ok else 0)
            if not ok:
                continue
            metrics.SHARD_FRESH_POINTS.labels(*key).set(stats.get("fresh", 0))
            metrics.SHARD_ERROR.labels(*key).set(1 if stats.get("error") else 0)
            self._count_builds(key, handle, stats)
        for key in self._known - seen:  # dropped collections, retired generations: their series go
            self._builds.pop(key, None)
            for gauge in _PER_SHARD:
                try:
                    gauge.remove(*key)
                except KeyError:
                    pass
        self._known = seen

    def _count_builds(self, key: tuple[str, str, str], handle: Any, stats: dict) -> None:
        builds = int(stats.get("builds", 0))
        was_handle, before = self._builds.get(key, (None, 0))
        # A handle not seen before (a new collection, one created again) or a count that went back (a restarted
        # actor) starts from zero.
        new = builds - before if was_handle is handle and builds >= before else builds
        self._builds[key] = (handle, builds)
        if new > 0:
            metrics.INDEX_BUILDS.labels(*key[:2]).inc(new)
            if stats.get("last_build_s") is not None:
                metrics.INDEX_BUILD_SECONDS.labels(*key[:2]).observe(float(stats["last_build_s"]))
