"""Tenant quotas and rate limits: checked before any work, refused with QuotaFailure (and RetryInfo when
waiting helps), retried by the SDK; the admitted rate follows the configured one; a tenant at its limit
does not slow another. The 30 s rate measurement and the full noisy-neighbour run are
scripts/rate_limit.py and scripts/noisy_neighbour.py; these are their short versions."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from conftest import API_KEY, start_server
from simsearch import AdminClient, Client, QuotaExceeded
from simsearch.protos.simsearch.v1 import collections_pb2
from simsearch.router.quotas import TenantLimits, UsageLedger

DIM = 8


@pytest.mark.unit
def test_the_token_bucket_admits_its_rate_after_a_one_second_burst():
    now = [100.0]
    limits = TenantLimits(clock=lambda: now[0])
    q = {"max_qps": 10}
    for _ in range(10):
        limits.admit("t", q)  # the burst: one second's worth
    with pytest.raises(QuotaExceeded) as e:
        limits.admit("t", q)
    assert e.value.quota == "tenant t max_qps" and e.value.retry_after_s == pytest.approx(0.1)
    now[0] += 0.55
    admitted = 0
    for _ in range(10):
        try:
            limits.admit("t", q)
            admitted += 1
        except QuotaExceeded:
            pass
    assert admitted == 5
    limits.admit("other", {})  # no quota: never refused
    with limits.search("t", {"max_concurrent_searches": 1}):
        with pytest.raises(QuotaExceeded, match="already runs 1 searches"):
            with limits.search("t", {"max_concurrent_searches": 1}):
                pass
        with limits.search("u", {"max_concurrent_searches": 1}):  # another tenant's slots are its own
            pass
    with limits.search("t", {"max_concurrent_searches": 1}):  # released
        pass


@pytest.mark.unit
def test_concurrent_writes_cannot_pass_the_points_quota_together():
    """Writes that each fit but not together: exactly those that fit pass, whether they arrive while the
    usage is being counted (the count's await) or after it, and writes in flight when a count is taken are
    not lost from it."""
    stored = [60]  # what the shards hold (the count's answer)

    async def count():
        await asyncio.sleep(0.01)  # a real count awaits the shards: other writes get in meanwhile
        return stored[0], 0

    async def write(ledger, n, hold):
        try:
            async with ledger.reserve("t", n, 0, {"max_points": 100}, count):
                await asyncio.sleep(hold)
                stored[0] += n
            return "ok"
        except QuotaExceeded:
            return "refused"

    async def main():
        ledger = UsageLedger(recount_s=0.0)  # a count on every write: the racy case
        first = await asyncio.gather(*(write(ledger, 15, 0.05) for _ in range(4)))  # 60 + 4 x 15 > 100
        assert sorted(first) == ["ok", "ok", "refused", "refused"] and stored[0] == 90
        slow = asyncio.ensure_future(write(ledger, 10, 0.1))  # in flight while the next one counts
        await asyncio.sleep(0.02)
        assert await write(ledger, 5, 0) == "refused"  # 90 counted + 10 in flight + 5 > 100
        assert await slow == "ok" and stored[0] == 100
        ledger.forget("t")
        stored[0] = 40
        assert await write(ledger, 60, 0) == "ok"

    asyncio.run(main())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("quotas"))
    yield s
    s.stop()


def _tenant(served, name: str, **quotas) -> str:
    with AdminClient(served.address, api_key=API_KEY) as admin:
        admin.create_tenant(name, **quotas)
        return admin.create_key(name, "tenant-admin").secret


@pytest.mark.integration
def test_collection_and_point_quotas_refuse_before_any_work(served):
    key = _tenant(served, "small", max_collections=2, max_points=100)
    with Client(served.address, api_key=key) as c:
        c.create_collection("a", DIM)
        c.create_collection("b", DIM)
        with pytest.raises(QuotaExceeded) as e:
            c.create_collection("c", DIM)
        assert e.value.quota == "tenant small max_collections" and e.value.retry_after_s is None
        assert c.list_collections() == ["a", "b"]
        c.upsert("a", [f"p{i}" for i in range(80)], np.ones((80, DIM), np.float32))
        with pytest.raises(QuotaExceeded, match=r"holds 80 points; 30 more would pass its quota \(max_points 100\)"):
            c.upsert("b", [f"q{i}" for i in range(30)], np.ones((30, DIM), np.float32))
        assert c.count("a") == 80 and c.count("b") == 0
        c.delete("a", [f"p{i}" for i in range(40)])  # the room freed counts at once
        c.upsert("b", [f"q{i}" for i in range(30)], np.ones((30, DIM), np.float32))
    with AdminClient(served.address, api_key=API_KEY) as admin:
        assert admin.describe_tenant("small")["usage"] == {"collections": 2, "points": 70, "keys": 1,
                                                              "payload_bytes": 0}
        admin.update_tenant("small")  # quotas removed
    with Client(served.address, api_key=key) as c:
        c.create_collection("c", DIM)


@pytest.mark.integration
def test_a_rate_limited_call_carries_quota_failure_and_retry_info_and_the_sdk_waits(served):
    key = _tenant(served, "limited", max_qps=20)
    codes, details = [], []
    with grpc.insecure_channel(served.address) as ch:
        call = ch.unary_unary("/simsearch.v1.Collections/ListCollections")
        for _ in range(40):  # raw calls: no SDK retry
            try:
                call(collections_pb2.ListCollectionsRequest().SerializeToString(), metadata=(("x-api-key", key),))
                codes.append("OK")
            except grpc.RpcError as e:
                codes.append(e.code().name)
                details = rpc_status.from_call(e).details
    assert 15 <= codes.count("OK") <= 25 and set(codes) == {"OK", "RESOURCE_EXHAUSTED"}
    kinds = {d.TypeName() for d in details}
    assert kinds == {"google.rpc.QuotaFailure", "google.rpc.RetryInfo"}
    qf = error_details_pb2.QuotaFailure()
    next(d for d in details if d.Is(qf.DESCRIPTOR)).Unpack(qf)
    assert qf.violations[0].subject == "tenant limited max_qps"
    time.sleep(1.0)
    with Client(served.address, api_key=key) as c:  # the SDK retries after each RetryInfo: every call succeeds
        t0 = time.monotonic()
        for _ in range(40):
            c.list_collections()
        took = time.monotonic() - t0
    assert took >= 0.8  # 40 calls at 20 per second after a 20-call burst: about a second


@pytest.mark.integration
def test_the_admitted_rate_follows_the_configured_rate(served):
    """The short version of scripts/rate_limit.py (30 s): 4 callers as fast as they can for 3 s."""
    rate, seconds = 50.0, 3.0
    key = _tenant(served, "metered", max_qps=rate)
    admitted = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def caller() -> None:
        with grpc.insecure_channel(served.address) as ch:
            call = ch.unary_unary("/simsearch.v1.Collections/ListCollections")
            body = collections_pb2.ListCollectionsRequest().SerializeToString()
            while time.monotonic() < stop:
                try:
                    call(body, metadata=(("x-api-key", key),))
                    with lock:
                        admitted[0] += 1
                except grpc.RpcError:
                    pass

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = rate * seconds + rate  # the rate over the window, plus the one-second burst the bucket starts with
    assert abs(admitted[0] - expected) <= 0.1 * expected, (admitted[0], expected)


@pytest.mark.integration
def test_concurrent_searches_over_the_limit_are_refused_and_retried(served):
    from prometheus_client import REGISTRY

    key = _tenant(served, "narrow", max_concurrent_searches=1)
    with Client(served.address, api_key=key) as c:
        c.create_collection("s", DIM)
        c.upsert("s", [f"p{i}" for i in range(3000)], np.random.default_rng(0).standard_normal((3000, DIM)).astype(np.float32))
    results, errors = [], []

    def searcher() -> None:
        with Client(served.address, api_key=key) as c:
            for _ in range(10):
                try:
                    results.append(len(c.search("s", np.ones((200, DIM), np.float32), 10, exact=True, no_cache=True)))
                except Exception as e:  # noqa: BLE001 (collected, asserted below)
                    errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [200] * 40  # refused ones were sent again by the SDK
    refused = REGISTRY.get_sample_value("simsearch_quota_refusals_total",
                                        {"tenant": "narrow", "quota": "max_concurrent_searches"}) or 0
    assert refused > 0  # four callers, one slot: some were refused (and retried)


@pytest.mark.integration
def test_limits_keep_a_noisy_tenant_from_swamping_a_quiet_one(tmp_path):
    """The short version of scripts/noisy_neighbour.py: the quiet tenant's p99 beside a noisy tenant at
    its limits rises far less than beside one without limits (same server, same load generator)."""
    import neighbours
    from conftest import serve_process

    with serve_process(tmp_path / "data") as run:
        limited = neighbours.prepare(run.address, API_KEY, noisy_qps=20, noisy_concurrent=1)
        free = neighbours.prepare(run.address, API_KEY, noisy_qps=None, noisy_concurrent=None, suffix="-x")
        a = neighbours.run(run.address, *limited, windows=2, window_s=3.0)
        b = neighbours.run(run.address, *free, windows=2, window_s=3.0)
    assert a.quiet_errors == 0 and b.quiet_errors == 0
    assert a.noisy_admitted <= 20 * (2 * 2 * (3.0 + 1.0)) + 20  # at most its rate over the whole run, plus the burst
    assert b.noisy_admitted > 3 * a.noisy_admitted
    assert a.p99_ratio < b.p99_ratio, (a, b)


@pytest.mark.integration
def test_the_payload_bytes_quota_counts_utf8_bytes_of_live_payloads(served):
    key = _tenant(served, "wordy", max_payload_bytes=2000)
    doc = {"text": "é" * 90}  # canonical JSON {"text":"éé…"}: 11 + 2 x 90 = 191 bytes, 101 characters
    with Client(served.address, api_key=key) as c:
        c.create_collection("d", DIM)
        c.upsert("d", [f"p{i}" for i in range(10)], np.ones((10, DIM), np.float32), payloads=[doc] * 10)
        with AdminClient(served.address, api_key=API_KEY) as admin:
            assert admin.describe_tenant("wordy")["usage"]["payload_bytes"] == 1910
        with pytest.raises(QuotaExceeded, match=r"holds 1,910 bytes of payloads; 191 more would pass") as e:
            c.upsert("d", ["p10"], np.ones((1, DIM), np.float32), payloads=[doc])
        assert e.value.quota == "tenant wordy max_payload_bytes"
        with pytest.raises(QuotaExceeded):
            c.set_payload("d", ["p0"], {"more": "x" * 100})
        c.upsert("d", ["p10"], np.ones((1, DIM), np.float32))  # no payload: fits
        assert c.count("d") == 11
