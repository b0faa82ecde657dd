"""Smoke test of the benchmark suite on a tiny synthetic dataset: every system (raw ScaNN, the
simsearch server in its own process, numpy, hnswlib, faiss, Milvus Lite, Chroma's server)
runs through the same sweep and the outputs are written. Speed is not asserted here (that is
what the benchmark is for); correctness of what it measures is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simsearch import datasets as D
from simsearch.bench.measure import best_at
from simsearch.bench.run import SYSTEMS, main


def test_exact_ground_truth_matches_a_direct_float64_computation() -> None:
    ds = D.synthetic_gmm(1500, 16, queries=40, seed=3)
    gt = D.exact_neighbors(ds.train, ds.test, k=5, chunk=7)
    d = ((ds.test[:, None, :].astype(np.float64) - ds.train[None].astype(np.float64)) ** 2).sum(-1)
    assert np.array_equal(gt, np.argsort(d, axis=1, kind="stable")[:, :5])
    assert ds.synthetic and ds.name == "synthetic-gmm-16-1500"


def test_recall_counts_overlap_and_ignores_padding() -> None:
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert D.recall_at(np.array([[3, 2, 1], [4, -1, -1]]), truth, 3) == pytest.approx(4 / 6)


def test_sizes_parse() -> None:
    assert [D.parse_size(s) for s in ("100k", "1m", "2500", "0.5m")] == [100_000, 1_000_000, 2500, 500_000]


@pytest.mark.integration  # the simsearch server, Milvus Lite and Chroma run as subprocesses
def test_bench_runs_every_system_and_writes_its_outputs(tmp_path) -> None:
    assert main(["--dataset", "tiny", "--queries", "200", "--single", "40", "--clients", "1,4", "--ingest-rounds", "2",
                 "--out", str(tmp_path)]) == 0
    name = "synthetic-gmm-32-4k"
    result = json.loads((tmp_path / f"bench-{name}.json").read_text())
    assert result["dataset"]["synthetic"] is True
    by_kind = {s["kind"]: s for s in result["systems"]}
    assert len(result["systems"]) == len(SYSTEMS)
    for s in result["systems"]:
        assert s["points"], s["name"]
        assert all(p["batched_qps"] > 0 and p["single"]["p50_ms"] > 0 for p in s["points"])
        assert s["build_s"] > 0 and s["ingest_rows_per_s"] > 0
        # every system's best setting finds most true neighbours: the ids really map back to rows
        assert max(p["recall"] for p in s["points"]) > 0.9, s["name"]
    assert by_kind["floor"]["points"][0]["recall"] == 1.0  # exact search agrees with the float64 ground truth
    assert best_at(by_kind["simsearch"]["points"], 0.9) is not None
    extra = result["simsearch_extra"]
    assert [c["clients"] for c in extra["concurrency"]] == [1, 4]
    assert extra["cache"]["hit"]["n"] > 0 and extra["cache"]["miss"]["n"] > 0
    assert set(extra["transports"]) == {"unary", "stream"}
    assert all(t["n"] > 0 and t["p50_ms"] > 0 for t in extra["transports"].values())
    # fsync against none at ingest: both modes timed twice, alternating, the whole database each time
    ingest = result["durability_ingest"]
    assert [r["durability"] for r in ingest["runs"]] == ["fsync", "none", "none", "fsync"]
    assert all(r["vectors_per_s"] > 0 for r in ingest["runs"]) and ingest["vectors"] == 4000
    assert ingest["fsync_over_none"] > 0 and ingest["batch_rows"] > 0
    # memory per stored point: the server's against raw ScaNN's, measured in a clean process
    memory = result["memory"]
    assert memory["points"] == 4000 and memory["float32_bytes_per_point"] == 32 * 4
    assert memory["raw_scann"]["bytes_per_point"] > 0 and memory["simsearch"]["bytes_per_point"] > 0
    assert memory["simsearch_over_raw"] > 0
    table = (tmp_path / f"bench-{name}.md").read_text()
    assert "| 0.95 | simsearch" in table and "(synthetic)" in table
    assert "Ingest fsync / none:" in table and "Server memory per point / raw ScaNN's:" in table
    for png in (f"recall-qps-{name}.png", f"latency-cdf-{name}.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration  # the simsearch server as a subprocess
def test_scale_sweep_reports_growth(tmp_path) -> None:
    assert main(["--scale", "--sizes", "3000,6000", "--shards", "1,2", "--queries", "100", "--single", "30",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "scale-synthetic.json").read_text())
    assert {(r["system"], r["shards"], r["n"]) for r in result["rows"]} == {
        (sys, s, n) for n in (3000, 6000) for sys, s in (("raw ScaNN", 1), ("simsearch", 1), ("simsearch", 2))}
    assert all(r["recall"] > 0.8 for r in result["rows"])
    assert set(result["growth"]) == {"raw ScaNN x1", "simsearch x1", "simsearch x2"}
    assert (tmp_path / "scale-synthetic.png").exists()


@pytest.mark.integration  # simsearch serve subprocesses, stopped with SIGTERM and SIGKILL
def test_restart_time_script_reports_clean_and_kill_restarts(tmp_path) -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "restart_time.py"
    out = tmp_path / "restart.json"
    subprocess.run([sys.executable, str(script), "--points", "3000", "--log-tail", "500", "--restarts", "1",
                    "--dim", "16", "--work-dir", str(tmp_path), "--json", str(out)], check=True, timeout=300)
    result = json.loads(out.read_text())
    clean, killed = result["restarts"]
    assert clean["after"] == "clean stop" and killed["after"] == "kill -9"
    # a clean stop checkpoints everything; after kill -9 the tail comes back from the log
    assert (clean["checkpoint_rows"], clean["log_records"]) == (3000, 0)
    assert killed["checkpoint_rows"] == 3000 and killed["log_records"] >= 1
    for r in (clean, killed):
        assert 0 < r["listening_s"] <= r["answered_s"] and r["restore_s"] >= 0 and r["rss_bytes"] > 0


# ---- simsearch bench --filtered ----


def test_filtered_payloads_give_filters_near_their_target_selectivities() -> None:
    from simsearch.bench import filtered as F

    payloads = F.make_payloads(20_000, np.arange(20_000) % 10, seed=0)
    assert payloads == F.make_payloads(20_000, np.arange(20_000) % 10, seed=0)  # seeded
    p = payloads[0]
    assert set(p) == {"label", "category", "price", "tags"} and 1 <= len(p["tags"]) <= 3
    assert len(set(p["tags"])) == len(p["tags"]) and isinstance(p["price"], float)
    filters = F.choose_filters(payloads)
    assert [f["key"] for f in filters] == ["50%", "10%", "1%", "0.1%", "2-cond", "label", "tag"]
    masks = F.filter_masks(filters, payloads)
    for f, m in zip(filters, masks):
        if f["target"] is not None:  # within a factor 1.5 of the target: a category is a whole number of points
            assert f["target"] / 1.5 <= m.mean() <= f["target"] * 1.5, (f["key"], m.mean())
    assert masks[5].mean() == 0.1  # label 7 of labels 0..9


def test_filtered_truth_is_the_exact_top_k_among_passing_points() -> None:
    from simsearch.bench import filtered as F

    ds = D.synthetic_gmm(600, 8, queries=20, seed=5)
    rng = np.random.default_rng(1)
    for passing in (300, 7):  # more than k pass; fewer than k pass (padded with -1)
        mask = np.zeros(600, bool)
        mask[rng.choice(600, passing, replace=False)] = True
        truth = F.filtered_truth(ds, mask, 10)
        d = ((ds.test[:, None, :].astype(np.float64) - ds.train[None].astype(np.float64)) ** 2).sum(-1)
        d[:, ~mask] = np.inf
        want = np.argsort(d, axis=1, kind="stable")[:, :min(10, passing)]
        assert np.array_equal(truth[:, :want.shape[1]], want)
        assert (truth[:, want.shape[1]:] == -1).all()
        assert F.recall(truth, truth) == 1.0 and F.violations(truth, mask, 10) == (0, 0)
    found = truth.copy()
    found[:, 0] = np.flatnonzero(~mask)[0]  # a hit that fails the filter, in place of a true one
    assert F.violations(found, mask, 10) == (20, 0) and F.recall(found, truth) == pytest.approx(6 / 7)


def test_filters_translate_to_chroma_where_and_milvus_expressions() -> None:
    from simsearch.bench import filtered as F
    from simsearch.contract.filters import parse

    two = parse({"category": {"$in": ["a", "b"]}, "price": {"$gte": 10.5, "$lt": 20}})
    assert F.to_chroma(two) == {"$and": [{"category": {"$in": ["a", "b"]}}, {"price": {"$gte": 10.5}},
                                         {"price": {"$lt": 20}}]}
    assert F.to_milvus(two) == '(category in ["a", "b"]) and (price >= 10.5) and (price < 20)'
    assert F.to_chroma(parse({"label": 7})) == {"label": {"$eq": 7}}
    assert F.to_milvus(parse({"label": 7})) == "label == 7"
    assert F.to_chroma(parse({"tags": {"$contains": "t1"}})) == {"tags": {"$contains": "t1"}}
    assert F.to_milvus(parse({"tags": {"$contains": "t1"}})) == 'array_contains(tags, "t1")'
    assert F.to_milvus(parse({"$or": [{"a": True}, {"$not": {"b": {"$nin": [1, 2]}}}]})) == \
        "(a == true) or (not (b not in [1, 2]))"


def test_post_filter_keeps_the_first_k_passing_hits_in_rank_order() -> None:
    from simsearch.bench import filtered as F

    mask = np.array([True, False, True, True, False, True])
    case = F.Case("x", {"any": 1}, mask, np.zeros((1, 2), np.int64))
    rows = np.array([[1, 3, 4, 0, 2, -1], [4, 1, 5, -1, -1, -1]])
    assert F.PostFilterScann()._keep(rows, case, 2).tolist() == [[3, 0], [5, -1]]


@pytest.mark.integration  # the simsearch server as a subprocess
def test_filtered_bench_runs_simsearch_and_post_filtered_scann(tmp_path) -> None:
    assert main(["--filtered", "--dataset", "tiny", "--systems", "simsearch,raw-scann", "--queries", "100",
                 "--single", "20", "--rounds", "1", "--out", str(tmp_path)]) == 0
    name = "synthetic-gmm-32-4k"
    result = json.loads((tmp_path / f"bench-filtered-{name}.json").read_text())
    keys = ["50%", "10%", "1%", "0.1%", "2-cond", "label", "tag"]
    assert [f["key"] for f in result["filters"]] == keys
    assert [s["name"] for s in result["systems"]] == [
        "simsearch (gRPC, SDK)", "raw ScaNN + post-filter (k x 10)", "raw ScaNN + post-filter (k x 100)"]
    for s in result["systems"]:
        assert [r["filter"] for r in s["rows"]] == keys
        assert s["unfiltered"]["recall"] > 0.9 and s["unfiltered"]["batched_qps"] > 0
        for r in s["rows"]:
            assert r["wrong_hits"] == 0, (s["name"], r["filter"])  # every hit passes its filter
            assert r["batched_qps"] > 0 and r["single"]["p50_ms"] > 0 and r["qps_over_unfiltered"] > 0
    sim = result["systems"][0]
    for r in sim["rows"]:  # the guarantee: never short when k pass, the exact neighbours found
        assert r["short_lists"] == 0 and r["recall"] > 0.9, r["filter"]
        assert r["shard_paths"]["single"] and r["shard_paths"]["batched"]
    assert set(result["summary"]) == {s["name"] for s in result["systems"]}
    table = (tmp_path / f"bench-filtered-{name}.md").read_text()
    assert "| 0.1% |" in table and "| simsearch (gRPC, SDK) |" in table
    assert (tmp_path / f"filtered-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_filtered_bench_records_a_failed_batched_request_and_measures_recall_one_per_call() -> None:
    from simsearch.bench import filtered as F

    ds = D.synthetic_gmm(300, 4, queries=40, seed=2)
    mask = np.arange(300) % 2 == 0
    case = F.Case.of("half", {"x": 1}, mask, F.filtered_truth(ds, mask, 5))

    class Flaky:  # exact answers one per call; every batched request fails, as a deadline would
        def search_batch(self, queries, k, case):
            raise TimeoutError("DEADLINE_EXCEEDED")

        def search_one(self, query, k, case):
            d = ((ds.train.astype(np.float64) - query) ** 2).sum(1)
            d[~case.mask] = np.inf
            return np.argsort(d, kind="stable")[:k]

    row = F._first_pass(Flaky(), ds, case, 5, 30, 10.0)
    assert row["batched_error"].startswith("TimeoutError: DEADLINE_EXCEEDED") and row["batched_qps_runs"] == []
    assert row["recall"] == 1.0 and row["recall_from"].startswith("30 queries one per call")
    assert (row["wrong_hits"], row["short_lists"]) == (0, 0) and row["single"]["n"] == 30
