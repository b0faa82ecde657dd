"""Live charts' data: the in-process Prometheus registry sampled every few seconds into short series.

Latency: the per-collection search histogram (on its collection's page) and the server-wide total of the
per-stage one (on every page, marked so); between two samples the change of a histogram's cumulative
buckets is that interval's distribution, from which p50 and p99 are read (linear within a bucket, as
PromQL's histogram_quantile does).
Quality gauges (live recall and its SLO, query and write drift and their threshold) are read by name when
they exist; a page says "not measured" for those that do not.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import REGISTRY
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)
SAMPLE_EVERY_S = 5.0
KEEP = 360  # samples per series: 30 minutes at the default interval
# histogram -> the one label value charted (None: every label set)
LATENCY = {"simsearch_collection_search_seconds": None, "simsearch_search_stage_seconds": ("stage", "total")}
GAUGES = ("simsearch_live_recall", "simsearch_live_recall_slo", "simsearch_query_drift", "simsearch_write_drift",
          "simsearch_drift_threshold")
Labels = tuple[tuple[str, str], ...]


def quantile(q: float, bounds: list[float], counts: list[float]) -> float | None:
    """The q-quantile of a histogram given its buckets' upper bounds (ascending, +inf last) and cumulative
    counts; None when it holds nothing. Linear within the bucket; the +inf bucket answers its lower bound."""
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cum in zip(bounds, counts):
        if cum >= rank:
            if math.isinf(bound):
                return lower
            width = cum - below
            return lower + (bound - lower) * ((rank - below) / width if width else 1.0)
        lower, below = bound, cum
    return lower


@dataclass
class _Histogram:
    bounds: list[float]
    counts: list[float]


@dataclass
class Series:
    """One chart line: times (unix seconds) and values (None where nothing happened in the interval)."""

    t: deque = field(default_factory=lambda: deque(maxlen=KEEP))
    v: deque = field(default_factory=lambda: deque(maxlen=KEEP))

    def add(self, t: float, v: float | None) -> None:
        self.t.append(t)
        self.v.append(v)


def _read(registry: CollectorRegistry) -> tuple[dict[tuple[str, Labels], _Histogram], dict[tuple[str, Labels], float]]:
    """Cumulative histogram buckets and the quality gauges, keyed by (metric name, labels)."""
    histograms: dict[tuple[str, Labels], _Histogram] = {}
    gauges: dict[tuple[str, Labels], float] = {}
    for family in registry.collect():
        if family.type == "histogram" and family.name in LATENCY:
            only = LATENCY[family.name]
            for s in family.samples:
                if not s.name.endswith("_bucket") or (only is not None and s.labels.get(only[0]) != only[1]):
                    continue
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                h = histograms.setdefault((family.name, labels), _Histogram([], []))
                h.bounds.append(float(s.labels["le"]))
                h.counts.append(s.value)
        elif family.name in GAUGES:
            for s in family.samples:
                gauges[(family.name, tuple(sorted(s.labels.items())))] = s.value
    return histograms, gauges


NAMES = {"simsearch_collection_search_seconds": "this collection's searches",
         "simsearch_search_stage_seconds": "all searches (server-wide)", "simsearch_live_recall": "live recall",
         "simsearch_live_recall_slo": "recall SLO", "simsearch_query_drift": "query drift",
         "simsearch_write_drift": "write drift", "simsearch_drift_threshold": "drift threshold"}


def _describe(name: str, labels: Labels) -> str:
    """A legend entry: the series' name, and its labels other than tenant, collection and stage."""
    rest = [f"{k}={v}" for k, v in labels if k not in ("tenant", "collection", "stage")]
    return " ".join([NAMES.get(name, name), *rest])


class Sampler:
    """Samples `registry` every `every_s` seconds on the running loop (the registry is read in a few ms)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY, every_s: float = SAMPLE_EVERY_S,
                 clock=time.time):
        self.registry = registry
        self.every_s = every_s
        self._clock = clock
        self._last: dict[tuple[str, Labels], _Histogram] | None = None  # None until the first sample
        self.latency: dict[tuple[str, Labels, str], Series] = {}  # (metric, labels, "p50"|"p99")
        self.gauges: dict[tuple[str, Labels], Series] = {}
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        now = self._clock()
        histograms, gauges = _read(self.registry)
        last, self._last = self._last, histograms
        if last is None:  # the first sample: the totals so far are the baseline
            return self._gauges(now, gauges)
        for key, h in histograms.items():
            before = last.get(key)  # a label set first seen now was all zeros at the last sample
            delta = h.counts if before is None or before.bounds != h.bounds else \
                [c - b for c, b in zip(h.counts, before.counts)]
            for q, tag in ((0.5, "p50"), (0.99, "p99")):
                value = quantile(q, h.bounds, delta)
                self.latency.setdefault((*key, tag), Series()).add(now, None if value is None else value * 1000)
        self._gauges(now, gauges)

    def _gauges(self, now: float, gauges: dict[tuple[str, Labels], float]) -> None:
        for key, value in gauges.items():  # NaN: a monitor without a figure yet (a gap, not a point)
            self.gauges.setdefault(key, Series()).add(now, value if math.isfinite(value) else None)

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a chart gap, never a dead sampler
                log.exception("sampling the metrics registry failed")
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def charts(self, tenant: str, collection: str) -> dict:
        """What a collection's page plots: latency lines (ms) and each quality gauge's lines, or None for a
        gauge that is not measured for this collection."""
        def mine(labels: Labels) -> bool | None:  # True: this collection's; None: server-wide; False: another's
            d = dict(labels)
            if d.get("tenant", tenant) != tenant:
                return False
            return d["collection"] == collection if "collection" in d else None

        latency = []
        for (name, labels, tag), s in sorted(self.latency.items()):
            scope = mine(labels)
            if scope is False:
                continue
            latency.append({"name": f"{_describe(name, labels)} {tag}", "t": list(s.t), "v": list(s.v)})
        quality: dict[str, list | None] = {}
        for gauge in GAUGES:
            lines = [{"name": _describe(name, labels), "t": list(s.t), "v": list(s.v)}
                     for (name, labels), s in sorted(self.gauges.items())
                     if name == gauge and mine(labels) is not False and any(v is not None for v in s.v)]
            quality[gauge] = lines or None
        return {"latency": latency, "quality": quality, "every_s": self.every_s}
