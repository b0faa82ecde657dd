"""The Ray facade for one shard: one actor per shard, failures mapped to platform errors.

The actor class is the plain `simsearch.shard.Shard`; this module is the only place that
knows it runs remotely. Actors are threaded (max_concurrency) so searches run while a
write or a build is in progress, and they take no CPU reservation because their work is
I/O-bound bursts that must not be starved by Ray's CPU accounting on small machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import ray

from simsearch.cluster._calls import call_actor
from simsearch.cluster.handle import ForwardingShardHandle
from simsearch.shard import IndexParams, Shard

ACTOR_CONCURRENCY = 8
INLINE_BYTES = 100_000  # below this Ray inlines arguments anyway


def share(array: np.ndarray) -> Any:
    """Put a large argument in the object store once, so fanning it out to S shards copies it once."""
    return ray.put(array) if array.nbytes > INLINE_BYTES else array


class RayShardHandle(ForwardingShardHandle):
    """Async calls to one shard actor; raises SimsearchError subclasses only."""

    share = staticmethod(share)  # the fan-out puts a large query array in the object store once

    def __init__(self, actor: Any, label: str):
        self._actor = actor
        self.label = label

    @classmethod
    def create(cls, label: str, dim: int, metric: str, params: IndexParams, data_dir: Path | None, *,
               detached: bool = False, **shard_options: Any) -> "RayShardHandle":
        """shard_options: Shard's keyword options (durability, durability_interval_ms)."""
        options: dict[str, Any] = dict(name=label, max_concurrency=ACTOR_CONCURRENCY, num_cpus=0,
                                       get_if_exists=True, max_restarts=0)
        if detached:
            options["lifetime"] = "detached"
        actor = ray.remote(Shard).options(**options).remote(dim, metric, params, data_dir=data_dir, **shard_options)
        return cls(actor, label)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await call_actor(self._actor, self.label, method, *args, **kwargs)

    def kill(self) -> None:
        ray.kill(self._actor, no_restart=True)
