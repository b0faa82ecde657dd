"""Exact scoring kernels on full-precision vectors, batched over queries and candidates.

Every kernel returns a *distance* (smaller is closer) so merging and top-k are
metric-agnostic; `to_score` turns it back into what users see (l2: squared distance,
dot/cosine: similarity). Cosine vectors are unit-normalised at write and query time, so
cosine is the dot kernel.
"""

from __future__ import annotations

import numpy as np

METRICS = ("l2", "dot", "cosine")


def pairwise_distance(queries: np.ndarray, points: np.ndarray, metric: str) -> np.ndarray:
    """All query-point distances. queries (n, d), points (m, d) -> (n, m) float32."""
    dots = queries @ points.T  # (n, m)
    if metric == "l2":
        qn = np.einsum("ij,ij->i", queries, queries)[:, None]  # (n, 1)
        pn = np.einsum("ij,ij->i", points, points)[None, :]  # (1, m)
        return np.maximum(qn - 2.0 * dots + pn, 0.0, dtype=np.float32)
    return -dots


def candidate_distance(queries: np.ndarray, cands: np.ndarray, metric: str) -> np.ndarray:
    """Per-query candidate distances. queries (n, d), cands (n, c, d) -> (n, c) float32."""
    if metric == "l2":
        diff = cands - queries[:, None, :]  # (n, c, d)
        return np.einsum("ncd,ncd->nc", diff, diff)
    return -np.einsum("ncd,nd->nc", cands, queries)


def to_score(distance: np.ndarray, metric: str) -> np.ndarray:
    """Distance -> the user-facing score (see SearchResponse.scores)."""
    return distance if metric == "l2" else -distance


def top_k(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and distances of the k smallest per row, sorted. dist (n, m)."""
    n, m = dist.shape
    if m == 0 or k <= 0:
        return np.empty((n, 0), np.int64), np.empty((n, 0), np.float32)
    kk = min(k, m)
    rows = np.arange(n)[:, None]  # plain fancy indexing: take_along_axis's checks cost more than the work
    part = np.argpartition(dist, kk - 1, axis=1)[:, :kk] if kk < m else np.broadcast_to(np.arange(m), (n, m))
    part_d = dist[rows, part]
    order = np.argsort(part_d, axis=1, kind="stable")
    return part[rows, order], part_d[rows, order]


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit-normalise rows (cosine). Callers reject zero rows first."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / norms).astype(np.float32, copy=False)
