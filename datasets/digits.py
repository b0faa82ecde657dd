"""scikit-learn's 1,797 8x8 handwritten digits: a labelled image set small enough to train on in seconds."""

from __future__ import annotations

import numpy as np

from simsearch.datasets.dataset import Dataset


def digits() -> Dataset:
    """Pixels scaled from 0..16 to 0..255 (float32 rows of 64, integral), a seeded 30 % held out as queries."""
    from sklearn.datasets import load_digits  # scikit-learn: only this loader needs it

    d = load_digits()
    images = np.clip(d.images * 16, 0, 255).astype(np.uint8).reshape(len(d.images), -1)  # (N, 64)
    order = np.random.default_rng(1234).permutation(len(images))
    n_test = int(0.3 * len(images))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits-64-euclidean", images[train].astype(np.float32), images[test].astype(np.float32), "l2",
                   d.target[train], d.target[test])
