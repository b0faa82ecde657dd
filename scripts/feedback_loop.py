"""The feedback loop closed (issue 19, item 5): a glyph collection served on a deliberately weak encoder v1,
a synthetic feedback stream recorded through Points.Feedback, then fine-tuning from v1 the way `simsearch train`
does it (its data: collection reading, labelled kept inputs + the feedback log) with and without feedback,
for the same steps; each scored on held-out queries (never used for feedback) against the same items.

    python scripts/feedback_loop.py [--seeds 3] [--classes 32] [--per-class 30] [--epochs 30] [--v1-steps 10]

Each seed renders its own glyphs (datasets/glyphs.py). Per class: 16 items are upserted into the collection with
their class as a payload label, 8 images are feedback queries (searched through the server, top 10 shown, the
first shown item of the query's class chosen, or none), the rest are held out. Prints P@1 and MAP@R of v1,
of v2 fine-tuned on labels only and of v2 fine-tuned on labels + feedback, and the feedback counts; writes
docs/benchmarks/feedback-loop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from simsearch.client import Client
from simsearch.cluster import start_ray, stop_ray
from simsearch.datasets.glyphs import write_glyph_folder
from simsearch.encoder import registry
from simsearch.encoder.config import TrainConfig
from simsearch.encoder.metrics import retrieval_metrics
from simsearch.encoder.pipeline import train_and_register
from simsearch.encoder.sources import read_image_folder, task_from_arrays
from simsearch.router.app import EmbeddedServer, ServeConfig

KEY = "feedback-loop-key-0123456789"
METRICS = ("p@1", "map@r")
ITEMS, FEEDBACK_QUERIES = 16, 8  # per class; the rest of each class is held out
NETWORK = {"backbone": "cnn", "width": 16, "embedding_dim": 32, "loss": "proxy-anchor", "batch_size": 64,
           "m_per_class": 4, "augment": False, "num_threads": 2,
           "patience": 1000}  # the same steps with and without feedback: no early stop


def split(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: collection items, feedback queries, held-out queries (indices)."""
    parts: tuple[list, list, list] = ([], [], [])
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        for part, chunk in zip(parts, (idx[:ITEMS], idx[ITEMS:ITEMS + FEEDBACK_QUERIES], idx[ITEMS + FEEDBACK_QUERIES:])):
            part.extend(chunk)
    return tuple(np.asarray(p) for p in parts)  # type: ignore[return-value]


def record_feedback(client: Client, collection: str, queries: np.ndarray, query_y: np.ndarray,
                    item_y: np.ndarray) -> dict[str, int]:
    """The synthetic user: shown = the server's top 10, chosen = the first shown item of the query's class."""
    res = client.search(collection, images=queries[:, 0], k=10)
    chosen_at = []
    for q, y, shown in zip(queries, query_y, res.ids):
        hit = [i for i in shown if item_y[int(i)] == y]
        client.feedback(collection, image=q[0], shown=list(shown), chosen=hit[0] if hit else "")
        chosen_at.append(list(shown).index(hit[0]) if hit else -1)
    at = np.asarray(chosen_at)
    return {"events": len(at), "chosen_first": int((at == 0).sum()), "chosen_below_first": int((at > 0).sum()),
            "none_chosen": int((at < 0).sum())}


def fine_tune(cfg: TrainConfig, models: Path) -> tuple[str, dict]:
    """What `simsearch train CONFIG` does for data: format collection (cli.py), in this process."""
    from simsearch.cli import _collection_feedback, _collection_task

    task = _collection_task(cfg.data, cfg.val_fraction, cfg.seed)
    feedback = _collection_feedback(cfg.data, task) if cfg.data.get("feedback") else None
    ref, metrics, _ = train_and_register(cfg, root=models, task=task, feedback=feedback, progress=False)
    return ref, metrics


def score(ref: str, models: Path, queries: np.ndarray, query_y: np.ndarray, items: np.ndarray,
          item_y: np.ndarray) -> dict[str, float]:
    model = registry.load(ref, models)
    got = retrieval_metrics(model.embed(queries), query_y, model.embed(items), item_y, metric="cosine")
    return {m: float(got[m]) for m in METRICS}


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write_glyph_folder(root / "glyphs", classes=args.classes, per_class=args.per_class, size=args.size, seed=seed)
        x, y, _ = read_image_folder(root / "glyphs")  # (N, 1, S, S) uint8
        items, fb_q, held = split(y, np.random.default_rng(seed))
        models = root / "data" / "models"
        # v1: the weak encoder the collection is served on: a few steps on the items' labels
        weak = TrainConfig(name="glyphs", **NETWORK, epochs=1, max_steps_per_epoch=args.v1_steps, seed=seed)
        labelled = np.concatenate([np.flatnonzero(y[items] == c)[:args.labelled] for c in np.unique(y)])
        v1_task = task_from_arrays("glyph-items", x[items[labelled]], y[items[labelled]], "item", 0.2, 0.1, seed)
        v1, _, _ = train_and_register(weak, root=models, task=v1_task, progress=False)
        server = EmbeddedServer(ServeConfig(port=0, data_dir=root / "data", bootstrap_key=KEY)).start()
        try:
            with Client(server.address, api_key=KEY, timeout=600) as client:
                client.create_collection("glyphs", encoder=v1)
                client.upsert("glyphs", [str(i) for i in range(len(items))], images=x[items][:, 0],
                              payloads=[{"label": int(y[i])} if n in set(labelled) else {}
                                        for n, i in enumerate(items)])
                t0 = time.perf_counter()
                stream = record_feedback(client, "glyphs", x[fb_q], y[fb_q], y[items])
                stream["record_s"] = time.perf_counter() - t0
            os.environ["SIMSEARCH_API_KEY"] = KEY
            data = {"format": "collection", "address": server.address, "collection": "glyphs", "label_field": "label",
                    "split": "item"}
            tune = TrainConfig(name="glyphs", **NETWORK, epochs=args.epochs, init_from=v1, seed=seed, data=data)
            t0 = time.perf_counter()
            labels_only, _ = fine_tune(tune, models)
            labels_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            with_fb, fb_metrics = fine_tune(tune.replace(data={**data, "feedback": True}), models)
            feedback_s = time.perf_counter() - t0
        finally:
            server.stop()
        figures = {name: score(ref, models, x[held], y[held], x[items], y[items])
                   for name, ref in (("v1", v1), ("labels", labels_only), ("feedback", with_fb))}
    return {"seed": seed, "held_out_queries": len(held), "items": len(items), "stream": stream,
            "mined": fb_metrics["feedback"], "train_s": {"labels": labels_s, "feedback": feedback_s}, **figures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classes", type=int, default=32)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--labelled", type=int, default=ITEMS, help="items of each class with a label")
    parser.add_argument("--v1-steps", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/feedback-loop.json"))
    args = parser.parse_args()
    runs = []
    start_ray(None, num_cpus=2, object_store_bytes=512 << 20)  # one Ray for every seed's encoder replicas
    try:
        for seed in range(args.seeds):
            runs.append(run_seed(seed, args))
            run = runs[-1]
            print(f"seed {seed}: " + "; ".join(f"{m} v1 {run['v1'][m]:.3f}, labels {run['labels'][m]:.3f}, "
                                              f"feedback {run['feedback'][m]:.3f}" for m in METRICS)
                  + f" ({run['mined']['used']} events used, {run['mined']['hard_negatives']} hard negatives; "
                    f"train {run['train_s']['labels']:.0f} / {run['train_s']['feedback']:.0f} s)", flush=True)
    finally:
        stop_ray()
    summary = {}
    for m in METRICS:
        for name, base in (("feedback-v1", "v1"), ("labels-v1", "v1"), ("feedback-labels", "labels")):
            g = [r["feedback" if name.startswith("feedback") else "labels"][m] - r[base][m] for r in runs]
            summary[f"{name} {m}"] = {"mean": float(np.mean(g)), "sd": float(np.std(g, ddof=1)) if len(g) > 1 else 0.0,
                                      "min": float(np.min(g))}
    for k, s in summary.items():
        print(f"gain {k}: {s['mean']:+.3f} ± {s['sd']:.3f} (smallest {s['min']:+.3f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                    "gain": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
