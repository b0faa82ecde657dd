"""Data-parallel encoder training on Ray Train (TorchTrainer): each worker runs the plain
trainer on its slice of every epoch's M-per-class batches, DDP averages the gradients, and
rank 0's best weights come back as a Ray Train checkpoint that we evaluate and register."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
from ray.train import Checkpoint, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from simsearch.encoder.config import TrainConfig
from simsearch.encoder.data import load_task
from simsearch.encoder.model import build_encoder
from simsearch.encoder.pipeline import register, test_metrics
from simsearch.encoder.trainer import TrainResult, train


def _worker_loop(loop_config: dict[str, Any]) -> None:
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg = TrainConfig.from_dict(loop_config["config"])
    if not torch.cuda.is_available():
        cfg = cfg.replace(device="cpu")
    result = train(cfg, rank=rank, world_size=world, prepare_model=ray.train.torch.prepare_model,
                   report=lambda row: ray.train.report(dict(row)), progress=False)
    with tempfile.TemporaryDirectory() as tmp:  # every rank must report; only rank 0 ships weights
        checkpoint = None
        if rank == 0:
            torch.save({"state_dict": result.model.state_dict(), "history": result.history,
                        "best_epoch": result.best_epoch, "best_val": result.best_val, "wall_s": result.wall_s},
                       Path(tmp) / "model.pt")
            checkpoint = Checkpoint.from_directory(tmp)
        ray.train.report({"done": 1.0}, checkpoint=checkpoint)


def train_on_ray(cfg: TrainConfig, *, num_workers: int = 2, use_gpu: bool = False, cpus_per_worker: float = 1.0,
                 storage_path: Path | None = None, root: Path | None = None) -> tuple[str, dict[str, Any]]:
    """Needs a running Ray (simsearch.cluster.start_ray). Returns ('name@version', test metrics)."""
    storage = Path(storage_path or tempfile.mkdtemp(prefix="simsearch-train-")).resolve()
    trainer = TorchTrainer(
        _worker_loop, train_loop_config={"config": cfg.to_dict()},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        run_config=RunConfig(name=f"{cfg.name}-train", storage_path=str(storage)),
    )
    fit = trainer.fit()
    if fit.checkpoint is None:
        raise RuntimeError(f"Ray Train run for {cfg.name!r} ended without a checkpoint: {fit.error}")
    with fit.checkpoint.as_directory() as d:
        saved = torch.load(Path(d) / "model.pt", map_location="cpu")
    task = load_task(cfg)
    model = build_encoder(cfg, task.input_shape, pixel_mean=task.pixel_mean, pixel_std=task.pixel_std)
    model.load_state_dict(saved["state_dict"])
    result = TrainResult(model.eval(), cfg, task.fingerprint(), saved["history"], saved["best_epoch"],
                         saved["best_val"], saved["wall_s"])
    metrics = test_metrics(result, task)
    metrics["ray_workers"] = num_workers
    return register(result, task, metrics, root), metrics
