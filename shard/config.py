"""Frozen, validated configuration for a collection and its shards.

Validation happens at construction and messages quote the offending value and the
allowed range, so the router can hand them straight to the client as INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from simsearch.contract.errors import excerpt, invalid
from simsearch.contract.limits import (MAX_DIM, MAX_DIMS_PER_BLOCK, MAX_INDEX_SIZE, MAX_LEAVES, MAX_OVERSAMPLE,
                                       MAX_REBUILD_THRESHOLD, MAX_REPLICAS, MAX_SHARDS, MAX_SQUARED_NORM, MIN_COSINE_SQUARED_NORM,
                                       MIN_INDEX_SIZE, NAME_PATTERN)
from simsearch.reranker.kernels import METRICS

NAME_RE = re.compile(NAME_PATTERN)


def _check_range(fieldname: str, value: int, lo: int, hi: int, *, zero_ok: bool = False) -> None:
    if zero_ok and value == 0:
        return
    if not lo <= value <= hi:
        zero = "0 (auto) or " if zero_ok else ""
        raise invalid(fieldname, f"must be {zero}in [{lo}, {hi}], got {value}")


DEFAULT_PROBE_FRACTION = 0.07  # leaves searched per query when a request names none (uncalibrated)
DEFAULT_OVERSAMPLE = 4  # coarse candidates per result when a request names none (uncalibrated)
DEFAULT_TARGET_RECALL = 0.95  # recall@10 the calibrated defaults meet (shard/calibration.py)
TARGET_RECALL_RANGE = (0.5, 1.0)


DEFAULT_RECALL_SLO = 0.9  # live recall@k below this (with enough samples) breaches a collection's SLO


@dataclass(frozen=True, kw_only=True)
class IndexParams:
    """ScaNN and buffering parameters; 0 means "derive from the shard's size" (leaves_to_search and
    oversample: calibrated after each build to the cheapest setting that meets target_recall)."""

    num_leaves: int = 0
    leaves_to_search: int = 0
    dims_per_block: int = 0
    rebuild_threshold: int = 0
    min_index_size: int = 2048
    oversample: int = 0
    target_recall: float = 0.0  # recall@10 against exact search; 0 = DEFAULT_TARGET_RECALL

    def __post_init__(self) -> None:
        lo, hi = TARGET_RECALL_RANGE
        if self.target_recall and not lo <= self.target_recall <= hi:  # NaN fails this too
            raise invalid("index.target_recall", f"must be 0 (default {DEFAULT_TARGET_RECALL}) or in [{lo}, {hi}], "
                                                 f"got {self.target_recall}")
        _check_range("index.num_leaves", self.num_leaves, 1, MAX_LEAVES, zero_ok=True)
        _check_range("index.leaves_to_search", self.leaves_to_search, 1, MAX_LEAVES, zero_ok=True)
        _check_range("index.dims_per_block", self.dims_per_block, 1, MAX_DIMS_PER_BLOCK, zero_ok=True)
        _check_range("index.rebuild_threshold", self.rebuild_threshold, 1, MAX_REBUILD_THRESHOLD, zero_ok=True)
        _check_range("index.min_index_size", self.min_index_size, MIN_INDEX_SIZE, MAX_INDEX_SIZE)
        _check_range("index.oversample", self.oversample, 1, MAX_OVERSAMPLE, zero_ok=True)
        if self.num_leaves and self.leaves_to_search > self.num_leaves:
            raise invalid(
                "index.leaves_to_search",
                f"must be <= index.num_leaves ({self.num_leaves}), got {self.leaves_to_search}",
            )

    @property
    def recall_target(self) -> float:
        return self.target_recall or DEFAULT_TARGET_RECALL

    def leaves_for(self, n: int) -> int:
        """Partitions for an index over n points: about 100 points per leaf (ScaNN's guidance ~sqrt(n)..n/100)."""
        want = self.num_leaves or max(8, round(n / 100))
        return max(1, min(want, n // 8))

    def block_dims_for(self, dim: int) -> int:
        """AH dimensions per block: 1 on low-dimensional data, where 2 loses too much (measured: recall@10
        0.60 -> 0.95 on a 32-d mixture at oversample 4), else 2 (ScaNN's usual choice)."""
        return self.dims_per_block or (1 if dim <= 128 else 2)

    def search_leaves_for(self, num_leaves: int) -> int:
        return min(num_leaves, self.leaves_to_search or max(1, math.ceil(num_leaves * DEFAULT_PROBE_FRACTION)))

    def rebuild_after(self, indexed: int) -> int:
        """Fresh points that trigger a background rebuild: a quarter of the index, within bounds."""
        if self.rebuild_threshold:
            return self.rebuild_threshold
        return min(max(self.min_index_size, indexed // 4), 50_000)


@dataclass(frozen=True, kw_only=True)
class CollectionSpec:
    """What a collection is: its vectors' shape and metric, how it is split and indexed."""

    name: str
    dim: int
    metric: str = "l2"
    shards: int = 1
    index: IndexParams = field(default_factory=IndexParams)
    encoder: str = ""  # "name@version" of the bound encoder, or "" for plain vectors
    replicas: int = 1  # copies of each shard, on different nodes where the cluster has enough (cluster/replicas.py)
    write_quorum: int = 0  # replicas a write must be durable on before it is acknowledged; 0 = a majority
    # Which embedding generation serves: 0 at creation, then the number of each reindex that was promoted
    # (router/reindex.py); generation g > 0 keeps its shards under gen-<g>/.
    embedding_generation: int = 0
    # The live recall (router/recall_monitor.py) below this raises the collection's recall flag; 0 = DEFAULT_RECALL_SLO.
    recall_slo: float = 0.0

    @property
    def quorum(self) -> int:
        """The write quorum in force: the one asked for, else a majority of the replicas."""
        return self.write_quorum or self.replicas // 2 + 1

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise invalid(
                "name",
                f"must be 1-128 characters of [A-Za-z0-9_.-] starting with a letter or digit, got {excerpt(self.name)}",
            )
        _check_range("dim", self.dim, 1, MAX_DIM)
        if self.metric not in METRICS:
            raise invalid("metric", f"must be one of {{{', '.join(METRICS)}}}, got {excerpt(self.metric)}")
        _check_range("shards", self.shards, 1, MAX_SHARDS)
        _check_range("replicas", self.replicas, 1, MAX_REPLICAS)
        _check_range("write_quorum", self.write_quorum, 1, self.replicas, zero_ok=True)
        if self.recall_slo and not 0.5 <= self.recall_slo <= 1.0:  # NaN fails this too
            raise invalid("recall_slo", f"must be 0 (default {DEFAULT_RECALL_SLO}) or in [0.5, 1.0], got {self.recall_slo}")
        if self.embedding_generation < 0:
            raise invalid("embedding_generation", f"must be >= 0, got {self.embedding_generation}")


def check_rows(vectors: np.ndarray, metric: str, field: str) -> None:
    """Refuse rows that are not finite, too large to index, or (cosine) too small to normalise.

    Shared by the router (before anything is routed) and the shard (its own guard): a value
    that passes here cannot crash a ScaNN build or produce a non-finite distance.
    """
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        raise invalid(f"{field}[{int(np.argmin(finite))}]", "must be finite; got NaN or inf")
    sq = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)  # (n,) squared norms, exact enough
    big = np.flatnonzero(sq > MAX_SQUARED_NORM)
    if len(big):
        raise invalid(f"{field}[{big[0]}]", f"squared norm must be <= {MAX_SQUARED_NORM:g}, got {sq[big[0]]:.3g}")
    if metric == "cosine":
        small = np.flatnonzero(sq < MIN_COSINE_SQUARED_NORM)
        if len(small):
            raise invalid(f"{field}[{small[0]}]",
                          f"has (near-)zero norm ({math.sqrt(sq[small[0]]):.3g}); the cosine metric needs norm >= 1e-15")
