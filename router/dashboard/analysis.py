"""The numbers behind the embedding map and the distance histograms, from a sample of stored points
(pure numpy: unit-tested without a server)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from simsearch.reranker.kernels import candidate_distance, pairwise_distance, to_score, top_k

MAX_CATEGORIES = 20  # more distinct values than this are coloured as numbers, or grouped as "other"


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """The sample projected on its first two principal axes (n, 2), and the share of variance each explains."""
    x = vectors.astype(np.float64) - vectors.mean(axis=0, dtype=np.float64)  # (n, d)
    if len(x) < 2:
        return np.zeros((len(x), 2)), [0.0, 0.0]
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2]  # (2, d), fewer when d == 1
    xy = x @ axes.T  # (n, <=2)
    if xy.shape[1] < 2:
        xy = np.hstack([xy, np.zeros((len(x), 1))])
    var = s ** 2
    share = (var[:2] / var.sum()).tolist() if var.sum() > 0 else [0.0, 0.0]
    return xy, share + [0.0] * (2 - len(share))


def payload_fields(payloads: list[str]) -> list[str]:
    """Top-level fields with scalar values in the sample's payloads, most common first."""
    seen: Counter[str] = Counter()
    for doc in payloads:
        if doc:
            seen.update(k for k, v in json.loads(doc).items() if isinstance(v, (str, int, float, bool)))
    return [k for k, _ in seen.most_common()]


def colouring(payloads: list[str], field: str) -> dict:
    """How to colour the points by `field`: {"kind": "category", "values": [...]} (strings, bools, or few
    distinct numbers; the rarest past MAX_CATEGORIES become "other") or {"kind": "number", "values": [...]};
    points without it get "(none)" / None."""
    raw = [json.loads(doc).get(field) if doc else None for doc in payloads]
    numbers = [v for v in raw if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if numbers and len(numbers) == sum(v is not None for v in raw) and len(set(numbers)) > MAX_CATEGORIES:
        return {"kind": "number", "values": [float(v) if isinstance(v, (int, float)) else None for v in raw]}
    names = ["(none)" if v is None else (json.dumps(v) if isinstance(v, bool) else str(v)) for v in raw]
    keep = {k for k, _ in Counter(names).most_common(MAX_CATEGORIES)}
    return {"kind": "category", "values": [n if n in keep else "other" for n in names]}


def random_pair_scores(vectors: np.ndarray, metric: str, pairs: int, seed: int = 0) -> np.ndarray:
    """Scores (as searches report them: l2 squared distance, dot/cosine similarity) of random distinct pairs
    of the sample."""
    n = len(vectors)
    if n < 2:
        return np.empty(0, np.float32)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, pairs)
    b = (a + rng.integers(1, n, pairs)) % n  # never a point with itself
    d = candidate_distance(vectors[a], vectors[b][:, None, :], metric)[:, 0]  # (pairs,)
    return to_score(d, metric).astype(np.float32)


def neighbour_scores(vectors: np.ndarray, queries: np.ndarray, metric: str, k: int) -> np.ndarray:
    """Scores of each query row (indices into `vectors`) to its k exact nearest neighbours among `vectors`, the
    query point itself left out. (len(queries) * k,) or fewer when there are not k others."""
    if len(queries) == 0 or len(vectors) < 2:
        return np.empty(0, np.float32)
    d = pairwise_distance(vectors[queries], vectors, metric)  # (q, n)
    d[np.arange(len(queries)), queries] = np.inf  # never a point's own neighbour
    _, best = top_k(d, min(k, len(vectors) - 1))  # (q, k) distances, sorted
    return to_score(best.ravel(), metric).astype(np.float32)


def score_label(metric: str) -> str:
    return {"l2": "squared L2 distance (smaller is closer)", "cosine": "cosine similarity (larger is closer)",
            "dot": "dot product (larger is closer)"}[metric]
