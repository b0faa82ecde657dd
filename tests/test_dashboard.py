"""The web dashboard in a real browser: Debian's headless Chromium, driven by Selenium, against a real server
(`dashboard_port=0`) holding real data: scikit-learn's digits as images on a trained encoder (kept raw inputs,
served by encoder replicas), and a plain-vector collection with payloads. One server and one browser for the
module. Every page is loaded, checked for what it shows, and saved as a PNG screenshot in
$SIMSEARCH_SCREENSHOTS (else a temporary directory, named in the test output); scripts/dashboard_screenshots.py
runs this module to refresh docs/screenshots/."""

from __future__ import annotations

import base64
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import API_KEY, start_server

from simsearch.client import AdminClient, Client
from simsearch.encoder import TrainConfig, registry
from simsearch.encoder.data import digits_task
from simsearch.encoder.model import build_encoder
from simsearch.encoder.pipeline import train_and_register
from simsearch.router.dashboard.images import png

pytestmark = pytest.mark.integration  # a real server, encoder replicas in Ray actors, a browser

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TEXTS = {"animals": ["a large cat with a mane that lives in Africa", "a striped wild horse of the savanna",
                     "a small dog bred for hunting rabbits", "a bird that cannot fly and lives in Antarctica"],
         "machines": ["a machine for flying through the air with wings", "a vehicle that runs on rails",
                      "a boat driven under the water", "an engine that turns heat into motion"],
         "places": ["a building where books are kept and lent", "a place where plays are performed",
                    "a room where food is cooked", "a shop that sells medicines"]}
CFG = TrainConfig(name="digits-cnn", dataset="digits", backbone="cnn", loss="proxy-anchor", width=8,
                  embedding_dim=32, epochs=2, batch_size=128, m_per_class=8, augment=False, num_threads=2)
PAGE_WAIT_S = 20


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("SIMSEARCH_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("dashboard-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots in {path}")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory, ray_cluster):
    """A server with its dashboard, two collections and a key limited to one of them."""
    data = tmp_path_factory.mktemp("dash-data")
    task = digits_task(CFG)
    train_and_register(CFG, root=data / "models", task=task, progress=False)
    # An untrained adapter is the identity, i.e. frozen MiniLM: enough for a text collection.
    adapter = build_encoder(TrainConfig(dataset="text-pairs", backbone="minilm", embedding_dim=384), (384,))
    registry.save(adapter, name="minilm-id", kind="text", input_shape=(384,), config={}, fingerprint="untrained",
                  metrics={}, root=data / "models")
    # every search re-run exactly and drift judged each second, so the quality charts have figures to show
    server = start_server(data, dashboard_port=0, durability="none", recall_sample=1.0, recall_cpu_budget=1.0,
                          drift_interval_s=1.0)
    client = Client(server.address, api_key=API_KEY, timeout=600)
    ref_x, ref_y = task.test.ref_x[:, 0], task.test.ref_y  # (N, 8, 8) uint8, digit labels
    client.create_collection("digits", encoder="digits-cnn", payload_indexes={"digit": "integer"})
    client.upsert("digits", [f"d{i:04d}" for i in range(len(ref_x))], images=ref_x,
                  payloads=[{"digit": int(y), "split": "ref"} for y in ref_y])
    centres = np.random.default_rng(1).standard_normal((4, 24)).astype(np.float32) * 4
    rng = np.random.default_rng(2)
    cluster = rng.integers(0, 4, 800)
    vectors = centres[cluster] + rng.standard_normal((800, 24)).astype(np.float32)
    client.create_collection("vectors", dim=24)
    client.upsert("vectors", [f"v{i:03d}" for i in range(800)], vectors,
                  payloads=[{"cluster": f"c{c}", "weight": float(i)} for i, c in enumerate(cluster)])
    texts = [(topic, t) for topic, items in TEXTS.items() for t in items]
    client.create_collection("definitions", encoder="minilm-id")
    client.upsert("definitions", [f"t{i:02d}" for i in range(len(texts))], texts=[t for _, t in texts],
                  payloads=[{"topic": topic} for topic, _ in texts])
    with AdminClient(server.address, api_key=API_KEY) as admin:
        limited = admin.create_key(role="read-only", collections=["vectors"]).secret
    client.search("digits", images=task.test.query_x[:20], k=5)  # traffic for the latency chart
    queries = task.test.query_x
    for i in range(56):  # 16 requests fill the query-drift reference, then every 4th feeds its window
        client.search("digits", images=queries[np.arange(i * 64, i * 64 + 64) % len(queries)], k=5, no_cache=True)
    yield server, client, limited, ref_x, ref_y
    client.close()
    server.stop()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1100",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(PAGE_WAIT_S)
    yield driver
    driver.quit()


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, PAGE_WAIT_S, poll_frequency=0.1).until(condition, message=what)


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _shoot(driver, shots: Path, name: str) -> None:
    """A PNG of the whole page, beyond the window (Chrome DevTools' captureBeyondViewport)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000), "scale": 1}})
    (shots / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def _log_in(driver, base: str, key: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/login")
    _css(driver, "#api_key")[0].send_keys(key)
    _css(driver, "#login")[0].click()
    _wait(driver, lambda d: not d.current_url.split("?")[0].endswith("/login"), "the login to go through")


def test_dashboard_pages_in_a_browser(site, browser, shots, tmp_path):
    server, client, limited, ref_x, ref_y = site
    base = f"http://127.0.0.1:{server.dashboard_port}"
    d = browser
    t0 = time.monotonic()

    # no session: every page sends the browser to the login form, remembering where it was going
    d.get(base + "/collections/digits/map")
    assert "/login?next=/collections/digits/map" in d.current_url
    assert _css(d, "#api_key") and "Log in" in d.title
    _shoot(d, shots, "01-login")

    # a wrong key is refused (after the failed-auth guard's delay) and gets no session cookie
    _css(d, "#api_key")[0].send_keys("ss_0123456789ab_not-a-real-key")
    _css(d, "#login")[0].click()
    error = _wait(d, lambda d: _css(d, "#login-error"), "the refusal")[0]
    assert "not recognised" in error.text and "/login" in d.current_url
    assert d.get_cookie("simsearch_dashboard") is None
    _shoot(d, shots, "02-login-refused")

    # the bootstrap key: both collections, their point counts, encoder and payload index
    _log_in(d, base, API_KEY)
    cookie = d.get_cookie("simsearch_dashboard")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and API_KEY not in cookie["value"]
    d.get(base + "/")
    rows = {r.get_attribute("data-collection"): r.text for r in _css(d, "#collections tbody tr")}
    assert set(rows) == {"definitions", "digits", "vectors"}
    assert f"{len(ref_x):,}" in rows["digits"] and "digits-cnn@1" in rows["digits"] and "digit: integer" in rows["digits"]
    assert "800" in rows["vectors"]
    _shoot(d, shots, "03-collections")

    # a collection's state and live charts: latency measured from the searches above; recall and drift
    # charted when the monitors export them, else "not measured"
    d.get(base + "/collections/digits")
    assert f"{len(ref_x):,}" in _css(d, "#state .points")[0].text and _css(d, "#shards tbody tr")

    def two_latency_points(d) -> bool:  # searches go on meanwhile: two sample intervals with traffic
        client.search("digits", images=ref_x[:8], k=3)
        return bool(_css(d, "#chart-latency[data-state='measured']")) and \
            int(_css(d, "#chart-latency")[0].get_attribute("data-points") or 0) >= 2
    _wait(d, two_latency_points, "latency measured (two sample intervals)")
    for chart in ("#chart-recall", "#chart-drift"):  # the fixture's searches were re-run exactly and judged
        assert _css(d, chart)[0].get_attribute("data-state") == "measured", chart
    assert _css(d, "#chart-latency .main-svg .scatterlayer .trace"), "latency lines drawn"
    _shoot(d, shots, "04-collection-digits")

    # query by a stored id: neighbours shown as images, the point itself first
    d.get(base + "/collections/digits/query")
    field = _css(d, "#query-id")[0]
    field.send_keys("d0007")
    _css(d, "#search-id")[0].click()
    hits = _wait(d, lambda d: _css(d, "#results figure.hit"), "neighbours")
    assert len(hits) == 10 and all(h.find_elements("css selector", "img") for h in hits)
    assert hits[0].get_attribute("data-id") == "d0007" and float(hits[0].get_attribute("data-score")) > 0.999
    labels = [ref_y[int(h.get_attribute("data-id")[1:])] for h in hits]
    assert sum(label == ref_y[7] for label in labels) >= 7, labels  # a trained encoder: mostly the same digit
    _shoot(d, shots, "05-query-by-id")

    # query by an uploaded image (a stored digit as PNG): that point comes back first
    upload = tmp_path / "digit.png"
    upload.write_bytes(png(ref_x[42][None]))
    d.get(base + "/collections/digits/query")
    _css(d, "#query-image")[0].send_keys(str(upload))
    _css(d, "#search-image")[0].click()
    hits = _wait(d, lambda d: _css(d, "#results figure.hit"), "neighbours of the upload")
    assert hits[0].get_attribute("data-id") == "d0042", [h.get_attribute("data-id") for h in hits]
    assert _css(d, "#query-shown img")
    _shoot(d, shots, "06-query-by-image")

    # the embedding map: one SVG marker per sampled point, one legend entry per digit
    d.get(base + "/collections/digits/map?field=digit")
    _wait(d, lambda d: _css(d, "#map[data-loaded='true']"), "the map drawn")
    points = _css(d, "#map .scatterlayer path.point")
    assert len(points) == int(_css(d, "#map")[0].get_attribute("data-points")) == len(ref_x)
    assert len(_css(d, "#map .legend .traces")) == 10
    _shoot(d, shots, "08-map-digits")

    # the distance histograms: neighbours are more similar than random pairs (cosine: larger is closer)
    d.get(base + "/collections/digits/distances")
    _wait(d, lambda d: _css(d, "#histogram[data-loaded='true']"), "the histograms drawn")
    assert len(_css(d, "#histogram .barlayer .trace")) == 2 and _css(d, "#histogram .barlayer path")
    assert float(_css(d, "#neighbour-median")[0].text) > float(_css(d, "#random-median")[0].text)
    _shoot(d, shots, "09-distances-digits")

    # query by a text (a text collection on frozen MiniLM): the nearest definitions, as kept texts
    d.get(base + "/collections/definitions/query")
    _css(d, "#query-text")[0].send_keys("a lion")
    _css(d, "#search-text")[0].click()
    hits = _wait(d, lambda d: _css(d, "#results figure.hit"), "text neighbours")
    assert hits[0].get_attribute("data-id") == "t00" and "mane" in hits[0].text and "animals" in hits[0].text
    assert not _css(d, "#query-image")  # a text encoder takes no images
    _shoot(d, shots, "07-query-by-text")

    # the plain-vector collection: map coloured by a payload field, query by id with payloads
    d.get(base + "/collections/vectors/map?field=cluster")
    _wait(d, lambda d: _css(d, "#map[data-loaded='true']"), "the vectors map drawn")
    assert len(_css(d, "#map .scatterlayer path.point")) == 800 and len(_css(d, "#map .legend .traces")) == 4
    _shoot(d, shots, "10-map-vectors")
    d.get(base + "/collections/vectors/query")
    _css(d, "#query-id")[0].send_keys("v005")
    _css(d, "#search-id")[0].click()
    hits = _wait(d, lambda d: _css(d, "#results figure.hit"), "vector neighbours")
    assert hits[0].get_attribute("data-id") == "v005" and "cluster" in hits[0].text
    assert not _css(d, "#query-image") and not _css(d, "#query-text")  # no encoder: queries by id only
    _shoot(d, shots, "11-query-vectors")
    d.get(base + "/collections/vectors/distances")
    _wait(d, lambda d: _css(d, "#histogram[data-loaded='true']"), "the vectors histograms drawn")
    assert float(_css(d, "#neighbour-median")[0].text) < float(_css(d, "#random-median")[0].text)  # l2
    _shoot(d, shots, "12-distances-vectors")

    # a key limited to one collection sees only that one; the other is "not found", like a missing one
    _log_in(d, base, limited)
    d.get(base + "/")
    assert [r.get_attribute("data-collection") for r in _css(d, "#collections tbody tr")] == ["vectors"]
    _shoot(d, shots, "13-limited-key")
    d.get(base + "/collections/digits")
    assert "does not exist" in _css(d, "#page-error")[0].text

    # logging out ends the session: pages go back to the login form
    _css(d, "#logout")[0].click()
    _wait(d, lambda d: "/login" in d.current_url, "the logout")
    d.get(base + "/")
    assert "/login" in d.current_url
    print(f"browser part: {time.monotonic() - t0:.1f} s")
