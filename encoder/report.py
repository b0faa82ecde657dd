"""The encoder report: Fashion-MNIST (raw pixels, PCA, the CNN under each loss) and text
(frozen MiniLM vs MiniLM + trained adapter on held-out words), as JSON, a markdown table and
PNG plots (training curves; a 2-D projection of the embedding space coloured by class).

    python -m simsearch.encoder.report [--out encoder-results] [--models-dir DIR] [--skip-text]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.encoder.config import LOSSES, TrainConfig
from simsearch.encoder.data import Task, load_task
from simsearch.encoder.metrics import retrieval_metrics
from simsearch.encoder.pipeline import raw_baselines, register, test_metrics
from simsearch.encoder.trainer import TrainResult, embed, train

# The best measured recipe (BENCHMARKS.md, "Encoders"): CNN w=32, batch-hard triplet plus a
# CosFace classification loss (margin 0.35 on the class angle), 11 epochs, mirror-averaged
# embeddings: test P@1 0.922, MAP@R 0.831 in 874 s of training on the 2-core CPU. Measured
# alternatives: the same with plain normalized softmax, MAP@R 0.781; semi-hard triplet, 0.796.
BEST = TrainConfig(name="fmnist-cnn", dataset="fashion-mnist", loss="hybrid", hybrid_metric_loss="triplet-batch-hard",
                   classifier="cosface", width=32, epochs=11, flip_average=True, num_threads=2)
# Each loss on the same budget, smaller net: a like-for-like comparison, not each loss's best.
PER_LOSS = dict(width=16, epochs=1, num_threads=2)
# NT-Xent is left out on Fashion-MNIST: PML's NTXentLoss builds a (positive pairs x negative
# pairs) matrix, 7,936 x 57,344 for a 256-batch of 32 images per class (22 s per step with a
# 512-entry memory here). SupCon, its multi-positive form at O(B^2), has the row instead;
# NT-Xent's fit is two views per label, as in the text task.
FMNIST_LOSSES = tuple(loss for loss in LOSSES if loss != "ntxent")
# Text: SupCon over in-batch negatives. With two items per word (its GCIDE and its WordNet
# definition) SupCon is NT-Xent, but pytorch-metric-learning's SupCon costs O(B^2) where its
# NTXentLoss materialises (positive pairs x negative pairs), O(B^3): 8 ms vs 490 ms per
# 256-batch step here, so batches of 1,024 train in seconds. Measured on the held-out words:
# +3.1 R@1 (this config), +2.2 with NT-Xent at batch 256; a token-level attention-pooling
# adapter reached +3.4 and hard-negative (k-means) batches did not help (BENCHMARKS.md).
TEXT = TrainConfig(name="gcide-minilm-adapter", dataset="text-pairs", backbone="minilm", embedding_dim=384,
                   loss="supcon", temperature=0.05, batch_size=1024, m_per_class=2, width=512, epochs=20,
                   lr=3e-4, augment=False, patience=5, num_threads=2)


def _row(name: str, metrics: dict[str, Any], wall_s: float | None) -> dict[str, Any]:
    return {"method": name, **{k: metrics[k] for k in ("p@1", "map@r", "r@1", "r@10", "mrr") if k in metrics},
            "train_s": wall_s}


def _run(cfg: TrainConfig, task: Task, models_dir: Path | None) -> tuple[TrainResult, dict[str, Any], str]:
    result = train(cfg, task=task)
    metrics = test_metrics(result, task)
    return result, metrics, register(result, task, metrics, models_dir)


def fashion_mnist(out: Path, models_dir: Path | None) -> dict[str, Any]:
    task = load_task(BEST)
    result, metrics, ref = _run(BEST, task, models_dir)
    rows = [_row(f"CNN + hybrid (batch-hard triplet + CosFace, mirror-averaged), w=32, {BEST.epochs} ep [{ref}]",
                 metrics, result.wall_s)]
    curves = {f"hybrid w=32 (best)": result.history}
    for name, m in raw_baselines(task).items():
        rows.append(_row("raw pixels (l2)" if name == "raw" else f"{name.upper()} of pixels (l2)", m, None))
    for loss in FMNIST_LOSSES:
        cfg = BEST.replace(name=f"fmnist-{loss}", loss=loss, memory_size=512 if loss == "supcon" else 0,
                           **PER_LOSS)
        r = train(cfg, task=task)
        rows.append(_row(f"CNN + {loss}, w={cfg.width}, {cfg.epochs} ep", test_metrics(r, task), r.wall_s))
        curves[loss] = r.history
    _plot_curves(curves, out / "fmnist_training_curves.png", "Fashion-MNIST: validation MAP@R per epoch")
    _plot_projection(task, result, out / "fmnist_embedding_2d.png")
    return {"rows": rows, "best": ref, "best_config": BEST.to_dict(), "best_metrics": metrics}


def text(out: Path, models_dir: Path | None) -> dict[str, Any]:
    task = load_task(TEXT)
    frozen = retrieval_metrics(task.test.query_x, task.test.query_y, task.test.ref_x, task.test.ref_y, metric="cosine")
    result, metrics, ref = _run(TEXT, task, models_dir)
    rows = [_row("frozen MiniLM (all-MiniLM-L6-v2)", frozen, None),
            _row(f"MiniLM + trained adapter ({TEXT.loss}, in-batch negatives, batch {TEXT.batch_size:,}) [{ref}]", metrics, result.wall_s)]
    _plot_curves({"adapter": result.history}, out / "text_training_curves.png",
                 "GCIDE -> WordNet: validation R@1 per epoch", key="val_p@1")
    return {"rows": rows, "model": ref, "frozen": frozen, "adapter": metrics,
            "r@1_gain_points": 100 * (metrics["r@1"] - frozen["r@1"])}


def _plot_curves(curves: dict[str, list[dict[str, float]]], path: Path, title: str, key: str = "val_map@r") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, hist in curves.items():
        epochs = [h["epoch"] for h in hist]
        a.plot(epochs, [h["train_loss"] for h in hist], marker="o", label=name)
        b.plot(epochs, [h[key] for h in hist], marker="o", label=name)
    a.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    b.set(xlabel="epoch", ylabel=key.removeprefix("val_"), title=title)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_projection(task: Task, result: TrainResult, path: Path, n: int = 3000) -> None:
    """PCA to 2-D of raw pixels vs the trained embedding, test images coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x, y = task.test.query_x[:n], task.test.query_y[:n]
    views = {"raw pixels (t-SNE)": x.reshape(n, -1).astype(np.float32), "trained encoder (t-SNE)": embed(result.model, x)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, (name, v) in zip(axes, views.items()):
        v = PCA(n_components=min(50, v.shape[1]), random_state=0).fit_transform(v)
        xy = TSNE(n_components=2, random_state=0, init="pca").fit_transform(v)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=3)
        ax.set(title=name, xticks=[], yticks=[])
    fig.colorbar(sc, ax=axes, ticks=range(10), label="class")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "| method | " + " | ".join(cols) + " | train wall (s) |\n|---|" + "---|" * (len(cols) + 1) + "\n"
    body = "".join(f"| {r['method']} | " + " | ".join(f"{r[c]:.4f}" if c in r else "" for c in cols)
                   + f" | {r['train_s']:.0f} |\n" if r["train_s"] is not None else
                   f"| {r['method']} | " + " | ".join(f"{r[c]:.4f}" if c in r else "" for c in cols) + " | - |\n"
                   for r in rows)
    return head + body


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="encoder-results")
    p.add_argument("--models-dir", default=None)
    p.add_argument("--skip-text", action="store_true")
    p.add_argument("--skip-fmnist", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = Path(args.models_dir) if args.models_dir else None
    t0 = time.time()
    results: dict[str, Any] = {}
    md = ["# Encoder report\n"]
    if not args.skip_fmnist:
        results["fashion_mnist"] = fm = fashion_mnist(out, models)
        md += ["## Fashion-MNIST (test 10k queries vs train 60k reference)\n", _table(fm["rows"], ["p@1", "map@r", "r@10"]),
               "\n![training curves](fmnist_training_curves.png)\n![embedding](fmnist_embedding_2d.png)\n"]
    if not args.skip_text:
        results["text"] = tx = text(out, models)
        md += ["## Text: GCIDE definition -> WordNet definition, 1,000 held-out words\n",
               _table(tx["rows"], ["r@1", "r@10", "mrr"]),
               f"\nR@1 gain: {tx['r@1_gain_points']:+.1f} points.\n\n![text curves](text_training_curves.png)\n"]
    results["wall_s"] = time.time() - t0
    (out / "report.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "report.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
