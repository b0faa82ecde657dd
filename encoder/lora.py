"""LoRA inside MiniLM (PyPI peft): adapters added to the transformer for training, then merged into plain
weights for the artefact, so serving loads an ordinary BertModel and never imports peft."""

from __future__ import annotations

import copy

import torch
from torch import nn

from simsearch.encoder.config import TrainConfig


def lora_transformer(cfg: TrainConfig) -> nn.Module:
    """A fresh copy of MiniLM's transformer with LoRA adapters on cfg.lora_targets; only they train."""
    from peft import LoraConfig, get_peft_model

    from simsearch.encoder.minilm import load_transformer

    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=list(cfg.lora_targets))
    return get_peft_model(load_transformer(), config)


def merged_weights(transformer: nn.Module) -> dict[str, torch.Tensor]:
    """The transformer's state dict with any LoRA adapters merged in (W + B·A·alpha/r): the keys and shapes
    of a stock BertModel. The model passed in is left as it is."""
    if hasattr(transformer, "merge_and_unload"):  # a peft model
        transformer = copy.deepcopy(transformer).merge_and_unload()
    return {k: v.detach().cpu().contiguous() for k, v in transformer.state_dict().items()}
