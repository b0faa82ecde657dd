"""One partition of one collection: ScaNN coarse index, exact fresh buffer, tombstones, snapshots."""

from simsearch.shard.config import MAX_DIM, MAX_K, CollectionSpec, IndexParams
from simsearch.shard.shard import SearchResult, Shard

__all__ = ["MAX_DIM", "MAX_K", "CollectionSpec", "IndexParams", "SearchResult", "Shard"]
