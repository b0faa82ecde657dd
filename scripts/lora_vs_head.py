"""Text adapters on held-out words (issue 19 item 6): the head adapter on frozen MiniLM against LoRA inside
MiniLM (r=8, r=16), trained by `simsearch.encoder.trainer.train` on the same GCIDE -> WordNet pairs with the
same seed, scored on the same 1,000 held-out words (R@1, R@10, MRR) beside frozen MiniLM, on this machine's
device (the CPU here) with each run's wall-clock and process CPU seconds.

    python scripts/lora_vs_head.py [--max-train 1200] [--epochs 1] [--batch 64] [--lr 1e-3] [--ranks 8,16]

LoRA runs MiniLM forward and backward at every step, so on a 2-core CPU it sees far fewer pairs than the head
(whose inputs are MiniLM embeddings computed once, cached): the defaults fit a ~15-minute budget, and the
head is also shown trained on every pair (the shipped `encoder.report.TEXT`). Writes
docs/benchmarks/lora-vs-head.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from simsearch.encoder.config import TrainConfig
from simsearch.encoder.data import Task, load_task
from simsearch.encoder.metrics import retrieval_metrics
from simsearch.encoder.report import TEXT
from simsearch.encoder.trainer import evaluate, pick_device, train

METRICS = ("r@1", "r@10", "mrr")


def _run(label: str, cfg: TrainConfig, task: Task, base: dict[str, float]) -> dict[str, Any]:
    cpu0 = time.process_time()
    result = train(cfg, task=task, progress=False)
    train_cpu = time.process_time() - cpu0
    t0 = time.perf_counter()
    scores = evaluate(result.model, task.test)
    eval_s = time.perf_counter() - t0
    trained = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    row = {"method": label, **{k: scores[k] for k in METRICS}, "gain_r@1": 100 * (scores["r@1"] - base["r@1"]),
           "train_wall_s": result.wall_s, "train_cpu_s": train_cpu, "test_eval_s": eval_s,
           "trained_params": trained, "pairs_fit": len(task.fit_y) // 2, "epochs_run": len(result.history),
           "best_epoch": result.best_epoch, "config": cfg.to_dict()}
    print(f"  {label}: R@1 {scores['r@1']:.3f} ({row['gain_r@1']:+.1f})  train {result.wall_s:.0f} s wall, "
          f"{train_cpu:.0f} s CPU", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train", type=int, default=1200, help="training words (pairs) for the like-for-like rows")
    parser.add_argument("--epochs", type=int, default=1, help="LoRA epochs over those pairs")
    parser.add_argument("--batch", type=int, default=64, help="LoRA batch, in texts (two per word)")
    parser.add_argument("--lr", type=float, default=1e-3, help="LoRA peak learning rate (one-cycle)")
    parser.add_argument("--ranks", default="8,16")
    parser.add_argument("--targets", default="query,value", help="MiniLM matrices that get adapters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-full-head", action="store_true", help="skip the head trained on every pair")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/lora-vs-head.json"))
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    load_before = os.getloadavg()
    start = time.perf_counter()
    # val_fraction 0.05: LoRA's per-epoch validation runs MiniLM too; 40 words are enough to keep the best epoch
    head = TEXT.replace(name="head", seed=args.seed, max_train=args.max_train, val_fraction=0.05)
    lora = TrainConfig(name="lora", dataset="text-pairs", backbone="minilm", embedding_dim=384, adapter="lora",
                       loss="supcon", temperature=0.05, batch_size=args.batch, m_per_class=2, epochs=args.epochs,
                       patience=args.epochs, lr=args.lr, weight_decay=0.01, augment=False, seed=args.seed,
                       max_train=args.max_train, val_fraction=0.05, lora_targets=tuple(args.targets.split(",")),
                       num_threads=os.cpu_count() or 1)
    head_task, token_task = load_task(head), load_task(lora)
    t = head_task.test
    base = retrieval_metrics(t.query_x, t.query_y, t.ref_x, t.ref_y, metric="cosine")
    device = pick_device(lora.device)
    print(f"{len(t.query_y)} held-out words; frozen MiniLM R@1 {base['r@1']:.3f}; device {device}; "
          f"load average {load_before[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rows = [{"method": "frozen all-MiniLM-L6-v2", **{k: base[k] for k in METRICS}, "gain_r@1": 0.0}]
    rows.append(_run(f"head (residual MLP, `TEXT`), same {args.max_train} words", head, head_task, base))
    for r in map(int, args.ranks.split(",")):
        cfg = lora.replace(name=f"lora-r{r}", lora_r=r, lora_alpha=2 * r)
        rows.append(_run(f"LoRA r={r} on {args.targets}, same {args.max_train} words, {args.epochs} epoch(s)",
                         cfg, token_task, base))
    if not args.no_full_head:
        full = TEXT.replace(name="head-full", seed=args.seed)
        rows.append(_run("head (residual MLP, `TEXT`), every training word", full, load_task(full), base))
    for row in rows:
        if "train_wall_s" in row and row["config"]["adapter"] != "head":
            texts = row["pairs_fit"] * 2 * row["epochs_run"]
            row["train_texts_per_s"] = texts / row["train_wall_s"]
    out = {"command": "python " + " ".join(sys.argv), "device": str(device), "cpu_count": os.cpu_count(),
           "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "held_out_words": len(t.query_y), "total_wall_s": time.perf_counter() - start, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float) + "\n")
    print("\n| method | R@1 | R@10 | MRR | R@1 gain (points) | trained params | train wall (s) | train CPU (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        wall, cpu = row.get("train_wall_s"), row.get("train_cpu_s")
        print(f"| {row['method']} | {row['r@1']:.3f} | {row['r@10']:.3f} | {row['mrr']:.3f} | {row['gain_r@1']:+.1f} | "
              f"{row.get('trained_params', 0):,} | {'-' if wall is None else f'{wall:.0f}'} | "
              f"{'-' if cpu is None else f'{cpu:.0f}'} |")
    print(f"\nload average {load_before[0]:.1f} before, {out['load_average_after'][0]:.1f} after; "
          f"total {out['total_wall_s']:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
