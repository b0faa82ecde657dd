"""Live recall (issue 20, item 1): a real server re-runs a sample of its searches exactly in the background and
keeps each collection's recall@k over a sliding window. Lowering recall on purpose through a collection setting
(one leaf searched) brings the gauge below the SLO and raises the flag within the window; restoring the setting
restores it; a bad setting is refused by name and changes nothing."""

from __future__ import annotations

import time
import urllib.request

import numpy as np
import pytest
from conftest import API_KEY, free_port, start_server

from simsearch import InvalidArgument
from simsearch.client import Client

pytestmark = pytest.mark.integration  # a real server, its background re-runs, its Prometheus page

DIM = 64


def _until(client: Client, rng: np.random.Generator, done, timeout: float = 60.0, flt: dict | None = None) -> dict:
    """Search (8 i.i.d. queries a request, k=10) until `done(live_recall)`; the last view."""
    end = time.monotonic() + timeout
    while True:
        client.search("live-g", rng.standard_normal((8, DIM)).astype(np.float32), k=10, no_cache=True, filter=flt)
        view = client.describe_collection("live-g").live_recall
        if done(view):
            return view
        assert time.monotonic() < end, view


def _gauge(port: int, name: str) -> float:
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    line = [s for s in page.splitlines() if s.startswith(name + "{") and 'collection="live-g"' in s][0]
    return float(line.split()[-1])


def test_live_recall_falls_below_the_slo_when_a_setting_lowers_it_and_recovers(tmp_path):
    port = free_port()
    # every search a candidate, and no CPU budget beyond one re-run in flight: the test needs samples fast
    server = start_server(tmp_path / "data", recall_sample=1.0, recall_cpu_budget=1.0, metrics_port=port)
    try:
        with Client(server.address, api_key=API_KEY) as client:
            client.create_collection("live-g", dim=DIM, recall_slo=0.9)
            rng = np.random.default_rng(0)
            x = rng.standard_normal((10_000, DIM)).astype(np.float32)  # i.i.d. Gaussian: no cluster structure
            client.upsert("live-g", np.arange(len(x)), x, payloads=[{"half": i % 2} for i in range(len(x))])
            client.build_index("live-g", wait=True)
            good = _until(client, rng, lambda v: v["samples"] >= 200)
            assert good["slo"] == 0.9 and good["recall"] >= 0.9 and not good["breached"], good
            assert _gauge(port, "simsearch_live_recall") >= 0.9
            # filtered searches are measured per filter shape too (their recall depends on what passes)
            shaped = _until(client, rng, lambda v: v["by_filter"].get("half:eq", {}).get("samples", 0) >= 40,
                            flt={"half": 0})
            assert 0.0 < shaped["by_filter"]["half:eq"]["recall"] <= 1.0
            assert _gauge(port, "simsearch_live_recall_by_filter") == pytest.approx(
                shaped["by_filter"]["half:eq"]["recall"], abs=0.05)

            with pytest.raises(InvalidArgument, match="oversample"):
                client.update_collection("live-g", oversample=1000)
            assert client.describe_collection("live-g").live_recall["samples"] >= 200  # nothing changed

            client.update_collection("live-g", leaves_to_search=1)  # on purpose: one leaf of ~100
            bad = _until(client, rng, lambda v: v["breached"])
            assert bad["recall"] < 0.9 and bad["samples"] <= 200, bad  # flagged within one window
            time.sleep(0.2)
            assert _gauge(port, "simsearch_live_recall") < 0.9 and _gauge(port, "simsearch_live_recall_breached") == 1

            client.update_collection("live-g", leaves_to_search=0)  # back to the calibrated setting
            back = _until(client, rng, lambda v: v["samples"] >= 100)
            assert back["recall"] >= 0.9 and not back["breached"], back
            assert client.describe_collection("live-g").index["leaves_to_search"] != 1
    finally:
        server.stop()
