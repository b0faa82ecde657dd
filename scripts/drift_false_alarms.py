"""How often the service's drift check cries wolf, and how soon it sees a real shift (issue 20, item 3).

    python scripts/drift_false_alarms.py [--runs 200]

Runs the server's own DriftMonitor (router/drift_monitor.py) with its default settings on real vectors: the
Fashion-MNIST test images as a plain-vector collection would receive them (784-d pixels, one query per request).
Each run feeds a reference stream of queries drawn at random from the images, then `checks` windows:
- in distribution: more queries drawn the same way -> a single check's exceedance rate and the alarm rate
  (an alarm needs `confirm` consecutive exceedances);
- shifted: queries of some classes only (a catalogue change) and brightened images (a camera change) -> how
  many checks until the alarm.
Writes docs/benchmarks/drift-false-alarms.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from simsearch.datasets import fashion_mnist
from simsearch.router.drift_monitor import DriftMonitor, DriftSettings

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "drift-false-alarms.json"
KEY = ("bench", "images")


def feed(m: DriftMonitor, pool: np.ndarray, rng: np.random.Generator, rows: int, per_request: int = 1) -> None:
    for _ in range(rows // per_request):
        m.observe(KEY, "queries", pool[rng.integers(len(pool), size=per_request)])


def run(pool: np.ndarray, shifted: np.ndarray | None, checks: int, seed: int, settings: DriftSettings,
        tmp: Path) -> tuple[int, int, int | None]:
    """(checks above the threshold, checks in alarm, the first check in alarm or None) over `checks` windows."""
    rng = np.random.default_rng(seed)
    m = DriftMonitor(settings, seed=seed)
    m.watch(KEY, tmp, pool.shape[1])
    feed(m, pool, rng, settings.reference_size)
    exceeded = alarms = 0
    first = None
    source = pool if shifted is None else shifted
    for c in range(checks):
        feed(m, source, rng, settings.window * settings.stride)  # a window's worth of sampled queries
        v = m.check(KEY)["queries"]
        exceeded += v["score"] > v["threshold"]
        alarms += v["alarm"]
        if v["alarm"] and first is None:
            first = c + 1
    return exceeded, alarms, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--checks", type=int, default=5, help="checks per run")
    args = ap.parse_args()
    logging.getLogger("simsearch.router.drift_monitor").setLevel(logging.ERROR)  # each alarm is counted, not logged
    ds = fashion_mnist()
    x, y = ds.test, ds.test_labels
    settings = DriftSettings()
    cases = {"in distribution": None, "one class of ten missing": x[y != 9], "classes 0-4 only": x[y < 5],
             "brighter (+1 % of 255, clipped)": np.minimum(x + 2.55, 255.0).astype(np.float32),
             "brighter (+10 % of 255, clipped)": np.minimum(x + 25.5, 255.0).astype(np.float32)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shifted in cases.items():
            exc = alarms = 0
            firsts = []
            for seed in range(args.runs):
                e, a, f = run(x, shifted, args.checks, seed, settings, Path(tmp))
                exc, alarms = exc + e, alarms + a
                firsts.append(f)
            n = args.runs * args.checks
            detected = [f for f in firsts if f is not None]
            results[name] = {"checks": n, "exceedance_rate": exc / n, "alarm_rate": alarms / n,
                             "runs_with_alarm": len(detected) / args.runs,
                             "median_checks_to_alarm": float(np.median(detected)) if detected else None}
            print(name, results[name], flush=True)
    OUT.write_text(json.dumps({"settings": settings.__dict__, "runs": args.runs, "checks_per_run": args.checks,
                               "data": "Fashion-MNIST test images, 784-d pixels", "results": results}, indent=2) + "\n")
    print("\n| queries | checks | single-check exceedance | checks in alarm | runs with an alarm | median checks to alarm |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        med = "—" if r["median_checks_to_alarm"] is None else f"{r['median_checks_to_alarm']:g}"
        print(f"| {name} | {r['checks']} | {r['exceedance_rate']:.3%} | {r['alarm_rate']:.3%} | "
              f"{r['runs_with_alarm']:.1%} | {med} |")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
