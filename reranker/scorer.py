"""The re-ranking interface: exact scoring now, a learned scorer can plug in later.

A shard hands its scorer the queries and the coarse candidates' full-precision vectors;
the scorer returns distances (smaller is closer). `ExactScorer` is the metric itself; a
learned scorer (e.g. a small MLP over (query, candidate) pairs) implements the same
protocol and is chosen per collection.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from simsearch.reranker.kernels import candidate_distance, pairwise_distance


class Scorer(Protocol):
    def score_candidates(self, queries: np.ndarray, cands: np.ndarray) -> np.ndarray:
        """queries (n, d), cands (n, c, d) -> distances (n, c)."""
        ...

    def score_all(self, queries: np.ndarray, points: np.ndarray) -> np.ndarray:
        """queries (n, d), points (m, d) -> distances (n, m)."""
        ...


class ExactScorer:
    """Exact metric distances on full-precision vectors."""

    def __init__(self, metric: str):
        self.metric = metric

    def score_candidates(self, queries: np.ndarray, cands: np.ndarray) -> np.ndarray:
        return candidate_distance(queries, cands, self.metric)

    def score_all(self, queries: np.ndarray, points: np.ndarray) -> np.ndarray:
        return pairwise_distance(queries, points, self.metric)
