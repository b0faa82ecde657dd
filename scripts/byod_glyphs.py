"""Training on a folder of images the project never saw (issue 19, "Done when" 1): rendered glyphs, 48 classes,
10 held out as unseen test classes; the trained encoder against raw pixels on the same held-out queries,
over several seeds (each seed renders its own folder, picks its own classes and trains afresh).

    python scripts/byod_glyphs.py [--seeds 3] [--classes 48] [--per-class 30] [--epochs 12]

Prints each seed's P@1, MAP@R, R@10 and MRR for both, and the mean and standard deviation of the gain;
writes docs/benchmarks/byod-glyphs.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from simsearch.datasets.glyphs import write_glyph_folder
from simsearch.encoder.config import TrainConfig
from simsearch.encoder.data import load_task
from simsearch.encoder.pipeline import raw_baselines
from simsearch.encoder.trainer import evaluate, train

METRICS = ("p@1", "map@r", "r@10", "mrr")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classes", type=int, default=48)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/byod-glyphs.json"))
    args = parser.parse_args()
    runs = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as d:
            write_glyph_folder(Path(d), classes=args.classes, per_class=args.per_class, size=32, seed=seed)
            cfg = TrainConfig(name="glyphs", data={"format": "image-folder", "path": d}, backbone="cnn",
                              epochs=args.epochs, batch_size=128, m_per_class=8, augment=False, seed=seed)
            task = load_task(cfg)
            raw = raw_baselines(task, seed=seed)["raw"]
            t0 = time.perf_counter()
            result = train(cfg, task=task, progress=False)
            wall = time.perf_counter() - t0
            enc = evaluate(result.model, task.test)
        run = {"seed": seed, "train_s": wall, "test_queries": len(task.test.query_x),
               "test_classes": int(len(np.unique(task.test.query_y))), "fit_classes": task.num_classes,
               "raw": {m: raw[m] for m in METRICS}, "encoder": {m: enc[m] for m in METRICS}}
        runs.append(run)
        print(f"seed {seed}: " + ", ".join(f"{m} {run['raw'][m]:.3f} -> {run['encoder'][m]:.3f}" for m in METRICS)
              + f" (train {wall:.0f} s, {run['test_queries']} queries over {run['test_classes']} unseen classes)",
              flush=True)
    gains = {m: [r["encoder"][m] - r["raw"][m] for r in runs] for m in METRICS}
    summary = {m: {"mean": float(np.mean(g)), "sd": float(np.std(g, ddof=1)) if len(g) > 1 else 0.0,
                   "min": float(np.min(g))} for m, g in gains.items()}
    for m, s in summary.items():
        print(f"gain in {m}: {s['mean']:+.3f} ± {s['sd']:.3f} (smallest {s['min']:+.3f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"classes": args.classes, "per_class": args.per_class, "epochs": args.epochs,
                                    "runs": runs, "gain": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
