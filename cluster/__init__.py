"""Placement: starting/joining a Ray cluster, the actor facade that hosts a shard in Ray,
and the in-process facade that hosts it inside the router (the single-machine default)."""

from simsearch.cluster.handle import ShardHandle
from simsearch.cluster.local_shard import LocalShardHandle
from simsearch.cluster.runtime import NAMESPACE, start_ray, stop_ray
from simsearch.cluster.shard_actor import RayShardHandle

PLACEMENTS = ("local", "ray")

__all__ = ["NAMESPACE", "PLACEMENTS", "LocalShardHandle", "RayShardHandle", "ShardHandle", "start_ray",
           "stop_ray"]
