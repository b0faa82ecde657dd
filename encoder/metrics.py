"""Retrieval metrics from pytorch-metric-learning's AccuracyCalculator (P@1, MAP@R,
R-precision, MRR) plus recall@K, computed with an exact torch k-NN (no faiss needed)."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

RECALL_KS = (1, 10)


class _Calculator(AccuracyCalculator):
    """Adds recall@K: the fraction of queries with at least one relevant item in the top K
    (the usual metric-learning / dense-retrieval definition)."""

    def __init__(self, recall_ks: tuple[int, ...], **kwargs) -> None:
        self.recall_ks = recall_ks
        for k in recall_ks:
            setattr(self, f"calculate_recall_at_{k}", self._recall_fn(k))
        super().__init__(**kwargs)

    def _recall_fn(self, k: int):
        def fn(knn_labels: torch.Tensor, query_labels: torch.Tensor, **_) -> float:
            hits = knn_labels[:, :k] == query_labels[:, None]  # (Q, k)
            return hits.any(1).float().mean().item()
        return fn

    def requires_knn(self) -> list[str]:
        return super().requires_knn() + ["mean_reciprocal_rank"] + [f"recall_at_{k}" for k in self.recall_ks]


def retrieval_metrics(query: np.ndarray, query_labels: np.ndarray, ref: np.ndarray, ref_labels: np.ndarray, *,
                      metric: str = "l2", ref_includes_query: bool = False,
                      recall_ks: tuple[int, ...] = RECALL_KS, device: str = "cpu") -> dict[str, float]:
    """Rank `ref` for every query. With ref_includes_query the query's own row (at rank 0)
    is skipped, as when a set is evaluated against itself. MAP@R uses R = the number of
    relevant references, so k-NN depth = the largest class (6,000 on Fashion-MNIST), and at
    least the largest K of recall@K (one relevant item per query still needs a top 10); MRR
    counts a relevant item found beyond that depth as 0."""
    distance = LpDistance(normalize_embeddings=False) if metric == "l2" else CosineSimilarity()
    calc = _Calculator(recall_ks, include=("precision_at_1", "mean_average_precision_at_r", "r_precision",
                                           "mean_reciprocal_rank", *[f"recall_at_{k}" for k in recall_ks]),
                       knn_func=CustomKNN(distance, batch_size=256), device=torch.device(device),
                       k=min(max(int(np.bincount(np.asarray(ref_labels)).max()), max(recall_ks)),
                             len(ref) - int(ref_includes_query)))
    t = lambda a: torch.from_numpy(np.require(a, requirements=["C", "W"])).to(device)  # noqa: E731
    out = calc.get_accuracy(t(query).float(), t(query_labels), t(ref).float(), t(ref_labels),
                            ref_includes_query=ref_includes_query)
    names = {"precision_at_1": "p@1", "mean_average_precision_at_r": "map@r", "r_precision": "r_precision",
             "mean_reciprocal_rank": "mrr", **{f"recall_at_{k}": f"r@{k}" for k in recall_ks}}
    return {names[key]: float(value) for key, value in out.items()}
