"""The hot-query cache against a real redis-server and in-process; outages are bypassed."""

from __future__ import annotations

import asyncio

import pytest

from simsearch.router.cache import HotQueryCache, InProcessBackend, RedisBackend

from conftest import RedisProcess

# The product's 50 ms Redis socket timeout is a latency budget, not what these tests check: on a
# loaded machine one slow round trip would bypass the cache and fail an assertion about hits.
REDIS_TIMEOUT_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _admission(cache: HotQueryCache) -> None:
    key = cache.key("t:c", 0, 10, "p", b"query")
    assert await cache.lookup(key) == (None, False)  # seen once: not hot yet
    value, hot = await cache.lookup(key)
    assert value is None and hot  # seen twice: admit the result
    await cache.admit(key, b"result")
    assert (await cache.lookup(key))[0] == b"result"
    other_generation = cache.key("t:c", 1, 10, "p", b"query")
    assert (await cache.lookup(other_generation))[0] is None


def test_admission_in_process():
    asyncio.run(_admission(HotQueryCache(InProcessBackend(), min_hits=2)))


def test_admission_and_ttl_in_redis(redis_proc):
    async def run():
        # A TTL far longer than the test, so a stall between admit and lookup cannot expire it.
        cache = HotQueryCache(RedisBackend(redis_proc.url, timeout_s=REDIS_TIMEOUT_S), min_hits=2, ttl_s=600)
        await _admission(cache)
        await cache.close()
        # A short TTL expires: poll until it has (Redis expires on access), never sleep-then-assert.
        cache = HotQueryCache(RedisBackend(redis_proc.url, timeout_s=REDIS_TIMEOUT_S), min_hits=1, ttl_s=0.2)
        key = cache.key("t:c", 0, 10, "p", b"short-lived")
        await cache.admit(key, b"result")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (await cache.lookup(key))[0] is not None:
            assert loop.time() < deadline, "a 0.2 s TTL had not expired after 30 s"
            await asyncio.sleep(0.05)
        assert cache.failures == 0
        await cache.close()
    asyncio.run(run())


def test_in_process_window_and_ttl_follow_the_clock():
    async def run():
        clock = Clock()
        cache = HotQueryCache(InProcessBackend(clock=clock), min_hits=2, window_s=10, ttl_s=5, clock=clock)
        key = cache.key("t:c", 0, 1, "p", b"q")
        await cache.lookup(key)
        clock.now += 11  # the first sighting falls out of the window
        assert (await cache.lookup(key))[1] is False
        assert (await cache.lookup(key))[1] is True
        await cache.admit(key, b"v")
        clock.now += 6
        assert (await cache.lookup(key))[0] is None
    asyncio.run(run())


@pytest.mark.integration  # its own redis-server, killed mid-test
def test_redis_outage_is_bypassed_not_raised():
    async def run(proc: RedisProcess):
        # a refused connection fails at once: the long timeout only guards the lookups before the kill
        cache = HotQueryCache(RedisBackend(proc.url, timeout_s=REDIS_TIMEOUT_S), min_hits=1, backoff_s=0.0,
                              log_every_s=0.0)
        key = cache.key("t:c", 0, 1, "p", b"q")
        await cache.admit(key, b"v")
        assert (await cache.lookup(key))[0] == b"v"
        proc.kill()
        for _ in range(3):
            assert await cache.lookup(key) == (None, False)
            await cache.admit(key, b"w")
        assert cache.failures >= 6
        await cache.close()
    asyncio.run(run(RedisProcess()))


def test_min_hits_must_be_positive():
    with pytest.raises(ValueError, match="min_hits must be >= 1"):
        HotQueryCache(InProcessBackend(), min_hits=0)
