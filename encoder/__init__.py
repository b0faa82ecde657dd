"""Metric-learning encoders: train (pytorch-metric-learning), evaluate, check health and
drift, version in a registry, and load artefacts that need no training code.

Plain PyTorch: nothing here imports Ray or gRPC (Ray Train lives in simsearch.cluster).
The names below load on first use (PEP 562), so `simsearch.encoder.manifests` and
`simsearch.encoder.inputs`, which the router needs, do not import torch."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "DriftReport": "drift", "drift_score": "drift", "EmbeddingHealth": "health",
    "embedding_health": "health", "retrieval_metrics": "metrics", "LoadedEncoder": "registry",
    "list_models": "registry", "load": "registry", "TrainResult": "trainer", "train": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'simsearch.encoder' has no attribute {name!r}")
    return getattr(importlib.import_module(f"simsearch.encoder.{_EXPORTS[name]}"), name)
