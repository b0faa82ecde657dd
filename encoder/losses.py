"""Training objectives composed from pytorch-metric-learning: each loss name maps to a PML
loss (plus its miner and cross-batch memory where the recipe calls for one)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch_metric_learning import losses, miners
from torch import nn

from simsearch.encoder.config import TrainConfig


@dataclass
class Objective:
    """loss(embeddings, labels); `params` are the loss's own weights (proxies, classifier)."""

    metric: nn.Module
    miner: nn.Module | None = None
    classifier: nn.Module | None = None
    classification_weight: float = 0.0

    def __call__(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # emb (B, D), labels (B,)
        if isinstance(self.metric, losses.CrossBatchMemory):
            loss = self.metric(emb, labels)  # the memory mines across batches itself
        else:
            pairs = self.miner(emb, labels) if self.miner is not None else None
            loss = self.metric(emb, labels, pairs)
        if self.classifier is not None:
            loss = loss + self.classification_weight * self.classifier(emb, labels)
        return loss

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.metric, self.classifier) if m is not None]

    def params(self) -> list[nn.Parameter]:
        return [p for m in self.modules() for p in m.parameters()]


def _metric(name: str, cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, nn.Module | None]:
    dim = cfg.embedding_dim
    if name == "contrastive":
        return losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0 - cfg.margin), None
    if name == "triplet-batch-hard":
        return losses.TripletMarginLoss(margin=cfg.margin), miners.BatchHardMiner()
    if name == "triplet-semihard":
        return (losses.TripletMarginLoss(margin=cfg.margin),
                miners.TripletMarginMiner(margin=cfg.margin, type_of_triplets="semihard"))
    if name == "proxy-anchor":
        return losses.ProxyAnchorLoss(num_classes, dim, margin=0.1, alpha=32), None
    if name == "proxy-nca":
        return losses.ProxyNCALoss(num_classes, dim, softmax_scale=1.0 / cfg.temperature), None
    inner = losses.NTXentLoss(cfg.temperature) if name == "ntxent" else losses.SupConLoss(cfg.temperature)
    if cfg.memory_size:
        return losses.CrossBatchMemory(inner, dim, memory_size=cfg.memory_size), None
    return inner, None


def build_objective(cfg: TrainConfig, num_classes: int) -> Objective:
    if cfg.loss != "hybrid":
        metric, miner = _metric(cfg.loss, cfg, num_classes)
        return Objective(metric, miner)
    metric, miner = _metric(cfg.hybrid_metric_loss, cfg, num_classes)
    return Objective(metric, miner, _classifier(cfg, num_classes), cfg.classification_weight)


def _classifier(cfg: TrainConfig, num_classes: int) -> nn.Module:
    dim = cfg.embedding_dim
    if cfg.classifier == "cosface":
        return losses.CosFaceLoss(num_classes, dim, margin=0.35, scale=30)
    if cfg.classifier == "arcface":
        return losses.ArcFaceLoss(num_classes, dim, margin=28.6, scale=30)  # margin in degrees (0.5 rad)
    return losses.NormalizedSoftmaxLoss(num_classes, dim, temperature=0.05)
