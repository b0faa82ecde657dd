"""Live recall: a sample of real searches re-run exactly in the background (issue 20, item 1).

An approximate index's recall is a property of the data and the settings together, and both
change while a service runs (more points, another distribution, an operator's setting). So a
fraction of live searches (`fraction`, default 1 %) is answered a second time by exact search
over the same shards (the same filter, the same k), off the request's path, and each sampled
query's recall@k (the share of the exact top k that the served answer held) enters a sliding
window per collection. Its mean is the collection's live recall: a Prometheus gauge, `describe`,
and the flag raised (gauge + log) when it is below the collection's recall SLO with enough
samples to say so.

The cost is bounded three times: at most `max_queries` queries of a sampled request are re-run;
at most one exact re-run per collection is in flight (a sample drawn while one runs is skipped);
and after a re-run that took s seconds the next waits s / cpu_budget (a re-run of 10 ms at the
default 2 % budget: none for 0.5 s), so exact search takes about that share of a core per
collection whatever the traffic. The duration is wall time as the router sees it (shards may be
Ray actors); an exact scan that uses both cores costs up to twice its wall time, which is why the
default is 2 % and not 5 %: at 5 %, 8 clients on Fashion-MNIST lost 8 % of their throughput
(scripts/monitoring_cost.py). Sampling is a counter, not a random draw: one request in
round(1 / fraction).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simsearch.contract.filters import Condition, Not

log = logging.getLogger(__name__)
MAX_SHAPES = 16  # filter shapes tracked per collection; later ones count under "other"


@dataclass(frozen=True)
class RecallSettings:
    fraction: float = 0.01  # of searches re-run exactly
    window: int = 200  # sampled queries the live recall is the mean of
    min_samples: int = 20  # fewer: no verdict on the SLO
    max_queries: int = 8  # of one sampled request
    cpu_budget: float = 0.02  # of one core, per collection (measured by wall time: scripts/monitoring_cost.py)


def filter_shape(f: Any) -> str:
    """What kind of filter a search used, without its values: its conditions' "field:op", sorted ("" for none).
    Recall under a filter depends on how many points pass it, which its shape tracks better than nothing."""
    if f is None:
        return ""
    parts: set[str] = set()
    stack = [f]
    while stack:
        node = stack.pop()
        if isinstance(node, Condition):
            parts.add(f"{node.field}:{node.op}")
        elif isinstance(node, Not):
            stack.append(node.item)
        else:
            stack.extend(node.items)
    return ",".join(sorted(parts))


def recall_at_k(served: list[list[str]], exact: list[list[str]]) -> np.ndarray:
    """Per query: the share of the exact answer's ids that the served answer holds (1.0 when exact is empty)."""
    return np.array([len(set(s) & set(e)) / len(e) if e else 1.0 for s, e in zip(served, exact)], np.float64)


@dataclass
class Window:
    slo: float
    values: deque = field(default_factory=deque)
    sampled: int = 0  # requests re-run
    queries: int = 0  # queries measured (every one, not only those still in the window)
    seconds: float = 0.0  # spent in exact re-runs, all told (what the monitor cost)
    skipped: int = 0  # samples dropped because one re-run was in flight
    busy: bool = False
    breached: bool = False
    counter: int = 0
    updated_at: float = 0.0
    next_at: float = 0.0  # monotonic time before which no sample is taken (the CPU budget)
    by_filter: dict[str, deque] = field(default_factory=dict)  # filter shape -> its own window

    def recall(self) -> float:
        return float(np.mean(self.values)) if self.values else float("nan")


class RecallMonitor:
    """Per collection windows; every method runs on the event loop."""

    def __init__(self, settings: RecallSettings | None = None):
        self.settings = settings or RecallSettings()
        self._stride = max(1, round(1 / self.settings.fraction)) if self.settings.fraction > 0 else 0
        self._windows: dict[tuple[str, str], Window] = {}

    def watch(self, key: tuple[str, str], slo: float) -> None:
        w = self._windows.get(key)
        if w is None:
            self._windows[key] = Window(slo, deque(maxlen=self.settings.window))
        else:
            w.slo = slo

    def forget(self, key: tuple[str, str]) -> None:
        self._windows.pop(key, None)

    def reset(self, key: tuple[str, str]) -> None:
        """Settings changed: what was measured before says nothing about them."""
        w = self._windows.get(key)
        if w is not None:
            w.values.clear()
            w.by_filter.clear()
            w.breached = False

    def take(self, key: tuple[str, str]) -> bool:
        """Whether this search is sampled (and then the caller must call `done`)."""
        w = self._windows.get(key)
        if w is None or not self._stride:
            return False
        w.counter += 1
        if w.counter % self._stride:
            return False
        if w.busy or time.monotonic() < w.next_at:
            w.skipped += 1
            return False
        w.busy = True
        return True

    def done(self, key: tuple[str, str], recalls: np.ndarray | None, seconds: float = 0.0,
             shape: str = "") -> tuple[bool, bool] | None:
        """Record a re-run's per-query recalls (None: it failed) and its duration. Returns (breached now, breached
        before) when the collection is watched."""
        w = self._windows.get(key)
        if w is None:
            return None
        w.busy = False
        w.seconds += seconds
        w.next_at = time.monotonic() + seconds / self.settings.cpu_budget
        if recalls is None:
            return None
        w.values.extend(recalls.tolist())
        if shape:
            if shape not in w.by_filter and len(w.by_filter) >= MAX_SHAPES:
                shape = "other"
            w.by_filter.setdefault(shape, deque(maxlen=self.settings.window)).extend(recalls.tolist())
        w.sampled += 1
        w.queries += len(recalls)
        w.updated_at = time.time()
        before = w.breached
        w.breached = len(w.values) >= self.settings.min_samples and w.recall() < w.slo
        if w.breached and not before:
            log.warning("live recall of %s/%s is %.3f over the last %d sampled queries, below its SLO %.3f", *key,
                        w.recall(), len(w.values), w.slo)
        elif before and not w.breached:
            log.info("live recall of %s/%s is back to %.3f (SLO %.3f)", *key, w.recall(), w.slo)
        return w.breached, before

    def view(self, key: tuple[str, str]) -> dict[str, Any]:
        w = self._windows.get(key)
        if w is None:
            return {}
        return {"recall": w.recall(), "samples": len(w.values), "slo": w.slo, "breached": w.breached,
                "sampled_requests": w.sampled, "sampled_queries": w.queries, "skipped": w.skipped,
                "rerun_seconds": w.seconds, "updated_at": w.updated_at,
                "fraction": self.settings.fraction,
                "by_filter": {s: {"recall": float(np.mean(v)), "samples": len(v)} for s, v in w.by_filter.items()}}
