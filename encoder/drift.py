"""Drift between two embedding sets (e.g. last month's queries vs today's): two-sample
Kolmogorov-Smirnov statistics along random projections, with a threshold that has a meaning.

score = the largest KS distance between the two sets' distributions along `projections`
random unit directions (0 = identical, 1 = disjoint). threshold = the KS critical value at
significance `alpha`, Bonferroni-corrected over the directions: two samples of the SAME
distribution exceed it with probability <= alpha. drifted = score > threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DriftReport:
    score: float
    threshold: float
    drifted: bool
    p_value: float  # Bonferroni-corrected, of the worst direction
    projections: int


def drift_score(a: np.ndarray, b: np.ndarray, *, projections: int = 32, alpha: float = 0.01,
                seed: int = 0) -> DriftReport:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) sets with the same D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("each set needs at least 2 embeddings")
    dirs = np.random.default_rng(seed).normal(size=(a.shape[1], projections))
    dirs /= np.linalg.norm(dirs, axis=0)
    res = stats.ks_2samp(a @ dirs, b @ dirs, axis=0)  # one test per direction, vectorised
    worst = int(np.argmax(res.statistic))
    n, m = len(a), len(b)
    crit = np.sqrt(-np.log(alpha / projections / 2) / 2) * np.sqrt((n + m) / (n * m))
    score = float(res.statistic[worst])
    return DriftReport(score, float(crit), bool(score > crit), float(min(1.0, res.pvalue[worst] * projections)),
                       projections)
