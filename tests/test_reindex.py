"""Reindexing a collection to another encoder version while it serves (issue 19, items 3 and 4), end to end over
gRPC with real encoder replicas: an image collection on a weak v1; v2 trained by `simsearch train` on what the
collection stores; the reindex to v2 under search and upsert load (no failed request, no lost write, the writes
made meanwhile embedded by v2); the gate promotes v2 on held-out labelled points and refuses a v3 trained for one
step, with its figures in `describe`; a canary; refusals before any work."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import API_KEY, serve_env, start_server

from simsearch import FailedPrecondition, InvalidArgument
from simsearch.client import Client
from simsearch.encoder import TrainConfig
from simsearch.encoder.data import digits_task
from simsearch.encoder.pipeline import train_and_register

pytestmark = pytest.mark.integration  # a real server, encoder replicas in Ray actors, the CLI in a subprocess

BASE = dict(name="digits", dataset="digits", backbone="cnn", loss="proxy-anchor", width=8, embedding_dim=32,
            batch_size=128, m_per_class=8, augment=False, num_threads=2)
ONE_STEP = TrainConfig(**BASE, epochs=1, max_steps_per_epoch=1)  # an encoder trained for one step: a poor one


@pytest.fixture(scope="module")
def digits():
    return digits_task(ONE_STEP)


@pytest.fixture(scope="module")
def served(tmp_path_factory, digits, ray_cluster):
    data = tmp_path_factory.mktemp("reindex-data")
    models = data / "models"
    train_and_register(ONE_STEP, root=models, task=digits, progress=False)  # digits@1: weak
    server = start_server(data)
    client = Client(server.address, api_key=API_KEY, timeout=600)
    yield server, client, models
    client.close()
    server.stop()


def _images(digits) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([digits.fit_x[:, 0], digits.test.ref_x[:, 0]])  # (N, 8, 8) uint8
    y = np.concatenate([digits.fit_y, digits.test.ref_y])
    return x, y


def _train_v2(server, models, tmp_path) -> str:
    """`simsearch train` on the collection's kept images, labelled by the training points' field."""
    cfg = {k: v for k, v in TrainConfig(**BASE, epochs=4).to_dict().items() if k not in ("dataset", "data")}
    config = tmp_path / "v2.json"
    config.write_text(json.dumps({**cfg, "data": {"format": "collection", "address": server.address,
                                                  "collection": "digits", "label_field": "train_digit",
                                                  "split": "item"}}))
    out = subprocess.run([sys.executable, "-m", "simsearch", "train", str(config), "--models-dir", str(models)],
                         env={**serve_env(), "SIMSEARCH_API_KEY": API_KEY}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout[out.stdout.index("{\n"):])["model"]


class Load:
    """Searches with raw images and upserts of new images, in threads, until stopped; what failed is kept (asserted
    by the test, not in the threads)."""

    def __init__(self, client: Client, queries: np.ndarray, new: np.ndarray):
        self.client, self.queries, self.new = client, queries, new
        self.search_errors: list[str] = []
        self.write_errors: list[str] = []
        self.searches = 0
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._search), threading.Thread(target=self._upsert)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)

    def _search(self) -> None:
        rng = np.random.default_rng(1)
        while not self.stop.is_set():
            try:
                self.client.search("digits", images=self.queries[rng.integers(len(self.queries), size=4)], k=5)
                self.searches += 1
            except Exception as e:  # noqa: BLE001 - counted, asserted by the test
                self.search_errors.append(repr(e))

    def _upsert(self) -> None:
        for start in range(0, len(self.new), 10):
            if self.stop.is_set():
                return
            ids = [f"new-{i}" for i in range(start, min(start + 10, len(self.new)))]
            try:
                self.client.upsert("digits", ids, images=self.new[start:start + 10],
                                   payloads=[{"digit": -1}] * len(ids))
                self.acknowledged += ids
            except Exception as e:  # noqa: BLE001
                self.write_errors.append(repr(e))
            time.sleep(0.05)


def test_reindex_under_load_promotes_a_better_encoder_and_refuses_a_worse_one(served, digits, tmp_path):
    server, client, models = served
    x, y = _images(digits)
    n = len(x)
    held_out = np.arange(n) % 3 == 0  # the gate's evaluation points: never trained on
    payloads = [{"digit": int(d), "split": "eval"} if h else {"digit": int(d), "train_digit": int(d), "split": "train"}
                for d, h in zip(y, held_out)]
    client.create_collection("digits", encoder="digits@1", shards=2)
    client.upsert("digits", [str(i) for i in range(n)], images=x, payloads=payloads)
    v2 = _train_v2(server, models, tmp_path)
    assert v2 == "digits@2"
    train_and_register(ONE_STEP.replace(seed=7), root=models, task=digits, progress=False)  # digits@3: one step

    with pytest.raises(InvalidArgument, match="label_field"):
        client.reindex("digits", v2)  # no labels named, no skip_gate: refused before any work
    with pytest.raises(InvalidArgument, match="canary_fraction"):
        client.reindex("digits", v2, label_field="digit", canary_fraction=0.9)
    with pytest.raises(FailedPrecondition, match="already embedded"):
        client.reindex("digits", "digits@1", label_field="digit")
    assert client.describe_collection("digits").reindex == []

    rng = np.random.default_rng(0)
    new = x[rng.integers(n, size=200)]
    with Load(client, x[held_out][:200], new) as load:
        time.sleep(1.0)
        job = client.reindex("digits", v2, label_field="digit", eval_filter={"split": "eval"}, batch=64)
        assert job.state == "building" and job.generation == 1
        with pytest.raises(FailedPrecondition, match="already being reindexed"):
            client.reindex("digits", "digits@3", label_field="digit")
        with pytest.raises(FailedPrecondition, match="raw inputs"):  # a bare vector cannot be re-embedded
            client.upsert("digits", ["vec"], np.ones((1, 32), np.float32), encoder="digits@1")
        client.delete("digits", ["1", "2"])  # deleted during the backfill: gone from both generations
        done = client.wait_reindex("digits", timeout=300)
        time.sleep(1.0)  # writes and searches go on after the promotion
    assert load.search_errors == [] and load.write_errors == []
    assert load.searches > 20 and len(load.acknowledged) > 20
    assert done.state == "promoted", done
    d = done.decision
    assert d["passed"] and d["candidate"]["p_at_1"] >= d["current"]["p_at_1"]
    assert d["candidate"]["map_at_r"] > d["current"]["map_at_r"] + 0.05, d  # v2 was trained, v1 took one step
    assert 100 <= d["eval_queries"] <= 500
    assert d["live_queries"] > 0 and 0.0 <= d["live_overlap"] <= 1.0

    info = client.describe_collection("digits")
    assert (info.encoder, info.embedding_generation) == ("digits@2", 1)
    assert info.points == n - 2 + len(set(load.acknowledged))
    got = client.get("digits", load.acknowledged + ["0", "1", "2"])
    assert set(got.missing) == {"1", "2"}  # every acknowledged write is there; the deleted points are not
    # the writes made during the backfill were embedded by v2 (what the new generation holds)
    want = client.embed(v2, images=new[:len(load.acknowledged)]).vectors
    np.testing.assert_allclose(got.vectors[:len(load.acknowledged)], want, atol=1e-4)
    res = client.search("digits", images=x[held_out][:50], k=2)  # raw inputs now embedded by v2
    assert res.ids.shape == (50, 2)

    worse = client.reindex("digits", "digits@3", label_field="digit", eval_filter={"split": "eval"})
    assert worse.generation == 2
    refused = client.wait_reindex("digits", timeout=300)
    assert refused.state == "refused" and not refused.passed
    assert "not good enough" in refused.reason and refused.decision["candidate"]["map_at_r"] < \
        refused.decision["current"]["map_at_r"]
    info = client.describe_collection("digits")
    assert (info.encoder, info.embedding_generation) == ("digits@2", 1)  # still v2
    assert [j.state for j in info.reindex] == ["refused", "promoted"]
    assert info.reindex[1].decision["candidate"] == d["candidate"]  # every decision kept with its figures
    gens = sorted(p.name for p in (server.config.data_dir / "tenants" / "default").glob("digits-*/gen-*"))
    assert gens == ["gen-1"]  # the refused generation's files are gone


def test_a_canary_serves_part_of_the_searches_then_promotes(served, digits):
    """After the gate, a canary sends a share of raw-input searches to the new generation for canary_seconds and
    promotes when neither errors nor latency regressed; its figures are recorded."""
    _, client, models = served
    x, y = _images(digits)
    client.create_collection("canary", encoder="digits@1")
    client.upsert("canary", [str(i) for i in range(400)], images=x[:400], payloads=[{"digit": int(d)} for d in y[:400]])
    job = client.reindex("canary", "digits@2", label_field="digit", canary_fraction=0.5, canary_seconds=4, min_gain=-1)
    deadline = time.monotonic() + 300
    searched = 0
    while not client.get_reindex("canary").done and time.monotonic() < deadline:
        client.search("canary", images=x[:2], k=3)
        searched += 1
    status = client.get_reindex("canary")
    assert job.generation == 1 and status.state == "promoted", status
    canary = status.decision["canary"]
    assert canary["passed"] and canary["canary_searches"] > 0 and canary["current_searches"] > 0
    assert canary["canary_error_rate"] == 0.0
    assert client.describe_collection("canary").encoder == "digits@2"


def test_a_reindex_killed_mid_build_resumes_after_restart(tmp_path, digits):
    """SIGKILL the server while the backfill runs, right after writes that were mirrored to both generations were
    acknowledged; the restarted server resumes the job from its cursor and promotes it, with every write kept."""
    from conftest import serve_process

    from simsearch.encoder import load

    data = tmp_path / "data"
    models = data / "models"
    train_and_register(ONE_STEP, root=models, task=digits, progress=False)  # digits@1
    train_and_register(TrainConfig(**BASE, epochs=2), root=models, task=digits, progress=False)  # digits@2
    x, y = _images(digits)
    new = x[:30][::-1].copy()
    with serve_process(data) as run:
        with Client(run.address, api_key=API_KEY, timeout=600) as client:
            client.create_collection("c", encoder="digits@1", shards=2)
            client.upsert("c", [str(i) for i in range(len(x))], images=x, payloads=[{"d": int(v)} for v in y])
            client.reindex("c", "digits@2", label_field="d", batch=8)
            while client.get_reindex("c").copied < 300:
                time.sleep(0.05)
            client.upsert("c", [f"new-{i}" for i in range(len(new))], images=new)  # acknowledged: on both
            client.delete("c", ["5"])
            copied = client.get_reindex("c").copied
        run.proc.kill()
        run.proc.wait(30)
    assert copied < len(x)  # killed mid-build
    with serve_process(data) as run:
        with Client(run.address, api_key=API_KEY, timeout=600) as client:
            done = client.wait_reindex("c", timeout=300)
            got = client.get("c", [f"new-{i}" for i in range(len(new))] + ["5", "6"])
            info = client.describe_collection("c")
        status = subprocess.run([sys.executable, "-m", "simsearch", "reindex", "c", "--status", "--address",
                                 run.address], env={**serve_env(), "SIMSEARCH_API_KEY": API_KEY}, capture_output=True,
                                text=True, timeout=120)
    assert done.state == "promoted" and done.copied >= len(x) - copied, done
    assert info.encoder == "digits@2" and info.points == len(x) - 1 + len(new)
    assert got.missing == ["5"]
    want = load("digits@2", models).embed(new[:, None])
    np.testing.assert_allclose(got.vectors[:len(new)], want, atol=1e-4)
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "promoted", status.stderr
