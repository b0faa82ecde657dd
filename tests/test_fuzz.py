"""Generated hostile requests to every RPC of a real server: never UNKNOWN or INTERNAL, the
server keeps answering, and the pre-made collection's data is unchanged.

The generators live in tests/fuzz_messages.py, shared with scripts/fuzz.py (which sends
10,000+ of them to a `simsearch serve` subprocess and prints a table).
"""

from __future__ import annotations

import logging

import grpc
import psutil
import pytest
from hypothesis import HealthCheck, given, settings

import fuzz_messages as fm
from conftest import API_KEY, start_server
from simsearch.client import Client

pytestmark = pytest.mark.integration  # a real gRPC server

# derandomize: the same 400 cases every run (scripts/fuzz.py explores, with a seed of its choice)
FUZZ = settings(max_examples=400, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
MAX_GROWTH = 200 << 20  # the measured bugs: +954 MiB (a 114 KB Get), 2.3 GB (k=1024 x 10,000), 3.6 TiB asked


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("fuzz"))
    with Client(s.address, api_key=API_KEY) as c:
        fm.prepare_keep(c)
        before = fm.snapshot(c)
    channel = grpc.insecure_channel(s.address, options=fm.CHANNEL_OPTIONS)
    yield s, channel, before
    channel.close()
    s.stop()


def _unchanged(server, before) -> None:
    with Client(server.address, api_key=API_KEY) as c:
        assert fm.snapshot(c) == before
        assert fm.KEEP in c.list_collections()


@FUZZ
@given(case=fm.cases())
def test_generated_requests_to_every_rpc_never_fail_unknown_or_internal(served, case):
    server, channel, _ = served
    for outcome in fm.send(channel, case, API_KEY):
        assert outcome.code not in fm.BAD_CODES, (case, outcome)
        assert len(outcome.details) <= fm.MAX_DETAILS, (case, outcome.details[:200])  # inputs quoted by excerpt only


def test_after_the_fuzz_the_server_answers_and_the_data_is_unchanged(served):
    server, _, before = served
    _unchanged(server, before)


def _amplify(served, unary: bool) -> None:
    server, channel, before = served
    me = psutil.Process()  # the embedded server shares this process
    results = []
    for label, case, copies in fm.amplification_cases():
        if case.rpc.streaming == unary:
            continue
        rss = me.memory_info().rss
        outcomes = fm.send_concurrently(channel, case, API_KEY, copies)
        results.append((label, fm.answers(outcomes), me.memory_info().rss - rss))
    for label, codes, growth in results:
        assert codes == {"INVALID_ARGUMENT"}, label
        assert growth < MAX_GROWTH, (label, growth)
    _unchanged(server, before)


def test_amplification_requests_are_refused_up_front(served):
    _amplify(served, unary=True)


def test_amplification_on_a_search_stream_is_refused_up_front(served):
    _amplify(served, unary=False)


def test_undecodable_bodies_are_invalid_argument_without_tracebacks(served, caplog, monkeypatch):
    _, channel, _ = served
    caplog.set_level(logging.WARNING)
    from simsearch.router import wire
    from simsearch.router.throttle import LogThrottle

    monkeypatch.setattr(wire, "_decode_log", LogThrottle(3600.0))  # a fresh window: earlier cases do not count
    bodies = [b"\xff" * n for n in range(1, 41)] + [b"\x12\x05ab"]  # garbage; a truncated length-delimited field
    outcomes = [o for rpc in fm.RPCS for body in bodies
                for o in fm.send(channel, fm.Case(rpc, (body,), "garbage"), API_KEY)]
    calls = [o for o in outcomes if not o.in_band]
    assert {o.code for o in calls} <= {"INVALID_ARGUMENT", "OK"}  # a stream call itself is OK ...
    assert {o.code for o in outcomes if o.in_band} == {"INVALID_ARGUMENT"}  # ... its messages are refused
    refused = [o for o in outcomes if o.code == "INVALID_ARGUMENT"]
    assert len(refused) == len(fm.RPCS) * len(bodies)
    assert all("could not be decoded as" in o.details for o in refused)
    assert any("could not be decoded as UpsertRequest (4 bytes)" == o.details.split(": ", 1)[1] for o in refused)
    logged = [r for r in caplog.records if r.name == "simsearch.router.wire"]
    assert len(logged) == 1 and not any(r.exc_info for r in caplog.records)  # one line per interval, no traceback
