"""Prometheus metrics of the router, labelled by tenant where a tenant is known.

`labels()` costs a lock and a tuple lookup per call, and a cached search records five
metrics (a third of its in-server time when looked up per call), so the hot paths use
children resolved once: `stage_seconds(stage)`, `tenant_search(tenant)`, `collection_search`,
`rpc_done`'s (method, code) pairs. Hot-path updates run on the event loop's next turn, after
the reply is on its way. The alert rules and dashboard that read these series are in
deploy/prometheus/ and deploy/grafana/ (docs/architecture.md, "Metrics and alerts").
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, NamedTuple

from prometheus_client import Counter, Gauge, Histogram

# Seconds: from 100 µs (a cached search) to a minute (a large upsert, an index build waited for).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0)
BUILD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

SEARCHES = Counter("simsearch_searches_total", "Search requests", ["tenant", "outcome"])
QUERIES = Counter("simsearch_queries_total", "Queries answered (a request may carry many)", ["tenant"])
UPSERTED = Counter("simsearch_upserted_points_total", "Points acknowledged by upsert", ["tenant"])
DELETED = Counter("simsearch_deleted_points_total", "Points removed by Delete (by ids or by filter)", ["tenant"])
CACHE_LOOKUPS = Counter("simsearch_cache_lookups_total", "Hot-query cache lookups", ["tenant", "result"])
QUOTA_REFUSALS = Counter("simsearch_quota_refusals_total", "Requests a tenant's quota or rate limit refused",
                         ["tenant", "quota"])
AUTH_FAILURES = Counter("simsearch_auth_failures_total", "Requests with a missing or unrecognised API key, or refused "
                        "unread while their source had too many pending", ["outcome"])
CACHE_ERRORS = Counter("simsearch_cache_errors_total", "Cache backend failures (bypassed)", ["backend"])
STAGE_SECONDS = Histogram(
    "simsearch_search_stage_seconds", "Time per search stage", ["stage"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)

# Every RPC, by gRPC status code; a SearchStream counts each message (its own status) as one request.
REQUESTS = Counter("simsearch_requests_total", "RPCs answered, by method and gRPC status code (each SearchStream "
                   "message is one request)", ["method", "code"])
REQUEST_SECONDS = Histogram("simsearch_request_seconds", "Handler time per RPC (per SearchStream message), from "
                            "admission to the answer, by method and gRPC status code", ["method", "code"],
                            buckets=LATENCY_BUCKETS)
COLLECTION_SEARCH_SECONDS = Histogram("simsearch_collection_search_seconds", "A search's time in the engine "
                                      "(cache, fan-out, merge), per collection", ["tenant", "collection"],
                                      buckets=LATENCY_BUCKETS)
EMBED_SECONDS = Histogram("simsearch_embedding_seconds", "Time of one encoder call (a batch of raw inputs), by "
                          "encoder name@version", ["encoder"], buckets=LATENCY_BUCKETS)

# What the shards report, polled by the router (router/shard_monitor.py): shards may live in Ray actors.
SHARD_AVAILABLE = Gauge("simsearch_shard_available", "1 when the shard answered the router's last stats poll, "
                        "else 0", ["tenant", "collection", "shard"])
SHARD_FRESH_POINTS = Gauge("simsearch_shard_fresh_points", "Live points the shard's index does not cover yet "
                           "(searched exactly until the next build)", ["tenant", "collection", "shard"])
SHARD_ERROR = Gauge("simsearch_shard_error", "1 when the shard reports a failed index build or checkpoint",
                    ["tenant", "collection", "shard"])
INDEX_BUILDS = Counter("simsearch_index_builds_total", "Index builds the shards reported", ["tenant", "collection"])
INDEX_BUILD_SECONDS = Histogram("simsearch_index_build_seconds", "Index build durations the shards reported (each "
                                "shard's newest build per poll)", ["tenant", "collection"], buckets=BUILD_BUCKETS)

# Retrieval quality: defined here so the alert rules and dashboard can name them; the live-recall monitor and
# the drift monitor set them.
LIVE_RECALL = Gauge("simsearch_live_recall", "Recall@k of sampled live searches against exact search, over the "
                    "sliding window", ["tenant", "collection"])
LIVE_RECALL_BY_FILTER = Gauge("simsearch_live_recall_by_filter", "Live recall of the sampled searches that used a "
                              "filter of this shape (its conditions' field:op, sorted)",
                              ["tenant", "collection", "filter"])
LIVE_RECALL_SLO = Gauge("simsearch_live_recall_slo", "The collection's live-recall objective", ["tenant", "collection"])
LIVE_RECALL_BREACHED = Gauge("simsearch_live_recall_breached", "1 while live recall is below its objective",
                             ["tenant", "collection"])
QUERY_DRIFT = Gauge("simsearch_query_drift", "Drift score of recent queries against the reference sample",
                    ["tenant", "collection"])
WRITE_DRIFT = Gauge("simsearch_write_drift", "Drift score of recent writes against the reference sample",
                    ["tenant", "collection"])
DRIFT_THRESHOLD = Gauge("simsearch_drift_threshold", "The drift score above which the drift alarm is raised",
                        ["tenant", "collection"])
DRIFT_ALARM = Gauge("simsearch_drift_alarm", "1 while the drift score of kind (query or write) is past its threshold",
                    ["tenant", "collection", "kind"])
EMBEDDING_COLLAPSED = Gauge("simsearch_embedding_collapsed", "1 while recent writes' embeddings look collapsed "
                            "(variance or spread below the health floor)", ["tenant", "collection"])


@functools.lru_cache(maxsize=64)
def stage_seconds(stage: str) -> Any:
    return STAGE_SECONDS.labels(stage)


class TenantSearch(NamedTuple):
    outcomes: dict[str, Any]  # "ok" / "cached" / "partial" -> SEARCHES child
    queries: Any
    cache_hit: Any
    cache_miss: Any


@functools.lru_cache(maxsize=4096)
def tenant_search(tenant: str) -> TenantSearch:
    return TenantSearch({o: SEARCHES.labels(tenant, o) for o in ("ok", "cached", "partial")},
                        QUERIES.labels(tenant), CACHE_LOOKUPS.labels(tenant, "hit"), CACHE_LOOKUPS.labels(tenant, "miss"))


@functools.lru_cache(maxsize=4096)
def collection_search(tenant: str, collection: str) -> Any:
    """The collection's search-latency child. A dropped collection's series stays (it stops changing): removing
    it would leave this cache holding a detached child for a collection created again under the same name."""
    return COLLECTION_SEARCH_SECONDS.labels(tenant, collection)


@functools.lru_cache(maxsize=1024)
def _rpc(method: str, code: str) -> tuple[Any, Any]:
    return REQUESTS.labels(method, code), REQUEST_SECONDS.labels(method, code)


def _record_rpc(method: str, code: str, seconds: float) -> None:
    count, latency = _rpc(method, code)
    count.inc()
    latency.observe(seconds)


def rpc_done(method: str, code: str, t0: float) -> None:
    """Count an answered RPC (or stream message) begun at perf_counter() t0, on the loop's next turn."""
    asyncio.get_running_loop().call_soon(_record_rpc, method, code, time.perf_counter() - t0)


@functools.lru_cache(maxsize=256)
def embed_seconds(encoder: str) -> Any:
    return EMBED_SECONDS.labels(encoder)
