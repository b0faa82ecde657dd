"""A vector dataset: a database, queries and the metric that ranks them (labels when it has them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
