"""The dashboard's parts without a browser or server: histogram quantiles and the metrics sampler, the
embedding map's projection and colouring, the distance scores, uploads, and the session cookie."""

from __future__ import annotations

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import Response

from simsearch.contract.errors import InvalidArgument
from simsearch.reranker.kernels import pairwise_distance
from simsearch.router.catalog import Catalog
from simsearch.router.dashboard import analysis, images
from simsearch.router.dashboard.series import Sampler, quantile
from simsearch.router.dashboard.session import COOKIE, Sessions

INF = float("inf")


def test_quantile_interpolates_within_a_bucket():
    bounds, counts = [0.001, 0.01, 0.1, INF], [0, 50, 100, 100]  # cumulative: half in (1, 10] ms, half in (10, 100]
    assert quantile(0.5, bounds, counts) == pytest.approx(0.01)
    assert quantile(0.25, bounds, counts) == pytest.approx(0.0055)
    assert quantile(0.99, bounds, counts) == pytest.approx(0.0982)
    assert quantile(0.5, bounds, [0, 0, 0, 0]) is None
    assert quantile(0.99, [0.1, INF], [1, 10]) == 0.1  # in the +inf bucket: its lower bound


def test_sampler_charts_interval_latency_and_quality_gauges():
    registry = CollectorRegistry()
    hist = Histogram("simsearch_collection_search_seconds", "", ["tenant", "collection"], registry=registry,
                     buckets=(0.001, 0.01, 0.1))
    recall = Gauge("simsearch_live_recall", "", ["tenant", "collection"], registry=registry)
    now = [100.0]
    sampler = Sampler(registry, clock=lambda: now[0])
    hist.labels("t", "a").observe(0.05)  # before the first sample: the baseline, never charted
    sampler.sample()
    for _ in range(10):
        hist.labels("t", "a").observe(0.005)
    hist.labels("t", "b").observe(0.5)  # another collection's
    recall.labels("t", "a").set(0.93)
    now[0] = 105.0
    sampler.sample()
    charts = sampler.charts("t", "a")
    lines = {line["name"]: line for line in charts["latency"]}
    assert set(lines) == {"this collection's searches p50", "this collection's searches p99"}
    assert lines["this collection's searches p50"]["t"] == [105.0]
    assert 1 < lines["this collection's searches p50"]["v"][0] <= 10  # ms: only this interval's searches
    assert charts["quality"]["simsearch_live_recall"][0]["v"] == [0.93]
    assert charts["quality"]["simsearch_query_drift"] is None  # not measured
    assert sampler.charts("u", "a")["latency"] == []  # another tenant's collection of the same name


def test_pca_map_and_colouring():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 8)).astype(np.float32) * [10, 3, 1, 1, 1, 1, 1, 1]
    xy, share = analysis.pca_2d(x)
    assert xy.shape == (300, 2) and share[0] > share[1] > 0.05 and sum(share) < 1
    assert abs(np.corrcoef(xy[:, 0], x[:, 0])[0, 1]) > 0.99  # the first axis is the widest direction
    payloads = [json.dumps({"label": f"c{i % 3}", "n": i, "deep": {"x": 1}}) for i in range(29)] + [""]
    assert analysis.payload_fields(payloads) == ["label", "n"]  # scalar fields only
    c = analysis.colouring(payloads, "label")
    assert c["kind"] == "category" and c["values"][:4] == ["c0", "c1", "c2", "c0"] and c["values"][-1] == "(none)"
    n = analysis.colouring(payloads, "n")
    assert n["kind"] == "number" and n["values"][5] == 5.0 and n["values"][-1] is None


def test_neighbour_and_random_pair_scores():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    queries = np.array([3, 50, 199])
    got = analysis.neighbour_scores(x, queries, "l2", 5).reshape(3, 5)
    d = pairwise_distance(x[queries], x, "l2")
    d[np.arange(3), queries] = np.inf
    np.testing.assert_allclose(got, np.sort(d, axis=1)[:, :5], rtol=1e-5)  # exact, the point itself left out
    rand = analysis.random_pair_scores(x, "l2", 1000)
    assert len(rand) == 1000 and (rand > 0).all()  # never a point with itself
    assert np.median(rand) > np.median(got)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert (analysis.random_pair_scores(unit, "cosine", 100) <= 1.0001).all()  # similarities


def test_uploads_come_back_as_the_encoders_pixels():
    pixels = np.random.default_rng(2).integers(0, 256, (1, 8, 8), dtype=np.uint8)
    raw = images.from_upload(images.png(pixels), (1, 8, 8))  # a 96 x 96 PNG, scaled back down exactly
    assert np.array_equal(np.frombuffer(raw.images.pixels, np.uint8).reshape(1, 8, 8), pixels)
    rgb = images.from_upload(images.png(np.zeros((3, 4, 6), np.uint8)), (3, 28, 28))
    assert (rgb.images.count, rgb.images.channels, rgb.images.height, rgb.images.width) == (1, 3, 28, 28)
    assert images.rendered(raw)[0]["image"].startswith("data:image/png;base64,")
    with pytest.raises(InvalidArgument, match="not an image"):
        images.from_upload(b"not an image", (1, 8, 8))


def _request(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""})


def _cookie(response: Response) -> tuple[str, str]:
    header = response.headers["set-cookie"]
    return header.split(";")[0].split("=", 1)[1], header


def test_session_cookie_holds_no_key_and_ends_with_the_key(tmp_path):
    catalog = Catalog(tmp_path)
    try:
        catalog.bootstrap("bootstrap-key-0123456789")
        _, secret = catalog.create_key("default", "read-only", ("a",), 0.0)
        principal = catalog.authenticate(secret)
        sessions = Sessions(catalog, secure=False)
        response = Response()
        sessions.issue(response, principal)
        value, header = _cookie(response)
        assert "HttpOnly" in header and "SameSite=strict" in header and "Max-Age=28800" in header
        assert secret not in header and secret.split("_")[-1] not in header
        got = sessions.principal(_request(value))
        assert got is not None and (got.tenant, got.collections) == ("default", frozenset({"a"}))
        assert sessions.principal(_request(value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))) is None  # forged
        assert sessions.principal(_request(None)) is None
        assert Sessions(catalog, secure=False, ttl_s=-1).principal(_request(value)) is None  # past its age
        catalog.rotate_key(principal.key_id)  # a rotated key's sessions end at the next page
        assert sessions.principal(_request(value)) is None
    finally:
        catalog.close()
