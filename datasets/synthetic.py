"""A seeded Gaussian mixture, for scale: synthetic, and every name and output says so."""

from __future__ import annotations

import numpy as np

from simsearch.datasets.dataset import Dataset


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
