"""Per-tenant rate and concurrency limits, checked at admission before any work.

- `max_qps`: a token bucket per tenant (rate max_qps, capacity max(1, max_qps): one second of
  burst) that every RPC of the tenant draws one token from. Empty: QuotaExceeded with RetryInfo
  (the time until the next token) and a QuotaFailure naming the tenant and the quota.
- `max_concurrent_searches`: searches of the tenant in flight (a unary Search or one message of
  a stream); one more is refused at once, with RetryInfo, rather than queued behind the others.
Collection and point quotas are checked by the engine where it knows the counts
(`Engine.create_collection`, `Engine.upsert`); they carry no RetryInfo (waiting does not help).

Everything runs on the event loop (no locks); the buckets are created on a tenant's first request
and follow its quotas when an admin changes them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from simsearch.contract.errors import QuotaExceeded, excerpt

MIN_RETRY_S = 0.01


class _Bucket:
    """A token bucket that also hands out retry slots: each refused caller is told a later moment than
    the one refused before it (one token apart), so callers that back off by RetryInfo come back spread
    over time at the bucket's rate instead of all at the next token (which would refuse all but one of
    them again, in bursts that hold the event loop)."""

    __slots__ = ("rate", "capacity", "tokens", "at", "promised")

    def __init__(self, rate: float, now: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.at = now
        self.promised = now  # the latest retry slot told to a refused caller

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until this caller's retry slot."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        slot = max(self.promised + 1.0 / self.rate, now + (1.0 - self.tokens) / self.rate)
        slot = min(slot, now + self.capacity / self.rate)  # a caller that hammers cannot push the others' slots out
        self.promised = slot
        return slot - now


class TenantLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._searches: dict[str, int] = {}

    def admit(self, tenant: str, quotas: dict[str, float]) -> None:
        """One request of `tenant`: a token from its bucket (when it has max_qps), else QuotaExceeded."""
        rate = quotas.get("max_qps")
        if not rate:
            self._buckets.pop(tenant, None)
            return
        now = self._clock()
        bucket = self._buckets.get(tenant)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[tenant] = _Bucket(rate, now)
        wait = bucket.take(now)
        if wait:
            raise QuotaExceeded(f"tenant {excerpt(tenant)} is over its rate limit of {rate:g} requests per second; "
                                f"retry in {wait:.3f} s", retry_after_s=max(wait, MIN_RETRY_S),
                                quota=f"tenant {tenant} max_qps")

    @contextmanager
    def search(self, tenant: str, quotas: dict[str, float]) -> Iterator[None]:
        """Hold one of the tenant's concurrent-search slots for the body (refused when none is free)."""
        limit = quotas.get("max_concurrent_searches")
        running = self._searches.get(tenant, 0)
        if limit and running >= limit:
            raise QuotaExceeded(f"tenant {excerpt(tenant)} already runs {running} searches, its limit; retry when "
                                f"one finishes", retry_after_s=MIN_RETRY_S * 5,
                                quota=f"tenant {tenant} max_concurrent_searches")
        self._searches[tenant] = running + 1
        try:
            yield
        finally:
            left = self._searches[tenant] - 1
            if left:
                self._searches[tenant] = left
            else:
                del self._searches[tenant]


class UsageLedger:
    """Each tenant's stored points and payload bytes, as an upper bound that concurrent writes cannot slip
    past: counted from the shards at most once per `recount_s` (`count`, an awaitable), plus every write
    admitted since. The check and the reservation happen with no await between them, so two writes that
    each fit alone cannot both pass a quota they pass together. A count taken while writes are in flight may
    or may not include them, so those are added to it (at worst counted twice until the next count: a
    conservative bound, as is counting an upsert that replaces points as new ones)."""

    def __init__(self, recount_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.recount_s = recount_s
        self._clock = clock
        self._seen: dict[str, tuple[float, int, int]] = {}  # tenant -> (counted at, points, bytes) incl. since
        self._pending: dict[str, list[int]] = {}  # tenant -> [points, bytes] admitted, not yet finished
        self._admitted: dict[str, list[int]] = {}  # tenant -> [points, bytes] ever admitted (a running sum)

    @asynccontextmanager
    async def reserve(self, tenant: str, points: int, nbytes: int, quotas: dict[str, float],
                      count: Callable[[], Awaitable[tuple[int, int]]]) -> AsyncIterator[None]:
        """Hold `points` and `nbytes` of the tenant's quotas for the body (the write); QuotaExceeded, before
        any work, when they would pass max_points or max_payload_bytes."""
        max_points, max_bytes = quotas.get("max_points"), quotas.get("max_payload_bytes")
        if not max_points and not max_bytes:
            yield
            return
        now = self._clock()
        seen = self._seen.get(tenant)
        if seen is None or now - seen[0] > self.recount_s:
            pending = list(self._pending.get(tenant, (0, 0)))
            before = list(self._admitted.get(tenant, (0, 0)))
            counted = await count()
            after = self._admitted.get(tenant, (0, 0))
            seen = (now, *(c + p + a - b for c, p, a, b in zip(counted, pending, after, before)))
        else:
            seen = self._seen[tenant]  # no await since the read: still current
        if max_points and seen[1] + points > max_points:
            raise QuotaExceeded(f"tenant {excerpt(tenant)} holds {seen[1]:,} points; {points:,} more would pass its "
                                f"quota (max_points {max_points:,.0f}); delete some or ask for a higher quota",
                                field="ids", quota=f"tenant {tenant} max_points")
        if max_bytes and seen[2] + nbytes > max_bytes:
            raise QuotaExceeded(f"tenant {excerpt(tenant)} holds {seen[2]:,} bytes of payloads; {nbytes:,} more "
                                f"would pass its quota (max_payload_bytes {max_bytes:,.0f}); delete some or ask for a "
                                f"higher quota", field="payloads", quota=f"tenant {tenant} max_payload_bytes")
        self._seen[tenant] = (seen[0], seen[1] + points, seen[2] + nbytes)
        for book in (self._pending, self._admitted):
            entry = book.setdefault(tenant, [0, 0])
            entry[0] += points
            entry[1] += nbytes
        try:
            yield
        finally:
            entry = self._pending[tenant]
            entry[0] -= points
            entry[1] -= nbytes
            if entry == [0, 0]:
                del self._pending[tenant]

    def forget(self, tenant: str) -> None:
        """Points were deleted (or the tenant was): the tenant's next write counts afresh."""
        self._seen.pop(tenant, None)
