"""The figures a reindex's quality gate decides on, from what the serving path answered.

Both embedding generations are searched the way a client's search is (router/reindex.py runs the
searches); this module only scores the ranked ids: P@1, R@K and MAP@R against payload labels, and
the top-k overlap of two generations on the same live queries. Numpy only, so the gate's rule can be
tested on its own and read in one place.

MAP@R (Musgrave et al., "A Metric Learning Reality Check"): for a query whose label R other points
share, the mean over ranks i <= R of precision@i at the relevant ranks. The serving path answers at
most MAX_DEPTH hits per query, so R is capped there: a query of a larger class is scored as MAP@100
(the mean precision at its relevant ranks among the first 100, over 100), the same for both
generations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DEPTH = 100  # the deepest ranking asked of the serving path for MAP@R


def ranked_labels(hit_ids: list[list[str]], query_ids: list[str], label_of: dict[str, str]) -> list[list[str | None]]:
    """Each query's hits as labels, the query's own point left out (it is in the collection it searches)."""
    return [[label_of.get(h) for h in hits if h != q] for q, hits in zip(query_ids, hit_ids)]


def labelled_metrics(ranked: list[list[str | None]], query_labels: list[str], relevant: list[int],
                     k: int) -> dict[str, float]:
    """P@1, R@k (at least one relevant hit in the top k) and MAP@R (R capped at MAX_DEPTH) over the queries.
    relevant: how many other points share each query's label (its R)."""
    n = len(ranked)
    if n == 0:
        return {"p_at_1": 0.0, f"r_at_{k}": 0.0, "map_at_r": 0.0, "queries": 0}
    p1 = rk = ap = 0.0
    for hits, label, r in zip(ranked, query_labels, relevant):
        rel = np.array([h == label for h in hits], bool)
        p1 += bool(rel[:1].any())
        rk += bool(rel[:k].any())
        r = min(r, MAX_DEPTH)
        if r > 0:
            top = rel[:r]
            precision = np.cumsum(top) / np.arange(1, len(top) + 1)
            ap += float((precision * top).sum()) / r
    return {"p_at_1": p1 / n, f"r_at_{k}": rk / n, "map_at_r": ap / n, "queries": n}


def overlap(a: list[list[str]], b: list[list[str]], k: int) -> float:
    """The mean fraction of the top k that two rankings of the same queries share."""
    if not a:
        return float("nan")
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b)]))


@dataclass(frozen=True)
class GateRule:
    """The new generation passes when its P@1 and MAP@R each reach the current one's plus `min_gain` (negative:
    a tolerated loss), and, when min_overlap > 0, the two agree on at least that share of live queries' top k."""

    min_gain: float = 0.0
    min_overlap: float = 0.0

    def decide(self, current: dict[str, float], candidate: dict[str, float], live_overlap: float) -> tuple[bool, str]:
        short = [f"{m} {candidate[m]:.4f} < {current[m]:.4f} + {self.min_gain:g}"
                 for m in ("p_at_1", "map_at_r") if candidate[m] < current[m] + self.min_gain - 1e-12]
        if self.min_overlap > 0 and not np.isnan(live_overlap) and live_overlap < self.min_overlap:
            short.append(f"live top-k overlap {live_overlap:.3f} < {self.min_overlap:g}")
        if short:
            return False, "the new generation is not good enough: " + "; ".join(short)
        return True, (f"the new generation is at least as good: p_at_1 {candidate['p_at_1']:.4f} vs "
                      f"{current['p_at_1']:.4f}, map_at_r {candidate['map_at_r']:.4f} vs {current['map_at_r']:.4f} "
                      f"(min_gain {self.min_gain:g})")


MIN_CANARY_SEARCHES = 20  # fewer on either side: latency is not compared (errors still are)


def canary_verdict(f: dict[str, float], max_latency_ratio: float) -> tuple[bool, str]:
    """Whether a canary regressed: its error rate above the current generation's by more than a point, or (with
    enough searches on both sides) its p50 above max_latency_ratio x the current's plus 1 ms."""
    regress = []
    if f["canary_error_rate"] > f["current_error_rate"] + 0.01:
        regress.append(f"error rate {f['canary_error_rate']:.3f} vs {f['current_error_rate']:.3f}")
    if min(f["canary_searches"], f["current_searches"]) >= MIN_CANARY_SEARCHES and \
            f["canary_p50_ms"] > max_latency_ratio * f["current_p50_ms"] + 1.0:
        regress.append(f"p50 {f['canary_p50_ms']:.2f} ms vs {f['current_p50_ms']:.2f} ms")
    return not regress, ("regressed: " + "; ".join(regress)) if regress else "no regression"
