"""Merge the shards' exact top-k lists into the global top-k (pure, no Ray).

Each shard re-ranks exactly before answering, so the union of the shards' top-k lists
contains the global exact top-k and this merge loses nothing. Vectorised over queries:
concatenate (n, S*k) and take the k smallest per row.
"""

from __future__ import annotations

import numpy as np

from simsearch.reranker import top_k
from simsearch.shard import SearchResult


def merge(results: list[SearchResult], k: int, n: int) -> SearchResult:
    if not results:
        return SearchResult(np.full((n, k), "", object), np.full((n, k), np.inf, np.float32))
    ids = np.concatenate([r.ids for r in results], axis=1)  # (n, S*k)
    dist = np.concatenate([r.distances for r in results], axis=1)  # (n, S*k)
    pos, best = top_k(dist, k)
    payloads = None
    if all(r.payloads is not None for r in results):
        payloads = np.take_along_axis(np.concatenate([r.payloads for r in results], axis=1), pos, axis=1)
    return SearchResult(np.take_along_axis(ids, pos, axis=1), best, payloads)
