"""Metric-learning encoders: train (pytorch-metric-learning), evaluate, check health and
drift, version in a registry, and load artefacts that need no training code.

Plain PyTorch: nothing here imports Ray or gRPC (Ray Train lives in simsearch.cluster)."""

from simsearch.encoder.config import TrainConfig
from simsearch.encoder.drift import DriftReport, drift_score
from simsearch.encoder.health import EmbeddingHealth, embedding_health
from simsearch.encoder.metrics import retrieval_metrics
from simsearch.encoder.registry import LoadedEncoder, list_models, load
from simsearch.encoder.trainer import TrainResult, train

__all__ = ["DriftReport", "EmbeddingHealth", "LoadedEncoder", "TrainConfig", "TrainResult", "drift_score",
           "embedding_health", "list_models", "load", "retrieval_metrics", "train"]
