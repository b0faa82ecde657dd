"""Drift and embedding health watched in the running service (issue 20, item 3): a real server checks each
collection's recent queries and writes against their reference samples on a schedule. Queries from a shifted
distribution raise the query-drift alarm (after the confirming checks) and its gauge; in-distribution queries do
not; an operator's reset forgets the reference; the reference survives a restart.

The false-alarm rate over many repetitions is measured by scripts/drift_false_alarms.py (BENCHMARKS.md)."""

from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest
from conftest import API_KEY, free_port, start_server

from simsearch import InvalidArgument
from simsearch.client import Client

pytestmark = pytest.mark.integration  # a real server, its scheduled checks, its Prometheus page

DIM = 32


def _wait(client: Client, name: str, until, timeout: float = 30.0) -> dict:
    end = time.monotonic() + timeout
    while True:
        drift = client.describe_collection(name).drift
        if until(drift):
            return drift
        assert time.monotonic() < end, drift
        time.sleep(0.1)


def _search_batches(client: Client, name: str, rng: np.random.Generator, batches: int, shift: float = 0.0) -> None:
    for _ in range(batches):
        client.search(name, rng.standard_normal((64, DIM)).astype(np.float32) + shift, k=3, no_cache=True)


def test_shifted_queries_raise_the_drift_alarm_and_in_distribution_ones_do_not(tmp_path):
    metrics_port = free_port()
    server = start_server(tmp_path / "data", drift_interval_s=0.3, metrics_port=metrics_port)
    try:
        with Client(server.address, api_key=API_KEY) as client:
            client.create_collection("d", dim=DIM)
            rng = np.random.default_rng(0)
            for start in range(0, 4800, 100):  # 16 requests fill the write reference; every 4th after it is sampled
                client.upsert("d", [str(i) for i in range(start, start + 100)],
                              rng.standard_normal((100, DIM)).astype(np.float32))
            _search_batches(client, "d", rng, 16)  # the query reference: 16 x 64 (the first 1,000 kept)
            _search_batches(client, "d", rng, 40)  # in distribution: every 4th request sampled into the window
            checks = client.describe_collection("d").drift["checks"]
            calm = _wait(client, "d", lambda d: d["checks"] >= checks + 2)
            assert calm["queries"]["reference"] == 1000 and calm["queries"]["recent"] >= 200
            assert calm["queries"]["score"] < calm["queries"]["threshold"] and not calm["queries"]["alarm"], calm
            assert calm["writes"]["reference"] == 1000 and not calm["writes"]["alarm"], calm
            assert calm["health"]["measured"] and not calm["health"]["collapsed"]
            assert calm["health"]["norm_mean"] == pytest.approx(np.sqrt(DIM), rel=0.1)

            # shifted queries, in two bursts: each judgement needs half a window of new vectors, and the alarm two
            _search_batches(client, "d", rng, 40, shift=0.5)
            first = _wait(client, "d", lambda d: d["queries"]["exceeded"] >= 1)
            assert not first["queries"]["alarm"]  # one judgement is not enough
            _search_batches(client, "d", rng, 40, shift=0.5)
            drifted = _wait(client, "d", lambda d: d["queries"]["alarm"])
            assert drifted["queries"]["score"] > drifted["queries"]["threshold"] and drifted["queries"]["exceeded"] >= 2
            assert not drifted["writes"]["alarm"]  # the writes did not change
            end = time.monotonic() + 10  # the gauges are set once the check's results are exported
            while 'simsearch_drift_alarm{collection="d",kind="query",tenant="default"} 1.0' not in (
                    page := urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
                    .decode()):
                assert time.monotonic() < end, page[-3000:]
                time.sleep(0.1)
            assert 'simsearch_drift_alarm{collection="d",kind="write",tenant="default"} 0.0' in page
            score = [line for line in page.splitlines()  # the registry is the process's: other tests' series too
                     if line.startswith('simsearch_query_drift{collection="d",tenant="default"}')][0]
            assert float(score.split()[-1]) > 0.2

            with pytest.raises(InvalidArgument, match="kind"):
                client.reset_drift_reference("d", "everything")
            reset = client.reset_drift_reference("d", "queries").drift
            assert reset["queries"]["reference"] == 0 and not reset["queries"]["alarm"]
            assert reset["writes"]["reference"] == 1000  # only the queries' reference was forgotten
            _search_batches(client, "d", rng, 16, shift=0.5)  # the shifted queries are the new normal
    finally:
        server.stop()
    server = start_server(tmp_path / "data", drift_interval_s=0.3)  # the references were kept on disk
    try:
        with Client(server.address, api_key=API_KEY) as client:
            after = client.describe_collection("d").drift
            assert after["queries"]["reference"] == 1000 and after["writes"]["reference"] == 1000
            _search_batches(client, "d", rng, 40, shift=0.5)
            calm = _wait(client, "d", lambda d: d["checks"] >= 3 and d["queries"]["recent"] >= 200)
            assert not calm["queries"]["alarm"] and calm["queries"]["score"] < calm["queries"]["threshold"], calm
    finally:
        server.stop()
