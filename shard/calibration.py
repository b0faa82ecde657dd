"""Recall calibration of a freshly built ScaNN index: which search setting meets a recall target, cheapest.

After each build the shard takes a sample of its own indexed points as queries, finds their exact top-k
(brute force) and ScaNN's re-ranked top-k at a ladder of settings (leaves searched from 1 up to every
leaf; k x oversample candidates), each query's own row left out of both answers (it would be a free hit
that a real query, which is not stored, never gets). The measured curve picks the cheapest setting whose
recall@k meets the target, by the shard's cost model (rows of the leaves scanned + candidates re-ranked),
and is kept with the index so a search can ask for its own target.

Cost cap: a twentieth of the rows as queries, at most SAMPLE_MAX of them and EXACT_WORK_MAX multiply-adds
for the exact pass (never fewer than SAMPLE_MIN queries); the ScaNN sweep stops once recall saturates, so it scans the sample's leaves
about 3 times over in the worst case. It runs in the build's background thread, before the new index
is swapped in, so no search waits for it and no index serves uncalibrated.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from simsearch.reranker import Scorer, top_k

K = 10  # recall@10, what the target means
SAMPLE_MAX = 500  # queries: a recall estimate good to about +-0.005 (standard error at recall 0.95)
SAMPLE_MIN = 100
EXACT_WORK_MAX = 25_000_000_000  # sample x rows x dim multiply-adds for the exact pass (~1 s of BLAS on 2 cores)
OVERSAMPLES = (1, 2, 4, 8, 16)  # k x oversample coarse candidates re-ranked exactly
LEAF_STEP = 1.5  # leaves searched grow geometrically from 1 to every leaf
SATURATED = 0.999  # stop widening once the best setting at these leaves finds this much
# Misses allowed on the sample, as a share of those the target allows: real queries are not stored points.
# Measured on MiniLM text (WordNet definitions stored, another dictionary's definitions as queries): the
# queries missed 1.3-1.4x as many neighbours as the sample at every setting (0.944 where the sample had 0.957).
HEADROOM = 0.7
CHUNK = 64  # sample queries scored together (bounds the candidate gather: 64 x 161 x dim floats)
# The shard's cost model (shard/shard.py, in units of one row scored exactly): a row of the leaves
# scanned (its AH codes) and a candidate selected and re-ranked.
LEAF_ROW_COST = 0.6
CANDIDATE_COST = 5 + 40
SWITCH = "SIMSEARCH_CALIBRATION"  # "off": keep the uncalibrated defaults (the benchmark's "before" side)
FILE = "calibration.json"


def enabled() -> bool:
    return os.environ.get(SWITCH, "on").lower() not in ("off", "0", "false", "no")


@dataclass(frozen=True)
class Setting:
    leaves: int
    oversample: int
    recall: float  # mean recall@K over the sample
    se: float  # its standard error
    cost: float  # the cost model's estimate per query

    def meets(self, target: float) -> bool:
        """Whether it meets `target` with room: the mean less two standard errors (the sample is small) misses
        at most HEADROOM of what the target allows (queries that are not stored points miss more)."""
        return self.recall - 2 * self.se >= 1 - (1 - target) * HEADROOM


@dataclass(frozen=True)
class Calibration:
    target: float  # the collection's target the defaults were picked for
    sample: int  # queries measured
    seconds: float  # wall time of the calibration
    curve: tuple[Setting, ...]

    def pick(self, target: float, *, leaves: int = 0, oversample: int = 0) -> Setting | None:
        """The cheapest measured setting that meets `target` (among those with the leaves/oversample
        given, when not 0); the one with the highest recall when none does; None when none was measured."""
        ok = [s for s in self.curve if (not leaves or s.leaves == leaves) and (not oversample or s.oversample == oversample)]
        if not ok:
            return None
        meets = [s for s in ok if s.meets(target)]
        if meets:
            return min(meets, key=lambda s: (s.cost, -s.recall))
        return max(ok, key=lambda s: (s.recall, -s.cost))

    def recall_of(self, leaves: int, oversample: int) -> float:
        """The measured recall of one setting, 0.0 when it was not measured."""
        return next((s.recall for s in self.curve if s.leaves == leaves and s.oversample == oversample), 0.0)

    def to_json(self) -> str:
        return json.dumps({"target": self.target, "sample": self.sample, "seconds": self.seconds,
                           "curve": [asdict(s) for s in self.curve]})

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        doc = json.loads(text)
        return cls(float(doc["target"]), int(doc["sample"]), float(doc["seconds"]),
                   tuple(Setting(**s) for s in doc["curve"]))


def leaf_ladder(num_leaves: int, extra: int = 0) -> list[int]:
    """1, 2, 3, 5, 8, ... up to num_leaves (always included), plus `extra` (an explicit setting) when set."""
    out, value = set(), 1
    while value < num_leaves:
        out.add(value)
        value = max(value + 1, math.ceil(value * LEAF_STEP))
    out.add(num_leaves)
    if extra:
        out.add(min(extra, num_leaves))
    return sorted(out)


def sample_size(n: int, dim: int) -> int:
    """A twentieth of the rows within [SAMPLE_MIN, SAMPLE_MAX] (a small shard's build is cheap, and so must its
    calibration be), fewer where the exact pass would pass EXACT_WORK_MAX, never under SAMPLE_MIN."""
    return int(min(n, max(SAMPLE_MIN, min(SAMPLE_MAX, n // 20, EXACT_WORK_MAX // max(1, n * dim)))))


def calibrate(search, vectors: np.ndarray, scorer: Scorer, *, num_leaves: int, target: float,
              leaves: int = 0, oversample: int = 0, seed: int = 0) -> Calibration:
    """Measure the recall curve of `search(queries, count, leaves) -> (rows (s, c) int64, valid (s, c) bool)`
    (CoarseIndex.search) over `vectors`, the rows it indexes. leaves/oversample: explicit settings to
    measure as well (0: none)."""
    t0 = time.perf_counter()
    n = len(vectors)
    s = sample_size(n, vectors.shape[1])
    picked = np.sort(np.random.default_rng(seed).choice(n, s, replace=False))
    queries = vectors[picked]  # (s, dim)
    kth = _exact_kth(queries, picked, vectors, scorer)  # (s,) distance of each query's K-th true neighbour
    overs = sorted(set(OVERSAMPLES) | ({oversample} if oversample else set()))
    curve: list[Setting] = []
    for nl in leaf_ladder(num_leaves, leaves):
        found = _found(search, queries, picked, vectors, scorer, kth, nl, overs)  # (len(overs), s)
        for o, hits in zip(overs, found):
            r = hits / K
            cost = LEAF_ROW_COST * n * nl / num_leaves + CANDIDATE_COST * K * o
            curve.append(Setting(nl, o, float(r.mean()), float(r.std() / math.sqrt(s)), cost))
        if max(found.mean(axis=1)) / K >= SATURATED and not (leaves and nl < leaves):
            break  # wider settings cannot find more than this (they only cost more)
    return Calibration(target, s, time.perf_counter() - t0, tuple(curve))


def _exact_kth(queries: np.ndarray, picked: np.ndarray, vectors: np.ndarray, scorer: Scorer) -> np.ndarray:
    """Each sample query's exact K-th neighbour distance, its own row left out: a matmul pass picks
    finalists, scored again in the precise form (the same form the shard's re-rank uses)."""
    out = np.empty(len(queries), np.float32)
    for i in range(0, len(queries), CHUNK):
        q = queries[i:i + CHUNK]
        dist = scorer.score_all(q, vectors).astype(np.float32)  # (c, n)
        dist[np.arange(len(q)), picked[i:i + CHUNK]] = np.inf
        pos, _ = top_k(dist, 2 * K + 8)
        precise = np.sort(scorer.score_candidates(q, vectors[pos]).astype(np.float32), axis=1)
        out[i:i + CHUNK] = precise[:, min(K, precise.shape[1]) - 1]
    return out


def _found(search, queries: np.ndarray, picked: np.ndarray, vectors: np.ndarray, scorer: Scorer,
           kth: np.ndarray, leaves: int, overs: list[int]) -> np.ndarray:
    """(len(overs), s): true top-K neighbours among the first K x o candidates of each query at these leaves
    (ScaNN's candidates for a smaller count are a prefix of those for a larger one: no re-ordering)."""
    rows, valid = search(queries, K * max(overs) + 1, leaves)  # +1: the query's own row, left out below
    valid &= rows != picked[:, None]
    rank = np.cumsum(valid, axis=1)  # (s, c) position among the valid candidates
    out = np.zeros((len(overs), len(queries)))
    for i in range(0, len(queries), CHUNK):
        q, r, v = queries[i:i + CHUNK], rows[i:i + CHUNK], valid[i:i + CHUNK]
        dist = scorer.score_candidates(q, vectors[r]).astype(np.float32)  # (c, cand)
        bound = kth[i:i + CHUNK, None]
        true = v & (dist <= bound + 1e-5 * np.abs(bound) + 1e-7)  # ties at the K-th distance count as found
        for j, o in enumerate(overs):
            out[j, i:i + CHUNK] = np.minimum((true & (rank[i:i + CHUNK] <= K * o)).sum(axis=1), K)
    return out
