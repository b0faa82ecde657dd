"""The in-process placement: a shard hosted inside the router's own process.

Why it exists: on this 2-core machine one Ray actor call from the router costs ~1.5 ms and
a 4-way fan-out ~3.7 ms, while one shard's search work for one query is ~0.1 ms
(BENCHMARKS.md, "Where the time goes"). On a single machine the actor hop buys nothing but
that cost, so the embedded default hosts shards here; `placement="ray"` (and any
`--ray-address`) keeps them in Ray actors, which is what a cluster needs.

Implements `ShardHandle` (cluster.handle), like `RayShardHandle`, so the engine does not know which placement it has.
Small searches over an index run inline on the event loop (a thread hand-off costs more than
the work); anything whose work is not small and bounded (an exact or unindexed scan, a large
batch) and every write, build and snapshot run on a small thread pool, so the loop never stalls
and a deadline can fire while the work goes on. ScaNN, numpy's
BLAS and the gather/score kernels release the GIL, so shards of one fan-out overlap.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.cluster.handle import ForwardingShardHandle
from simsearch.contract.errors import FailedPrecondition, Internal, SimsearchError, Unavailable
from simsearch.shard import IndexParams, SearchResult, Shard

INLINE_MAX_QUERIES = 8  # searches this small run on the event loop: the hand-off would cost more...
INLINE_MAX_WORK = 2_000_000  # ...when they touch at most this many floats (Shard.search_work: ~0.3 ms here)
SPLIT_MIN_QUERIES = 128  # a batch at least twice this is split across the pool's threads
POOL_THREADS = max(2, os.cpu_count() or 2)  # the CPU parallelism we want, shared by every shard
_POOL: ThreadPoolExecutor | None = None


POOL_NICE = 5  # the pool's bulk work yields the CPU to the event loop's small searches and request handling


def _lower_priority() -> None:
    """Run this pool thread at a lower priority than the event loop (Linux: a thread's own nice value), so
    one tenant's large batches cannot hold back another tenant's single-query latency when cores are
    contended; with idle cores it changes nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), POOL_NICE)
    except (AttributeError, OSError):  # not Linux, or not permitted: the default priority
        pass


def _pool() -> ThreadPoolExecutor:
    """One pool for every in-process shard: its size is the CPU parallelism we want, not per shard."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="shard", initializer=_lower_priority)
    return _POOL


class LocalShardHandle(ForwardingShardHandle):
    """Async calls to a shard living in this process; raises SimsearchError subclasses only.
    Shards here read the fan-out's query array as is (the default `share`)."""

    def __init__(self, shard: Shard, label: str, open_args: tuple | None = None):
        self._shard: Shard | None = shard
        self.label = label
        self._open_args = open_args  # Shard's arguments, to load it again (reopen)

    @classmethod
    def create(cls, label: str, dim: int, metric: str, params: IndexParams, data_dir: Path | None,
               **options: Any) -> "LocalShardHandle":
        """options: Shard's keyword options (durability, durability_interval_ms)."""
        return cls(Shard(dim, metric, params, data_dir=data_dir, **options), label, (dim, metric, params, data_dir, options))

    async def reopen(self) -> None:
        """Load the shard again from its directory: after `close`, after a replica's files were replaced by a
        copy, or after `kill` (a replica brought back)."""
        if self._open_args is None:
            raise FailedPrecondition(f"{self.label} cannot be reopened: it was made from a Shard object")
        dim, metric, params, data_dir, options = self._open_args
        old, self._shard = self._shard, None
        if old is not None:
            await asyncio.get_running_loop().run_in_executor(_pool(), old.close, False)
        self._shard = await asyncio.get_running_loop().run_in_executor(
            _pool(), functools.partial(Shard, dim, metric, params, data_dir=data_dir, **options))

    def _live(self) -> Shard:
        if self._shard is None:
            raise Unavailable(f"{self.label} is unavailable: it was stopped")
        return self._shard

    def _run_inline(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._live(), method)(*args, **kwargs)
        except SimsearchError:
            raise
        except Exception as e:  # a bug in the shard: INTERNAL, named
            raise Internal(f"{self.label} failed in {method}: {type(e).__name__}: {e}") from e

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_pool(), functools.partial(self._run_inline, method, *args, **kwargs))

    async def search(self, queries: np.ndarray, k: int, **params: Any) -> SearchResult:
        """Small searches inline; a large batch in one contiguous slice per pool thread, so one shard's batch
        uses every core (ScaNN and the re-rank release the GIL): 1.6x on 2 cores (BENCHMARKS.md)."""
        n = len(queries)
        shard = self._live()
        work = shard.search_work(n, k, exact=params.get("exact", False), leaves_to_search=params.get("leaves_to_search", 0),
                                 oversample=params.get("oversample", 0))
        if n <= INLINE_MAX_QUERIES and work <= INLINE_MAX_WORK:
            return self._run_inline("search", queries, k, **params)
        parts = min(POOL_THREADS, n // SPLIT_MIN_QUERIES)
        if parts < 2:
            return await self._call("search", queries, k, **params)
        bounds = np.linspace(0, n, parts + 1).astype(int)
        results = await asyncio.gather(*(self._call("search", queries[a:b], k, **params)
                                         for a, b in zip(bounds[:-1], bounds[1:])))
        payloads = None if results[0].payloads is None else np.concatenate([r.payloads for r in results])
        paths = sorted({r.path for r in results})  # the parts may differ ("filter-index" and "+fallback")
        return SearchResult(ids=np.concatenate([r.ids for r in results]),
                            distances=np.concatenate([r.distances for r in results]), payloads=payloads,
                            path=paths[-1] if len(paths) == 1 else ",".join(paths))

    async def stats(self) -> dict:
        return self._run_inline("stats")

    def kill(self) -> None:
        """Stop serving from this shard at once (drop_collection); nothing is saved."""
        shard, self._shard = self._shard, None
        if shard is not None:
            _pool().submit(shard.close, False)
