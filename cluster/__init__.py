"""Everything Ray: starting/joining a cluster and the actor facades that host shards."""

from simsearch.cluster.runtime import NAMESPACE, start_ray, stop_ray
from simsearch.cluster.shard_actor import ShardHandle, share

__all__ = ["NAMESPACE", "ShardHandle", "share", "start_ray", "stop_ray"]
