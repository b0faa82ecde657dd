"""Encoders through Ray Train (2 local workers, DDP) and through the `simsearch` command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from simsearch.cluster.train import train_on_ray
from simsearch.encoder import TrainConfig, load
from simsearch.encoder.metrics import retrieval_metrics

SMALL = TrainConfig(name="digits-ray", dataset="digits", backbone="cnn", loss="hybrid", width=8, embedding_dim=32,
                    epochs=2, batch_size=64, m_per_class=8, augment=False, num_threads=1)


def test_ray_train_two_workers_registers_a_loadable_model(tmp_path, ray_cluster):
    ref, metrics = train_on_ray(SMALL, num_workers=2, cpus_per_worker=0.5, storage_path=tmp_path / "ray",
                                root=tmp_path / "models")
    assert ref == "digits-ray@1" and metrics["ray_workers"] == 2
    model = load(ref, tmp_path / "models")
    assert len(json.loads((tmp_path / "models/digits-ray/1/history.json").read_text())) == 2
    assert 0.3 < metrics["p@1"] <= 1.0  # learned something in two short epochs of half the batches each
    assert model.manifest["metrics"]["p@1"] == metrics["p@1"]


@pytest.mark.integration  # the CLI as subprocesses
def test_cli_train_list_eval(tmp_path):
    cfg = tmp_path / "digits.yaml"
    cfg.write_text("name: cli-digits\ndataset: digits\nbackbone: mlp\nloss: proxy-anchor\nwidth: 64\n"
                   "embedding_dim: 16\nepochs: 2\nbatch_size: 64\nm_per_class: 8\naugment: false\n")
    models = tmp_path / "models"
    run = lambda *a: subprocess.run([sys.executable, "-m", "simsearch", *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=300)
    trained = run("train", str(cfg), "--models-dir", str(models))
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = json.loads(trained.stdout[trained.stdout.index("{"):])
    assert out["model"] == "cli-digits@1"
    listed = run("models", "list", "--models-dir", str(models))
    assert listed.returncode == 0 and listed.stdout.startswith("cli-digits@1\timage\tdim=16"), listed.stdout
    scored = run("eval", "cli-digits@1", "--dataset", "digits", "--models-dir", str(models))
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert json.loads(scored.stdout)["p@1"] == out["metrics"]["p@1"]
    bad = run("eval", "cli-digits@9", "--dataset", "digits", "--models-dir", str(models))
    assert bad.returncode != 0 and "cli-digits@9" in bad.stderr


def test_recall_at_k_and_mrr_match_a_numpy_reference():
    """One relevant document per query (PML's default k would be 1 here and hide R@10)."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(300, 8)).astype(np.float32)
    d = q + rng.normal(size=q.shape).astype(np.float32) * 1.0
    labels = np.arange(300)
    m = retrieval_metrics(q, labels, d, labels, metric="cosine")
    qn, dn = q / np.linalg.norm(q, axis=1, keepdims=True), d / np.linalg.norm(d, axis=1, keepdims=True)
    sims = qn @ dn.T
    rank = (sims > sims[labels, labels][:, None]).sum(1)  # 0 = the relevant document is first
    assert abs(m["r@1"] - np.mean(rank < 1)) < 1e-6 and abs(m["r@10"] - np.mean(rank < 10)) < 1e-6
    assert abs(m["mrr"] - np.mean(np.where(rank < 10, 1 / (rank + 1), 0))) < 1e-6  # MRR over the k-NN depth
    assert 0.1 < m["r@1"] < m["r@10"] < 1.0  # a case where the three differ
