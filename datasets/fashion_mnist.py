"""Fashion-MNIST from Debian's `dataset-fashion-mnist`: train = database, test = queries, l2
(ann-benchmarks' split, so published curves compare)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from simsearch.datasets.dataset import Dataset

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """idx format: big-endian; byte 3 = number of dims, then a uint32 per dim, then the data."""
    with gzip.open(path) as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int(x) for x in np.frombuffer(raw, ">u4", ndim, 4))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist() -> Dataset:
    """60,000 + 10,000 images as float32 rows of 784 pixel values (0..255), with their labels."""
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        raise FileNotFoundError(f"{FASHION_DIR} is missing: apt-get install -y dataset-fashion-mnist")
    train = read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz").reshape(60000, -1).astype(np.float32)
    test = read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.float32)
    return Dataset("fashion-mnist-784-euclidean", train, test, "l2",
                   read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz"),
                   read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz"))
