"""SLO metrics, the Prometheus rules and the Grafana dashboard (router/metrics.py, router/shard_monitor.py,
deploy/prometheus/, deploy/grafana/):

- the rules pass `promtool check rules` and their own `promtool test rules` cases (where Debian's prometheus
  package is installed: scripts/setup.sh), and promtool rejects a broken copy; structurally checked either way;
- the dashboard is well-formed Grafana JSON: ids, grid, queries, variables, recording rules it names exist;
- the shard monitor turns shard stats into availability and build series, and drops a gone shard's series;
- a real server counts requests by method and code, failed ones included, serves every series the rules and
  the dashboard name on its --metrics-port, and reports shard availability and index builds.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import API_KEY, free_port, random_vectors, start_server
from simsearch.client import Client
from simsearch.protos.simsearch.v1 import common_pb2, points_pb2, points_pb2_grpc
from simsearch.router.shard_monitor import ShardMonitor

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "simsearch-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "simsearch-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "simsearch-dashboard.json"
METRIC = re.compile(r"\bsimsearch_[a-z0-9_]+")
RECORDED = re.compile(r"\bsimsearch:[a-z0-9_:]+")
ALERTS = {"SimsearchLiveRecallBelowSLO", "SimsearchQueryDrift", "SimsearchWriteDrift", "SimsearchEmbeddingCollapsed",
          "SimsearchSearchLatencyP99OverBudget", "SimsearchShardUnavailable", "SimsearchServerErrorRate"}


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _dashboard_exprs(dash: dict) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", ())]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)]
    return exprs


def _names_used() -> set[str]:
    """Every simsearch_* series the rules and the dashboard read."""
    exprs = [r["expr"] for r in _rules()] + _dashboard_exprs(json.loads(DASHBOARD.read_text()))
    return {m for e in exprs for m in METRIC.findall(e)}


def _defined(exposition: str) -> set[str]:
    """The series names a /metrics page defines (# TYPE lines: present even for a labelled metric with no
    children yet), with a histogram's _bucket, _count and _sum."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names.update(name + s for s in ("_bucket", "_count", "_sum"))
    return names


# ---- the rules ----

@pytest.mark.unit
def test_the_rules_file_has_each_alert_and_the_recording_rules_they_use():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert all(set(g) <= {"name", "interval", "rules"} and g["rules"] for g in groups)
    rules = _rules()
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    recorded = {r["record"] for r in rules if "record" in r}
    assert ALERTS <= set(alerts)
    assert "simsearch:cache_hit_ratio:rate5m" in recorded
    for name, r in alerts.items():
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert r["labels"]["severity"] in ("page", "warning") and r["annotations"]["summary"], name
        assert re.fullmatch(r"\d+[smh]", r.get("for", "0s")), name
        assert set(RECORDED.findall(r["expr"])) <= recorded, name
    assert re.fullmatch(r"\d+m", alerts["SimsearchLiveRecallBelowSLO"]["for"])  # held for minutes, not one poll
    error_codes = re.search(r'code=~"([^"]+)"', next(r["expr"] for r in rules
                                                    if r.get("record") == "simsearch:server_errors:ratio_rate5m"))
    assert not {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED", "PERMISSION_DENIED"} & set(
        error_codes.group(1).split("|"))  # the caller's mistakes page nobody


@pytest.mark.integration  # runs promtool
def test_promtool_checks_the_rules_and_runs_their_unit_tests(tmp_path):
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; scripts/setup.sh installs it)")
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    cases = subprocess.run(["promtool", "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                           capture_output=True, text=True, timeout=60)
    assert cases.returncode == 0, cases.stdout + cases.stderr
    broken = tmp_path / "broken.yml"  # the check means something: a bad expression fails it
    broken.write_text(RULES.read_text().replace("simsearch_shard_available == 0", "simsearch_shard_available == ("))
    bad = subprocess.run(["promtool", "check", "rules", str(broken)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


# ---- the dashboard ----

@pytest.mark.unit
def test_the_dashboard_is_well_formed_grafana_json():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["targets"] and p["title"] and p["datasource"]["uid"] == "${datasource}", p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
        assert all(t["expr"].count("(") == t["expr"].count(")") for t in p["targets"]), p["title"]
    variables = {v["name"] for v in dash["templating"]["list"]}
    used = {m for e in _dashboard_exprs(dash) for m in re.findall(r"\$(\w+)", e)} - {"__rate_interval"}
    assert used <= variables and "datasource" in variables
    recorded = {r["record"] for r in _rules() if "record" in r}
    assert {m for e in _dashboard_exprs(dash) for m in RECORDED.findall(e)} <= recorded
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("requests", "failed", "latency", "stage", "collection", "recall", "drift", "availability",
                  "build", "cache hit ratio", "embedding"):
        assert topic in titles, topic


@pytest.mark.unit
def test_every_series_the_rules_and_dashboard_read_is_defined():
    """In this process's registry (the integration test below checks a server's page too)."""
    missing = _names_used() - _defined(generate_latest(REGISTRY).decode())
    assert not missing


# ---- the shard monitor ----

class _Shard:
    def __init__(self, builds: int = 0, last: float | None = None, fails: bool = False, hangs: bool = False):
        self.builds, self.last, self.fails, self.hangs = builds, last, fails, hangs

    async def stats(self) -> dict:
        if self.hangs:
            await asyncio.sleep(10)
        if self.fails:
            raise RuntimeError("actor died")
        return {"builds": self.builds, "last_build_s": self.last, "fresh": 7, "error": ""}


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.mark.unit
def test_the_shard_monitor_reports_availability_and_builds_and_forgets_gone_shards():
    t, c = "mon-tenant", "mon-coll"
    a, b, hung = _Shard(builds=2, last=1.5), _Shard(fails=True), _Shard(hangs=True)
    shards = [(t, c, 0, a), (t, c, 1, b), (t, c, 2, hung)]
    monitor = ShardMonitor(lambda: shards, timeout_s=0.05)

    async def run() -> None:
        await monitor.poll()
        available = [_value("simsearch_shard_available", tenant=t, collection=c, shard=str(i)) for i in range(3)]
        assert available == [1, 0, 0]
        assert _value("simsearch_shard_fresh_points", tenant=t, collection=c, shard="0") == 7
        assert _value("simsearch_index_builds_total", tenant=t, collection=c) == 2
        assert _value("simsearch_index_build_seconds_count", tenant=t, collection=c) == 1
        assert _value("simsearch_index_build_seconds_sum", tenant=t, collection=c) == 1.5
        await monitor.poll()  # nothing new
        assert _value("simsearch_index_builds_total", tenant=t, collection=c) == 2
        a.builds, a.last = 3, 0.5
        await monitor.poll()
        assert _value("simsearch_index_builds_total", tenant=t, collection=c) == 3
        assert _value("simsearch_index_build_seconds_sum", tenant=t, collection=c) == 2.0
        shards[0] = (t, c, 0, _Shard(builds=1, last=0.25))  # created again (or an actor restarted): from zero
        await monitor.poll()
        assert _value("simsearch_index_builds_total", tenant=t, collection=c) == 4
        shards[:] = shards[:1]  # shards 1 and 2 gone: their series go with them, not stuck at 0 (an alert)
        await monitor.poll()
        assert _value("simsearch_shard_available", tenant=t, collection=c, shard="1") is None
        assert _value("simsearch_shard_available", tenant=t, collection=c, shard="2") is None
        monitor.start()
        await monitor.stop()

    asyncio.run(run())


# ---- a real server ----

def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def _requests(page: str) -> dict[tuple[str, str], float]:
    return {(s.labels["method"], s.labels["code"]): s.value
            for f in text_string_to_metric_families(page) if f.name == "simsearch_requests"
            for s in f.samples if s.name == "simsearch_requests_total"}


@pytest.mark.integration
def test_a_server_counts_requests_by_method_and_code_and_serves_every_series_the_rules_use(tmp_path):
    port = free_port()
    server = start_server(tmp_path / "data", metrics_port=port, placement="local", durability="none")
    try:
        first = _scrape(port)
        before = _requests(first)
        deleted_before = sum(s.value for f in text_string_to_metric_families(first) for s in f.samples
                             if s.name == "simsearch_deleted_points_total" and s.labels.get("tenant") == "default")
        with Client(server.address, api_key=API_KEY) as c, \
                Client(server.address, api_key=API_KEY, stream=False) as unary:
            c.create_collection("met", dim=8, min_index_size=64)
            db = random_vectors(300, 8)
            c.upsert("met", [str(i) for i in range(300)], db)
            c.build_index("met")
            for _ in range(3):
                c.search("met", db[:2], k=5)  # SearchStream messages
            unary.search("met", db[:1], k=5)
            assert c.delete("met", ["0", "1", "2"]) == 3
            with pytest.raises(Exception, match="does not exist"):
                unary.search("nope", db[:1], k=5)
            with pytest.raises(Exception, match="does not exist"):
                c.search("nope", db[:1], k=5)
        with grpc.insecure_channel(server.address) as ch:  # past the SDK: a k the server must refuse
            stub = points_pb2_grpc.PointsStub(ch)
            req = points_pb2.SearchRequest(collection="met", k=100_000, queries=common_pb2.Matrix(
                rows=1, cols=8, data=np.zeros(8, np.float32).tobytes()))
            with pytest.raises(grpc.RpcError) as e:
                stub.Search(req, metadata=[("x-api-key", API_KEY)])
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as e:
                stub.Search(req, metadata=[("x-api-key", "wrong-key-0123456789")])
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        server.run(server.engine.shard_monitor.poll())

        want = {("SearchStream", "OK"): 3, ("Search", "OK"): 1, ("Search", "NOT_FOUND"): 1,
                ("SearchStream", "NOT_FOUND"): 1, ("Search", "INVALID_ARGUMENT"): 1, ("Search", "UNAUTHENTICATED"): 1,
                ("CreateCollection", "OK"): 1, ("Upsert", "OK"): 1, ("BuildIndex", "OK"): 1, ("Delete", "OK"): 1}
        deadline = time.monotonic() + 5
        while True:  # counted on the loop's turn after each reply: a moment after the caller has it
            page = _scrape(port)
            after = _requests(page)
            got = {key: after.get(key, 0) - before.get(key, 0) for key in want}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert got == want

        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(page) for s in f.samples}
        tenant = next(dict(labels)["tenant"] for (name, labels) in samples
                      if name == "simsearch_collection_search_seconds_count" and dict(labels)["collection"] == "met")
        coll = (("collection", "met"), ("tenant", tenant))
        assert samples[("simsearch_collection_search_seconds_count", coll)] == 4  # the OK ones
        assert samples[("simsearch_shard_available", tuple(sorted(dict(coll, shard="0").items())))] == 1
        assert samples[("simsearch_index_builds_total", coll)] >= 1
        assert samples[("simsearch_index_build_seconds_count", coll)] >= 1
        # counters are the process's: other tests in this process deleted points of the default tenant too
        assert samples[("simsearch_deleted_points_total", (("tenant", tenant),))] - deleted_before == 3
        assert samples[("simsearch_request_seconds_count", (("code", "NOT_FOUND"), ("method", "Search")))] >= 1
        missing = _names_used() - _defined(page)
        assert not missing
    finally:
        server.stop()
