"""The training loop: seeded, M-per-class batches, OneCycle schedule, validation on
retrieval metrics every epoch, early stopping and best-checkpoint keeping.

Data-parallel training plugs in through keyword-only hooks (rank, world size, a model
wrapper, a reporter), so this module stays plain PyTorch; `simsearch.cluster.train` passes
Ray Train's versions of them."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_metric_learning.samplers import MPerClassSampler
from torch import nn
from tqdm.auto import tqdm

from simsearch.encoder.config import TrainConfig
from simsearch.encoder.data import Retrieval, Task, load_task
from simsearch.encoder.feedback import FeedbackSet, feedback_term
from simsearch.encoder.losses import build_objective
from simsearch.encoder.metrics import retrieval_metrics
from simsearch.encoder.model import Encoder, build_encoder

MONITOR = "map@r"  # = P@1 when each query has one relevant item (text pairs)


@dataclass
class TrainResult:
    model: Encoder  # the best epoch's weights, on CPU, in eval mode
    config: TrainConfig
    fingerprint: str
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    feedback: dict[str, Any] = field(default_factory=dict)  # what feedback mining found and used


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no GPU")
    return torch.device(name)


@torch.no_grad()
def embed(model: nn.Module, x: np.ndarray, *, batch_size: int = 1024, device: torch.device | None = None) -> np.ndarray:
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).to(device)).float().cpu()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, r: Retrieval, *, device: torch.device | None = None) -> dict[str, float]:
    q, ref = embed(model, r.query_x, device=device), embed(model, r.ref_x, device=device)
    return retrieval_metrics(q, r.query_y, ref, r.ref_y, metric="cosine",
                             device=str(device) if device is not None else "cpu")


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 2 pixels, vectorised over the batch."""
    b, _, h, w = x.shape  # (B, C, H, W) float pixel values
    flip = torch.rand(b, generator=gen, device="cpu").to(x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    shift = (torch.randint(-2, 3, (b, 2), generator=gen, device="cpu").float() * 2 / torch.tensor([w, h])).to(x.device)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def _epoch_batches(labels: np.ndarray, cfg: TrainConfig, epoch: int, rank: int, world: int) -> list[np.ndarray]:
    """M-per-class batches for one epoch; with `world` workers each rank takes its own slice."""
    torch.manual_seed(cfg.seed * 1000 + epoch)  # MPerClassSampler draws from torch's global RNG
    counts = np.bincount(labels)
    m = min(cfg.m_per_class, int(counts[counts > 0].min()))
    size = min(cfg.batch_size, m * int((counts > 0).sum())) // m * m  # few classes cap the batch
    sampler = MPerClassSampler(labels, m=m, batch_size=size, length_before_new_iter=len(labels))
    idx = np.fromiter(iter(sampler), np.int64)
    batches = [idx[i : i + size] for i in range(0, len(idx) - size + 1, size)]
    batches = batches[: len(batches) // world * world][rank::world]  # equal counts, or DDP waits forever
    if cfg.max_steps_per_epoch:
        batches = batches[: cfg.max_steps_per_epoch]
    return batches


def _sync_loss_grads(params: list[nn.Parameter], world_size: int) -> None:
    """Proxies and classifier weights live outside the DDP-wrapped model: average their
    gradients across workers ourselves so every replica keeps the same ones."""
    if world_size == 1 or not torch.distributed.is_initialized():
        return
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= world_size


def train(cfg: TrainConfig, *, task: Task | None = None, rank: int = 0,
          world_size: int = 1, prepare_model: Callable[[nn.Module], nn.Module] | None = None,
          report: Callable[[dict[str, float]], None] | None = None, progress: bool = True,
          init_state: dict | None = None, feedback: FeedbackSet | None = None) -> TrainResult:
    """init_state: weights to start from (cfg.init_from's, read by the caller from the registry).
    feedback: a collection's feedback events (encoder/feedback.py); hard negatives are mined from them under
    the starting weights and a triplet term on them joins the loss (data.feedback_weight / feedback_margin)."""
    t_start = time.perf_counter()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    task = task if task is not None else load_task(cfg)
    device = pick_device(cfg.device)
    model = build_encoder(cfg, task.input_shape, pixel_mean=task.pixel_mean, pixel_std=task.pixel_std).to(device)
    if init_state is not None:
        try:
            model.load_state_dict(init_state)
        except RuntimeError as e:
            raise ValueError(f"init_from {cfg.init_from!r} does not fit this config's network (backbone, width, "
                             f"embedding_dim and input shape must match): {str(e).splitlines()[0]}") from None
    objective = build_objective(cfg, task.num_classes)
    term, feedback_stats = None, {}
    if feedback is not None:
        from simsearch.encoder.sources import DataSource

        source = DataSource.from_dict(cfg.data) if cfg.data is not None else None
        if source is None or not source.feedback:
            raise ValueError("feedback events train with a data: mapping of format collection and feedback: true")
        term, feedback_stats = feedback_term(feedback, lambda a: embed(model, a, device=device),
                                             margin=source.feedback_margin, weight=source.feedback_weight,
                                             negatives=source.feedback_negatives, seed=cfg.seed)
    for module in objective.modules():
        module.to(device)
    wrapped = prepare_model(model) if prepare_model is not None else model
    groups = [{"params": list(model.parameters()), "lr": cfg.lr}]
    if objective.params():
        groups.append({"params": objective.params(), "lr": cfg.proxy_lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps = len(_epoch_batches(task.fit_y, cfg, 0, rank, world_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups],
                                                total_steps=max(1, steps * cfg.epochs), pct_start=0.15)
    gen = torch.Generator().manual_seed(cfg.seed)
    image = task.kind == "image"

    def as_input(t: torch.Tensor) -> torch.Tensor:  # a feedback batch, prepared as the labelled one is
        return (_augment(t.float(), gen) if cfg.augment else t.float()) if image else t

    result = TrainResult(model, cfg, task.fingerprint(), feedback=feedback_stats)
    best_score, best_state, since_best = -1.0, None, 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        wrapped.train()
        total, n = 0.0, 0
        batches = _epoch_batches(task.fit_y, cfg, epoch, rank, world_size)
        bar = tqdm(batches, desc=f"{cfg.name} epoch {epoch}/{cfg.epochs}", disable=not progress or rank != 0,
                   leave=False)
        for idx in bar:
            x = torch.from_numpy(task.fit_x[idx]).to(device)
            y = torch.from_numpy(task.fit_y[idx]).to(device)
            if image:
                x = x.float()
                if cfg.augment:
                    x = _augment(x, gen)
            loss = objective(wrapped(x), y)  # embeddings (B, D)
            if term is not None:  # + the feedback triplets' term
                loss = loss + term(wrapped, device, as_input)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _sync_loss_grads(objective.params(), world_size)
            opt.step()
            sched.step()
            total, n = total + loss.item(), n + 1
            bar.set_postfix(loss=f"{total / n:.4f}")
        val = evaluate(model, task.val, device=device)
        row = {"epoch": epoch, "train_loss": total / max(n, 1), "epoch_s": time.perf_counter() - t0,
               **{f"val_{k}": v for k, v in val.items()}}
        result.history.append(row)
        if report is not None:
            report(row)
        if progress and rank == 0:
            tqdm.write(f"{cfg.name} epoch {epoch}: loss {row['train_loss']:.4f}  val P@1 {val['p@1']:.4f}  "
                       f"MAP@R {val['map@r']:.4f}  ({row['epoch_s']:.1f}s)")
        if val[MONITOR] > best_score:
            best_score, since_best = val[MONITOR], 0
            best_state = copy.deepcopy(model.state_dict())
            result.best_epoch, result.best_val = epoch, val
        else:
            since_best += 1
            if since_best >= cfg.patience:
                break
    model.load_state_dict(best_state)
    result.model = model.cpu().eval()
    result.wall_s = time.perf_counter() - t_start
    return result
