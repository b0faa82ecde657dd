"""Benchmark datasets with exact ground truth, cached under the cache directory.

- fashion-mnist-784-euclidean: Debian's `dataset-fashion-mnist` (train = database, test =
  queries, l2): ann-benchmarks' split, so published curves compare.
- wordnet-minilm-384-cosine: all-MiniLM-L6-v2 embeddings of every WordNet 3.0 definition
  (117,659) as the database, queried with GCIDE definitions (a seeded sample); real text.
- synthetic-gmm-128-<n>: a seeded Gaussian mixture, 128-d, l2, for scale. Synthetic, and
  every name and output says so.
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
    synthetic: bool = False

    def head(self, n_train: int, n_test: int) -> Dataset:
        """The first rows of each split (a smaller benchmark with its own, separately cached ground truth)."""
        n_train, n_test = min(n_train, len(self.train)), min(n_test, len(self.test))
        if (n_train, n_test) == (len(self.train), len(self.test)):
            return self
        return Dataset(f"{self.name}-head{n_train}x{n_test}", self.train[:n_train], self.test[:n_test],
                       self.metric, synthetic=self.synthetic)


def fashion_mnist() -> Dataset:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        raise FileNotFoundError(f"{FASHION_DIR} is missing: apt-get install -y dataset-fashion-mnist")
    train = read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz").reshape(60000, -1).astype(np.float32)
    test = read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.float32)
    return Dataset("fashion-mnist-784-euclidean", train, test, "l2",
                   read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz"),
                   read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz"))


def synthetic_gmm(n: int, dim: int = 128, *, queries: int = 10_000, clusters: int = 0, seed: int = 0) -> Dataset:
    """A seeded Gaussian mixture (sqrt(n) clusters by default, unequal spreads); queries come from the same
    mixture. Generated in float32 chunks so 1M points need no float64 copy."""
    rng = np.random.default_rng(seed)
    k = clusters or max(8, int(np.sqrt(n)))
    centers = rng.normal(0.0, 1.0, (k, dim)).astype(np.float32)
    spread = rng.uniform(0.15, 0.45, k).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, dim), np.float32)
        for i in range(0, m, 100_000):
            c = rng.integers(0, k, min(100_000, m - i))
            out[i:i + len(c)] = centers[c] + rng.standard_normal((len(c), dim), np.float32) * spread[c, None]
        return out

    train = draw(n)
    return Dataset(f"synthetic-gmm-{dim}-{_short(n)}", train, draw(queries), "l2", synthetic=True)


def parse_size(text: str) -> int:
    """"100k" -> 100_000, "1m" -> 1_000_000, "2500" -> 2500."""
    t = text.strip().lower()
    scale = {"k": 1000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if scale > 1 else t) * scale)


def _short(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def wordnet_minilm(queries: int = 10_000, seed: int = 0) -> Dataset:
    """MiniLM (cosine) embeddings of all WordNet definitions, queried by a seeded sample of GCIDE definitions.
    Embedding ~130k texts takes ~7 minutes on 2 cores the first time; the arrays are cached."""
    from simsearch.encoder.text_pairs import embed_texts, gcide_definitions, wordnet_definitions

    documents = [definition for _, definition in wordnet_definitions()]
    gcide = sorted({d for defs in gcide_definitions().values() for d in defs if len(d) >= 12})
    pick = np.sort(np.random.default_rng(seed).choice(len(gcide), queries, replace=False))
    train = embed_texts(documents)
    test = embed_texts([gcide[i] for i in pick])
    return Dataset("wordnet-minilm-384-cosine", train, test, "cosine")


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
