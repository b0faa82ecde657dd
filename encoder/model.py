"""An encoder is a backbone plus a projection head whose output is L2-normalised, so every
encoder's distances live on the unit sphere (cosine and l2 rank alike)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simsearch.encoder.backbones import MINILM_DIM, MLP, MiniLMTokens, SmallCNN, TextAdapter
from simsearch.encoder.config import TrainConfig


class ProjectionHead(nn.Module):
    """Dropout -> Linear -> BN -> ReLU -> Linear -> L2 normalise."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)  # (B, out_dim), unit norm


class ImageInput(nn.Module):
    """Raw pixel values (0..255) to the normalised float tensor the CNN trained on; part of
    the exported artefact so that callers send pixels, not our preprocessing."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255.0 - self.mean) / self.std


class Encoder(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module, pre: nn.Module | None = None, *,
                 flip_average: bool = False) -> None:
        super().__init__()
        self.pre = pre if pre is not None else nn.Identity()
        self.backbone = backbone
        self.head = head
        self.flip_average = flip_average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)  # elementwise, so mirroring after it is the same as before it
        z = self.head(self.backbone(x))
        if self.flip_average and not self.training:  # (B, C, H, W): mirror along the width
            z = F.normalize(z + self.head(self.backbone(x.flip(-1))), dim=-1)
        return z


class NormalizeOnly(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


def build_encoder(cfg: TrainConfig, input_shape: tuple[int, ...], *, pixel_mean: float = 0.0,
                  pixel_std: float = 1.0) -> Encoder:
    """input_shape excludes the batch: (C, H, W) for images, (D,) for vectors, (384,) for text embedded by
    frozen MiniLM (adapter 'head'), (L,) token ids for text when LoRA trains inside MiniLM."""
    if cfg.backbone == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"backbone 'cnn' needs (C, H, W) inputs, got shape {input_shape}")
        backbone = SmallCNN(input_shape[0], cfg.width)
        return Encoder(backbone, ProjectionHead(backbone.out_dim, cfg.embedding_dim, cfg.dropout),
                       ImageInput(pixel_mean, pixel_std), flip_average=cfg.flip_average)
    if cfg.backbone == "mlp":
        dim = 1
        for s in input_shape:
            dim *= s
        backbone = MLP(dim, cfg.width, cfg.dropout)
        image = len(input_shape) == 3
        pre = ImageInput(pixel_mean, pixel_std) if image else None
        return Encoder(backbone, ProjectionHead(backbone.out_dim, cfg.embedding_dim, cfg.dropout), pre,
                       flip_average=cfg.flip_average and image)
    if cfg.adapter == "head":
        if input_shape != (MINILM_DIM,):
            raise ValueError(f"backbone 'minilm' adapts {MINILM_DIM}-d MiniLM embeddings, got shape {input_shape}")
        # The adapter keeps MiniLM's 384 dims and its unit sphere: the head only normalises.
        return Encoder(TextAdapter(cfg.width, cfg.dropout), NormalizeOnly())
    if len(input_shape) != 1:
        raise ValueError(f"adapter {cfg.adapter!r} trains MiniLM on token ids (N, L), got shape {input_shape}")
    from simsearch.encoder.lora import lora_transformer  # peft: only when LoRA is asked for

    # The head (what the artefact's TorchScript holds) takes MiniLM's pooled 384-d output, as with 'head'.
    head = nn.Sequential(TextAdapter(cfg.width, cfg.dropout), NormalizeOnly()) if cfg.adapter == "lora+head" \
        else NormalizeOnly()
    return Encoder(MiniLMTokens(lora_transformer(cfg)), head)
