"""What a search answers, as plain domain objects, and the compact form the cache stores.

`Hits` is the wire's flat layout without the wire: per query a count, then every query's
ids and scores one after another (a query may have fewer than k). The edge turns a
`SearchReply` into protobuf (`protos.convert.search_response`); the cache stores `Hits` as
bytes of its own (`encode_hits`): numpy buffers and NUL-joined ids (ids never hold NUL),
so a hit is decoded with two `frombuffer` calls and one split, no protobuf involved.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_HEAD = struct.Struct("<III")  # queries, hits, whether payloads follow


@dataclass(frozen=True)
class Hits:
    counts: np.ndarray  # (n,) int32: hits per query, <= k
    ids: list[str]  # (sum(counts),) in query order, best first
    scores: np.ndarray  # (sum(counts),) float32: l2 squared distance, dot/cosine similarity
    payloads: list[str] | None = None  # (sum(counts),) canonical JSON ("" for none), when asked for

    @classmethod
    def from_rows(cls, ids: np.ndarray, scores: np.ndarray, valid: np.ndarray,
                  payloads: np.ndarray | None = None) -> "Hits":
        """(n, k) ids and scores with a validity mask (False where fewer than k exist)."""
        return cls(valid.sum(axis=1, dtype=np.int32), ids[valid].tolist(), scores[valid].astype(np.float32),
                   None if payloads is None else payloads[valid].tolist())


@dataclass(frozen=True)
class SearchReply:
    hits: Hits
    generation: int
    cached: bool = False
    partial: bool = False
    missing_shards: tuple[int, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    shard_paths: tuple[str, ...] = ()  # how each shard answered (shard.SearchResult.path); () when cached
    unindexed_fields: tuple[str, ...] = ()  # fields the filter reads that have no declared payload index


@dataclass(frozen=True)
class CollectionStatus:
    """What DescribeCollection answers: the spec, the write generation and each shard's stats()
    (a dict with "unavailable" for a shard that did not answer)."""

    spec: Any  # shard.CollectionSpec
    generation: int
    created_at: float
    shard_stats: list[dict]
    payload_indexes: dict[str, str] = field(default_factory=dict)  # declared: field -> type
    reindex: list[dict] = field(default_factory=list)  # reindex jobs, newest first (router/reindex.py job_view)
    drift: dict = field(default_factory=dict)  # router/drift_monitor.py DriftMonitor.view
    live_recall: dict = field(default_factory=dict)  # router/recall_monitor.py RecallMonitor.view (+ tuned_target)


def encode_hits(h: Hits) -> bytes:
    """Ids, then (when present) payloads, NUL-joined after one NUL: neither ever holds a raw NUL."""
    texts = h.ids if h.payloads is None else [*h.ids, *h.payloads]
    return b"".join((_HEAD.pack(len(h.counts), len(h.ids), h.payloads is not None), h.counts.astype("<i4").tobytes(),
                     h.scores.astype("<f4").tobytes(), "\0".join(texts).encode()))


def decode_hits(data: bytes) -> Hits:
    n, m, with_payloads = _HEAD.unpack_from(data)
    off = _HEAD.size
    counts = np.frombuffer(data, "<i4", n, off)
    scores = np.frombuffer(data, "<f4", m, off + 4 * n)
    texts = data[off + 4 * (n + m):].decode().split("\0") if m else []
    if with_payloads:
        return Hits(counts, texts[:m], scores, texts[m:] if m else [])
    return Hits(counts, texts, scores)
