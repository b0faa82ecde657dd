"""Prometheus metrics of the router, labelled by tenant where a tenant is known.

`labels()` costs a lock and a tuple lookup per call, and a cached search records five
metrics (a third of its in-server time when looked up per call), so the search path uses
children resolved once: `stage_seconds(stage)`, `tenant_search(tenant)`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from prometheus_client import Counter, Histogram

SEARCHES = Counter("simsearch_searches_total", "Search requests", ["tenant", "outcome"])
QUERIES = Counter("simsearch_queries_total", "Queries answered (a request may carry many)", ["tenant"])
UPSERTED = Counter("simsearch_upserted_points_total", "Points acknowledged by upsert", ["tenant"])
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
