"""Train -> evaluate on the held-out test protocol -> check embedding health -> register:
the one path the CLI, Ray Train and the report share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simsearch.encoder import registry
from simsearch.encoder.config import TrainConfig
from simsearch.encoder.data import Task, load_task
from simsearch.encoder.feedback import FeedbackSet
from simsearch.encoder.health import embedding_health
from simsearch.encoder.metrics import retrieval_metrics
from simsearch.encoder.trainer import TrainResult, embed, evaluate, train


def test_metrics(result: TrainResult, task: Task) -> dict[str, Any]:
    """Test-split retrieval metrics plus health of the reference embeddings."""
    metrics: dict[str, Any] = dict(evaluate(result.model, task.test))
    ref = embed(result.model, task.test.ref_x[:20_000])
    metrics["health"] = embedding_health(ref).summary()
    metrics["best_epoch"] = result.best_epoch
    metrics["train_wall_s"] = result.wall_s
    return metrics


def register(result: TrainResult, task: Task, metrics: dict[str, Any], root: Path | None = None) -> str:
    return registry.save(result.model, name=result.config.name, kind=task.kind, input_shape=task.input_shape,
                         config=result.config.to_dict(), fingerprint=result.fingerprint, metrics=metrics,
                         history=result.history, root=root)


def train_and_register(cfg: TrainConfig, *, root: Path | None = None, progress: bool = True,
                       task: Task | None = None, feedback: FeedbackSet | None = None
                       ) -> tuple[str, dict[str, Any], TrainResult]:
    """On the user's own data (`data:`), the metrics carry the raw-pixel baseline on the same test
    protocol ("baseline"), so the output says whether training helped. feedback: a collection's feedback
    events (encoder/feedback.py); what was mined from them is recorded in the metrics ("feedback")."""
    task = task if task is not None else load_task(cfg)
    init_state = None
    if cfg.init_from:
        start, _, init_state = registry.checkpoint(cfg.init_from, root)
        cfg = cfg.replace(init_from=start)  # the version it started from, recorded with the new one
    result = train(cfg, task=task, progress=progress, init_state=init_state, feedback=feedback)
    metrics = test_metrics(result, task)
    if result.feedback:
        metrics["feedback"] = result.feedback
    if cfg.data is not None:
        metrics["baseline"] = raw_baselines(task, seed=cfg.seed)["raw"]
    return register(result, task, metrics, root), metrics, result


def evaluate_on_data(ref: str, source: dict[str, Any], *, root: Path | None = None, seed: int = 0,
                     val_fraction: float = 0.1, task: Task | None = None) -> dict[str, Any]:
    """Score a registered encoder on the user's own data (a `data:` mapping: encoder/sources.py), on the
    test part its training config's seed carves (the held-out classes, by default), beside the raw pixels."""
    from simsearch.encoder.sources import DataSource, load_source

    model = registry.load(ref, root)
    if task is None:  # a collection's task is read by the caller (through the SDK)
        task = load_source(DataSource.from_dict(source), val_fraction=val_fraction, seed=seed)
    if tuple(task.input_shape) != model.input_shape:
        raise ValueError(f"{ref} takes inputs of shape {model.input_shape}; this data has {task.input_shape} "
                         f"(set data.image_size / data.grayscale as in its training config)")
    q, ref_emb = model.embed_array(task.test.query_x), model.embed_array(task.test.ref_x)
    return {"model": model.ref, "data": source, "queries": len(q), "references": len(ref_emb),
            "encoder": retrieval_metrics(q, task.test.query_y, ref_emb, task.test.ref_y, metric="cosine"),
            "baseline": raw_baselines(task, seed=seed)["raw"],
            "health": embedding_health(ref_emb[:20_000]).summary()}


def evaluate_registered(ref: str, dataset: str, *, root: Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Score a registered artefact (no training code involved) on a dataset's test protocol."""
    model = registry.load(ref, root)
    backbone = "minilm" if dataset == "text-pairs" else "cnn"
    own_minilm = model.kind == "text" and model.text_model is not None  # trained with LoRA: it takes token ids
    task = load_task(TrainConfig(dataset=dataset, backbone=backbone, seed=seed,
                                 embedding_dim=384 if backbone == "minilm" else 128,
                                 adapter="lora" if own_minilm and backbone == "minilm" else "head"))
    if tuple(task.input_shape) != model.input_shape and not (own_minilm and task.kind == "text"):
        raise ValueError(f"{ref} takes inputs of shape {model.input_shape}; dataset {dataset!r} has {task.input_shape}")
    q, ref_emb = model.embed_array(task.test.query_x), model.embed_array(task.test.ref_x)
    out: dict[str, Any] = retrieval_metrics(q, task.test.query_y, ref_emb, task.test.ref_y, metric="cosine")
    out["health"] = embedding_health(ref_emb[:20_000]).summary()
    out["model"] = model.ref
    return out


def raw_baselines(task: Task, *, pca_dims: int = 64, seed: int = 0) -> dict[str, dict[str, float]]:
    """Untrained references on the same protocol: raw inputs (l2) and PCA of them (l2)."""
    from sklearn.decomposition import PCA

    q = task.test.query_x.reshape(len(task.test.query_x), -1).astype(np.float32)
    ref = task.test.ref_x.reshape(len(task.test.ref_x), -1).astype(np.float32)
    metric = "cosine" if task.kind == "text" else "l2"
    out = {"raw": retrieval_metrics(q, task.test.query_y, ref, task.test.ref_y, metric=metric)}
    pca = PCA(n_components=min(pca_dims, q.shape[1]), random_state=seed).fit(ref)
    out[f"pca-{pca.n_components_}"] = retrieval_metrics(pca.transform(q).astype(np.float32), task.test.query_y,
                                                        pca.transform(ref).astype(np.float32), task.test.ref_y,
                                                        metric=metric)
    return out
