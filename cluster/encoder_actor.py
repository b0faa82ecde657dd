"""Encoder replicas as Ray actors: each hosts a plain EmbeddingService; calls go round-robin
so batches from concurrent requests embed in parallel on different replicas."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import ray

from simsearch.cluster._calls import call_actor
from simsearch.cluster.runtime import start_ray
from simsearch.contract.errors import Unavailable
from simsearch.encoder.service import EmbeddingService


class EncoderReplicas:
    def __init__(self, actors: list[Any], ref: str):
        self._actors = actors
        self._next = itertools.cycle(range(len(actors)))
        self.ref = ref

    @classmethod
    def create(cls, ref: str, root: Path, *, replicas: int = 1, threads: int = 1) -> "EncoderReplicas":
        try:
            start_ray()  # no-op when the server already started or joined one; else the embedded local Ray
        except Exception as e:  # noqa: BLE001 (Ray failing to start, or still starting: retryable, not a bug)
            raise Unavailable(f"encoder {ref}: Ray could not start its replicas ({type(e).__name__}: {e}); "
                              f"retry shortly") from e
        # num_cpus=0 like the shards: embedding is bursty and must not be starved by Ray's accounting
        remote = ray.remote(EmbeddingService).options(num_cpus=0, max_concurrency=2, max_restarts=2)
        return cls([remote.remote(ref, str(root), threads=threads) for _ in range(replicas)], ref)

    async def _call(self, method: str, *args: Any) -> Any:
        i = next(self._next)
        return await call_actor(self._actors[i], f"encoder {self.ref} replica {i}", method, *args)

    async def embed_texts(self, texts: list[str]) -> np.ndarray:
        return await self._call("embed_texts", texts)

    async def embed_images(self, images: np.ndarray) -> np.ndarray:
        return await self._call("embed_images", images)

    def kill(self) -> None:
        for a in self._actors:
            ray.kill(a, no_restart=True)
