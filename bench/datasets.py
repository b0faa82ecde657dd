"""Real datasets with exact ground truth, cached under the cache directory.

Fashion-MNIST comes from Debian's `dataset-fashion-mnist` (train = database, test =
queries under Euclidean distance: ann-benchmarks' fashion-mnist-784-euclidean).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def cache_dir() -> Path:
    path = Path(os.environ.get("SIMSEARCH_CACHE", Path.home() / ".cache" / "simsearch"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_idx(path: Path) -> np.ndarray:
    """idx format: big-endian; byte 3 = number of dims, then a uint32 per dim, then the data."""
    with gzip.open(path) as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int(x) for x in np.frombuffer(raw, ">u4", ndim, 4))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: np.ndarray  # (N, d) float32, the database
    test: np.ndarray  # (Q, d) float32, the queries
    metric: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None


def fashion_mnist() -> Dataset:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        raise FileNotFoundError(f"{FASHION_DIR} is missing: apt-get install -y dataset-fashion-mnist")
    train = read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz").reshape(60000, -1).astype(np.float32)
    test = read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.float32)
    return Dataset("fashion-mnist-784-euclidean", train, test, "l2",
                   read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz"),
                   read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz"))


def exact_neighbors(train: np.ndarray, test: np.ndarray, k: int = 100, metric: str = "l2",
                    chunk: int = 500) -> np.ndarray:
    """Exact top-k row indices in float64, in query chunks (no approximation anywhere)."""
    db = train.astype(np.float64)
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
    """Mean |found[:k] ∩ true[:k]| / k over queries; both arrays hold ids as str."""
    hits = (found_ids[:, :k, None] == true_ids[:, None, :k]).any(axis=2).sum()
    return float(hits) / (len(true_ids) * k)
