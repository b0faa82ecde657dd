"""The embedding service: one loaded registry artefact that embeds raw inputs in batches.
Plain Python; `simsearch.cluster.encoder_actor` hosts replicas of it as Ray actors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from simsearch.encoder.registry import LoadedEncoder, load

BATCH = 512


class EmbeddingService:
    def __init__(self, ref: str, root: str | Path, *, threads: int = 1) -> None:
        torch.set_num_threads(threads)  # replicas share the machine with the shards
        self.encoder: LoadedEncoder = load(ref, Path(root))
        self.ref = self.encoder.ref

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.concatenate([self.encoder.embed(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)])

    def embed_images(self, images: np.ndarray) -> np.ndarray:  # (N, C, H, W) uint8
        return self.encoder.embed_array(images, batch_size=BATCH)
