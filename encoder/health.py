"""Embedding health: is the space still spread out? A collapsed encoder (everything mapped
to one point, or onto a line) still returns vectors, so it needs an explicit alarm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Alarm thresholds, documented in docs/architecture.md:
# - spread = mean squared distance to the centroid of the L2-normalised embeddings, in [0, 2];
#   i.i.d. directions give ~1, a collapsed model ~0.
# - effective rank = exp(entropy of the normalised covariance eigenvalues): how many
#   directions carry the variance. A 10-class embedding uses >= ~9; a collapsed one ~1.
MIN_SPREAD = 0.01
MIN_EFFECTIVE_RANK = 2.0


@dataclass(frozen=True)
class EmbeddingHealth:
    dim: int
    per_dim_variance: np.ndarray  # (D,) of the raw embeddings
    dead_dims: int  # dims whose variance is < 1e-6 of the largest
    spread: float
    effective_rank: float
    norm_mean: float
    norm_std: float
    norm_min: float
    norm_max: float
    collapsed: bool
    reasons: tuple[str, ...]

    def summary(self) -> dict[str, float | int | bool | list[str]]:
        return {"dim": self.dim, "dead_dims": self.dead_dims, "spread": self.spread,
                "effective_rank": self.effective_rank, "norm_mean": self.norm_mean, "norm_std": self.norm_std,
                "norm_min": self.norm_min, "norm_max": self.norm_max, "collapsed": self.collapsed,
                "reasons": list(self.reasons)}


def embedding_health(emb: np.ndarray, *, min_spread: float = MIN_SPREAD,
                     min_effective_rank: float = MIN_EFFECTIVE_RANK) -> EmbeddingHealth:
    x = np.asarray(emb, np.float64)  # (N, D)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"embeddings must be (N >= 2, D), got shape {x.shape}")
    var = x.var(0)
    norms = np.linalg.norm(x, axis=1)
    unit = x / np.maximum(norms, 1e-12)[:, None]
    centred = unit - unit.mean(0)
    spread = float((centred**2).sum(1).mean())
    eig = np.clip(np.linalg.eigvalsh(centred.T @ centred / len(x)), 0, None)
    p = eig / eig.sum() if eig.sum() > 0 else np.ones(1)
    eff_rank = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum())) if eig.sum() > 0 else 0.0
    reasons = []
    if spread < min_spread:
        reasons.append(f"spread {spread:.4f} < {min_spread}: embeddings sit on (nearly) one point")
    if eff_rank < min_effective_rank:
        reasons.append(f"effective rank {eff_rank:.2f} < {min_effective_rank}: variance lives in under "
                       f"{min_effective_rank:g} directions")
    return EmbeddingHealth(x.shape[1], var, int((var < 1e-6 * max(var.max(), 1e-30)).sum()), spread, eff_rank,
                           float(norms.mean()), float(norms.std()), float(norms.min()), float(norms.max()),
                           bool(reasons), tuple(reasons))
