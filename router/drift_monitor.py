"""Drift and embedding health of each collection, watched in the running service (issue 20, item 3).

Per collection, two streams are sampled as they pass through the router: the vectors written
(upserts, embedded or sent) and the queries searched. Each stream first fills a *reference*
sample (the first `reference_size` vectors seen after creation or a reset; kept in
`drift-reference.npz` beside the collection's files, 0600, so a restart keeps it), then a sliding
*recent* window of the last `window` vectors. Every `interval_s` a check compares each stream's
recent window with its reference (`encoder.drift.drift_score`: the largest two-sample KS statistic
over 32 random projections, against the KS critical value at alpha = 1 % Bonferroni-corrected),
and computes the embedding health of the recent writes (`encoder.health`: collapse alarm, norms).

An alarm is raised only when `confirm` consecutive judgements exceeded the threshold: one check of
two same-distribution samples exceeds it with probability <= 1 %, and a service checks every
interval all day, so a single exceedance would page someone for nothing several times a day. A
stream is judged again only once half of its window is new, so consecutive judgements see
different vectors.
The figures go to Prometheus gauges and to `describe`; an operator resets a reference (after an
intended change: a new encoder, a new catalogue) with ResetDriftReference.

Sampling costs one random choice and a row copy per write or search: a bounded number of rows per
request (`per_request`), never a Python loop over rows.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
FILE = "drift-reference.npz"
KINDS = ("queries", "writes")


@dataclass(frozen=True)
class DriftSettings:
    reference_size: int = 1000  # vectors in each reference sample
    window: int = 500  # the recent vectors each check compares with it
    min_samples: int = 200  # fewer in either: no figure yet
    per_request: int = 64  # at most this many rows of one request are sampled
    stride: int = 4  # once the reference is full, one request in `stride` is sampled into the window
    confirm: int = 2  # consecutive exceedances before the alarm
    interval_s: float = 30.0
    alpha: float = 0.01


@dataclass
class Stream:
    """One sampled stream of a collection: its reference (filled first), then the recent window."""

    reference: list[np.ndarray] = field(default_factory=list)  # rows, until reference_size
    recent: deque = field(default_factory=deque)
    seen: int = 0  # rows sampled since the last check
    requests: int = 0  # requests offered since the reference filled (for the stride)
    checked: int = 0  # times this stream was judged
    score: float = float("nan")
    threshold: float = float("nan")
    exceeded: int = 0  # consecutive checks above the threshold
    alarm: bool = False

    def reference_rows(self) -> int:
        return len(self.reference)


@dataclass
class Watch:
    """What is watched of one collection."""

    directory: Path
    dim: int
    streams: dict[str, Stream]
    health: dict[str, Any] = field(default_factory=dict)
    checks: int = 0
    checked_at: float = 0.0
    dirty: bool = False  # the reference changed since it was saved


class DriftMonitor:
    """Thread-safe: the engine samples on the event loop, checks run in a worker thread."""

    def __init__(self, settings: DriftSettings | None = None, seed: int = 0):
        self.settings = settings or DriftSettings()
        self._watches: dict[tuple[str, str], Watch] = {}
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)

    # ---- sampling (event loop) ----

    def watch(self, key: tuple[str, str], directory: Path, dim: int) -> None:
        """Start watching a collection (its reference loaded from its directory when saved there)."""
        streams = {k: Stream(recent=deque(maxlen=self.settings.window)) for k in KINDS}
        saved = directory / FILE
        try:
            with np.load(saved) as f:
                for k in KINDS:
                    if k in f.files and f[k].ndim == 2 and f[k].shape[1] == dim:
                        streams[k].reference = list(f[k][:self.settings.reference_size])
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            log.warning("ignoring the drift reference %s (%s): it is sampled again", saved, e)
        with self._lock:
            self._watches[key] = Watch(directory, dim, streams)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._watches.pop(key, None)

    def observe(self, key: tuple[str, str], kind: str, vectors: np.ndarray) -> None:
        """Sample up to `per_request` rows of a request's vectors into the stream."""
        w = self._watches.get(key)
        if w is None or not len(vectors) or vectors.ndim != 2 or vectors.shape[1] != w.dim:
            return
        s = w.streams[kind]
        if len(s.reference) >= self.settings.reference_size:
            s.requests += 1
            if s.requests % self.settings.stride:
                return
        n = min(len(vectors), self.settings.per_request)
        rows = vectors if n == len(vectors) else vectors[self._rng.choice(len(vectors), n, replace=False)]
        rows = np.array(rows, np.float32)  # a copy: the request's buffer is not kept
        with self._lock:
            room = self.settings.reference_size - len(s.reference)
            if room > 0:
                s.reference.extend(rows[:room])
                w.dirty = True
                rows = rows[room:]
            s.recent.extend(rows)
            s.seen += len(rows)

    def reset(self, key: tuple[str, str], kinds: tuple[str, ...] = KINDS) -> None:
        """Forget the reference (and the window): the next vectors seen become the new reference."""
        with self._lock:
            w = self._watches.get(key)
            if w is None:
                return
            for k in kinds:
                w.streams[k] = Stream(recent=deque(maxlen=self.settings.window))
            w.dirty = True
            w.health = {}
        self._save(w)

    # ---- checks (worker thread) ----

    def check_all(self) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        """Check every watched collection; returns (key, view) of each."""
        with self._lock:
            keys = list(self._watches)
        return [(key, self.check(key)) for key in keys]

    def check(self, key: tuple[str, str]) -> dict[str, Any]:
        from simsearch.encoder.drift import drift_score
        from simsearch.encoder.health import embedding_health

        with self._lock:
            w = self._watches.get(key)
            if w is None:
                return {}
            # a stream is judged again only once half its window is new: re-judging the same vectors would turn one
            # unlucky sample into `confirm` "consecutive" exceedances
            snap = {k: (np.asarray(s.reference), np.asarray(s.recent)) for k, s in w.streams.items()
                    if len(s.reference) >= self.settings.min_samples and len(s.recent) >= self.settings.min_samples
                    and (s.seen >= self.settings.window // 2 or s.checked == 0)}
        results = {k: drift_score(ref, recent, alpha=self.settings.alpha) for k, (ref, recent) in snap.items()}
        health = None
        if "writes" in snap:
            health = embedding_health(snap["writes"][1])
        with self._lock:
            for k, r in results.items():
                s = w.streams[k]
                s.score, s.threshold = r.score, r.threshold
                s.exceeded = s.exceeded + 1 if r.drifted else 0
                was, s.alarm = s.alarm, s.exceeded >= self.settings.confirm
                if s.alarm and not was:
                    log.warning("%s drift in %s/%s: score %.3f > threshold %.3f in %d consecutive checks", k,
                                *key, r.score, r.threshold, s.exceeded)
                s.seen = 0
                s.checked += 1
            if health is not None:
                w.health = {"collapsed": health.collapsed, "spread": health.spread,
                            "effective_rank": health.effective_rank, "norm_mean": health.norm_mean,
                            "norm_std": health.norm_std, "norm_min": health.norm_min, "norm_max": health.norm_max,
                            "reasons": list(health.reasons)}
                if health.collapsed:
                    log.warning("embedding collapse in %s/%s: %s", *key, "; ".join(health.reasons))
            w.checks += 1
            w.checked_at = time.time()
        if w.dirty:
            self._save(w)
        return self.view(key)

    def save_all(self) -> None:
        """Every reference not yet saved (at shutdown)."""
        with self._lock:
            dirty = [w for w in self._watches.values() if w.dirty]
        for w in dirty:
            self._save(w)

    def _save(self, w: Watch) -> None:
        """The references, atomically, 0600 (they are the tenant's vectors)."""
        with self._lock:
            arrays = {k: np.asarray(s.reference, np.float32).reshape(-1, w.dim) for k, s in w.streams.items()}
            w.dirty = False
        path = w.directory / FILE
        tmp = path.with_suffix(".tmp.npz")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:  # a full or read-only disk: the reference lives on in memory
            log.warning("could not save the drift reference %s: %s", path, e)
            with self._lock:
                w.dirty = True

    def view(self, key: tuple[str, str]) -> dict[str, Any]:
        """What describe shows: per stream its score, threshold, alarm and sample sizes; the writes' health."""
        with self._lock:
            w = self._watches.get(key)
            if w is None:
                return {}
            out: dict[str, Any] = {"checks": w.checks, "checked_at": w.checked_at, "health": dict(w.health)}
            for k, s in w.streams.items():
                out[k] = {"score": s.score, "threshold": s.threshold, "alarm": s.alarm, "exceeded": s.exceeded,
                          "reference": len(s.reference), "recent": len(s.recent)}
            return out


def export_drift(tenant: str, collection: str, view: dict[str, Any]) -> None:
    """A check's figures as the Prometheus gauges of router/metrics.py (NaN until a stream has enough samples)."""
    from simsearch.router import metrics

    for kind, gauge in (("queries", metrics.QUERY_DRIFT), ("writes", metrics.WRITE_DRIFT)):
        stream = view.get(kind) or {}
        gauge.labels(tenant, collection).set(stream.get("score", float("nan")))
        metrics.DRIFT_ALARM.labels(tenant, collection, {"queries": "query", "writes": "write"}[kind]).set(
            float(bool(stream.get("alarm"))))
    thresholds = [view[k]["threshold"] for k in KINDS if k in view and np.isfinite(view[k]["threshold"])]
    metrics.DRIFT_THRESHOLD.labels(tenant, collection).set(min(thresholds) if thresholds else float("nan"))
    metrics.EMBEDDING_COLLAPSED.labels(tenant, collection).set(float(bool(view.get("health", {}).get("collapsed"))))
