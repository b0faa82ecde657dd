"""One partition of one collection: ScaNN coarse index, exact fresh buffer, tombstones, snapshots."""

from simsearch.shard.config import CollectionSpec, IndexParams
from simsearch.shard.shard import SearchResult, Shard

__all__ = ["CollectionSpec", "IndexParams", "SearchResult", "Shard"]
