"""Prometheus metrics of the router, labelled by tenant where a tenant is known."""

from prometheus_client import Counter, Histogram

SEARCHES = Counter("simsearch_searches_total", "Search requests", ["tenant", "outcome"])
QUERIES = Counter("simsearch_queries_total", "Queries answered (a request may carry many)", ["tenant"])
UPSERTED = Counter("simsearch_upserted_points_total", "Points acknowledged by upsert", ["tenant"])
CACHE_LOOKUPS = Counter("simsearch_cache_lookups_total", "Hot-query cache lookups", ["tenant", "result"])
CACHE_ERRORS = Counter("simsearch_cache_errors_total", "Cache backend failures (bypassed)", ["backend"])
STAGE_SECONDS = Histogram(
    "simsearch_search_stage_seconds", "Time per search stage", ["stage"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
