"""Exact neighbours in float64 (the reference every recall is measured against), cached, and recall@k."""

from __future__ import annotations

import hashlib

import numpy as np

from simsearch.datasets.cache import cache_dir
from simsearch.datasets.dataset import Dataset


def exact_neighbors(train: np.ndarray, test: np.ndarray, k: int = 100, metric: str = "l2",
                    chunk: int = 500) -> np.ndarray:
    """Exact top-k row indices in float64, in query chunks (no approximation anywhere)."""
    db = train.astype(np.float64)
    chunk = max(1, min(chunk, 100_000_000 // len(db)))  # at most ~800 MB of distances at a time
    db_norms = np.einsum("ij,ij->i", db, db)
    out = np.empty((len(test), k), np.int64)
    for i in range(0, len(test), chunk):
        q = test[i : i + chunk].astype(np.float64)
        if metric == "l2":
            d = np.einsum("ij,ij->i", q, q)[:, None] - 2 * q @ db.T + db_norms[None, :]
        else:
            d = -(q @ db.T)
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable")
        out[i : i + chunk] = np.take_along_axis(part, order, 1)
    return out


def ground_truth(ds: Dataset, k: int = 100) -> np.ndarray:
    """Cached exact neighbours of ds.test in ds.train (keyed by a digest of the data)."""
    h = hashlib.blake2b(digest_size=8)
    for part in (np.ascontiguousarray(ds.train), np.ascontiguousarray(ds.test), str(ds.train.shape).encode()):
        h.update(part)  # buffers are hashed in place, no copies
    digest = h.hexdigest()
    path = cache_dir() / f"gt-{ds.name}-{k}-{digest}.npy"
    if path.exists():
        return np.load(path)
    gt = exact_neighbors(ds.train, ds.test, k, ds.metric)
    np.save(path, gt)
    return gt


def recall_at(found_ids: np.ndarray, true_ids: np.ndarray, k: int) -> float:
    """Mean |found[:k] ∩ true[:k]| / k over queries. Both arrays hold ids of one kind (str ids, or int rows
    with -1 padding, which never matches)."""
    hits = (found_ids[:, :k, None] == true_ids[:, None, :k]).any(axis=2).sum()
    return float(hits) / (len(true_ids) * k)
