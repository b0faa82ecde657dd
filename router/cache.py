"""The hot-query cache: admission by popularity, Redis or in-process, never an error.

A result is stored only once its key has been seen `min_hits` times within `window_s`,
so one-off queries do not churn the cache. Keys embed the collection's generation, so a
write makes older entries unreachable (they expire by TTL). A failing backend (Redis down
or slow) is bypassed: the search goes on, the failure is counted and logged at most once
per `log_every_s`, and the backend is left alone for `backoff_s` before the next try.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from simsearch.router import metrics

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str

    async def get_and_count(self, key: str, window_s: float) -> tuple[bytes | None, int]:
        """The stored value (or None) and how often the key was seen in the window, this time included."""
        ...

    async def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def close(self) -> None: ...


class InProcessBackend:
    """The embedded default: bounded LRU dicts in the router process."""

    name = "memory"

    def __init__(self, max_entries: int = 10_000, *, clock=time.monotonic):
        self._values: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get_and_count(self, key: str, window_s: float) -> tuple[bytes | None, int]:
        now = self._clock()
        count, start = self._counts.pop(key, (0, now))
        if now - start > window_s:
            count, start = 0, now
        self._counts[key] = (count + 1, start)
        if len(self._counts) > self._max:
            self._counts.popitem(last=False)
        hit = self._values.get(key)
        if hit is not None and hit[1] < now:
            del self._values[key]
            hit = None
        if hit is not None:
            self._values.move_to_end(key)
        return (hit[0] if hit else None), count + 1

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._values[key] = (value, self._clock() + ttl_s)
        self._values.move_to_end(key)
        if len(self._values) > self._max:
            self._values.popitem(last=False)

    async def close(self) -> None:
        pass


class RedisBackend:
    """One round trip per lookup: GET the value, INCR the sighting counter, start its window."""

    name = "redis"

    def __init__(self, url: str, *, timeout_s: float = 0.05):
        self._redis = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    async def get_and_count(self, key: str, window_s: float) -> tuple[bytes | None, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(f"v:{key}")
            pipe.incr(f"c:{key}")
            pipe.expire(f"c:{key}", max(1, int(window_s)), nx=True)
            value, count, _ = await pipe.execute()
        return value, int(count)

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._redis.set(f"v:{key}", value, px=max(1, int(ttl_s * 1000)))

    async def close(self) -> None:
        await self._redis.aclose()


class HotQueryCache:
    def __init__(self, backend: Backend, *, min_hits: int = 2, window_s: float = 60.0, ttl_s: float = 300.0,
                 backoff_s: float = 1.0, log_every_s: float = 30.0, clock=time.monotonic):
        if min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {min_hits}")
        self.backend = backend
        self.min_hits = min_hits
        self.window_s = window_s
        self.ttl_s = ttl_s
        self._backoff_s = backoff_s
        self._log_every_s = log_every_s
        self._clock = clock
        self._skip_until = 0.0
        self._last_log = -float("inf")
        self.failures = 0

    @staticmethod
    def key(scope: str, generation: int, k: int, params: str, queries) -> str:
        """`scope` names the tenant and the collection's incarnation; `queries` is any contiguous
        buffer (bytes or a C-contiguous array), hashed without copying."""
        digest = hashlib.sha256(queries).hexdigest()[:32]  # SHA-NI: ~2x faster than blake2b on 3 KB here
        return f"ss:{scope}:{generation}:{k}:{params}:{digest}"

    async def lookup(self, key: str) -> tuple[bytes | None, bool]:
        """(cached value or None, whether the key is hot enough to admit on a miss)."""
        if self._clock() < self._skip_until:
            return None, False
        try:
            value, count = await self.backend.get_and_count(key, self.window_s)
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            self._failed("lookup", e)
            return None, False
        return value, count >= self.min_hits

    async def admit(self, key: str, value: bytes) -> None:
        if self._clock() < self._skip_until:
            return
        try:
            await self.backend.put(key, value, self.ttl_s)
        except (RedisError, OSError, asyncio.TimeoutError) as e:
            self._failed("store", e)

    def _failed(self, op: str, e: Exception) -> None:
        now = self._clock()
        self.failures += 1
        metrics.CACHE_ERRORS.labels(self.backend.name).inc()
        self._skip_until = now + self._backoff_s
        if now - self._last_log >= self._log_every_s:
            self._last_log = now
            log.warning("cache %s on %s failed (%s: %s); bypassing it for %.1fs (%d failures so far)",
                        op, self.backend.name, type(e).__name__, e, self._backoff_s, self.failures)

    async def close(self) -> None:
        try:
            await self.backend.close()
        except (RedisError, OSError):
            pass


def make_cache(redis_url: str | None, **kwargs) -> HotQueryCache:
    backend: Backend = RedisBackend(redis_url) if redis_url else InProcessBackend()
    return HotQueryCache(backend, **kwargs)
