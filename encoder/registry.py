"""Versioned encoders on disk: `name@version` -> config, training-data fingerprint,
evaluation metrics and a TorchScript artefact that loads without the training code.

Layout: <root>/<name>/<version>/{manifest.json, encoder.pt, checkpoint.pt, history.json}, plus
minilm.safetensors for a text encoder trained inside MiniLM (LoRA): MiniLM's weights with the adapters
merged in, which serving runs instead of the packaged ones (manifest "text_backbone_weights").
A version is published by renaming a finished temp dir, so readers never see half of one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simsearch.encoder.backbones import MINILM_DIM, MiniLMTokens
from simsearch.encoder.manifests import _versions, default_root, list_models, manifest, parse_ref, resolve
from simsearch.encoder.minilm import MODEL_ID, PAD_ID

TEXT_WEIGHTS = "minilm.safetensors"

__all__ = ["LoadedEncoder", "default_root", "export", "list_models", "load", "manifest", "parse_ref", "resolve",
           "save"]


def export(model: torch.nn.Module, input_shape: tuple[int, ...]) -> torch.jit.ScriptModule:
    model = model.cpu().eval()
    example = torch.zeros((2, *input_shape))
    with torch.no_grad():
        return torch.jit.trace(model, example)


def save(model: torch.nn.Module, *, name: str, kind: str, input_shape: tuple[int, ...], config: dict[str, Any],
         fingerprint: str, metrics: dict[str, Any], history: list[dict[str, float]] | None = None,
         root: Path | None = None) -> str:
    """Publish the next version of `name`; returns 'name@version'. A model whose backbone is MiniLM itself
    (LoRA) is stored as its head's TorchScript on MiniLM's pooled output plus MiniLM's merged weights."""
    root = Path(root) if root is not None else default_root()
    parse_ref(name)
    (root / name).mkdir(parents=True, exist_ok=True)
    own_text = isinstance(getattr(model, "backbone", None), MiniLMTokens)
    if own_text:
        from safetensors.torch import save_file

        from simsearch.encoder.lora import merged_weights

        model = model.cpu().eval()
        input_shape = (MINILM_DIM,)  # what the scripted head takes, as for a head-only text encoder
        scripted = export(model.head, input_shape)
    else:
        scripted = export(model, input_shape)
    with torch.no_grad():
        dim = int(scripted(torch.zeros((1, *input_shape))).shape[-1])
    manifest = {
        "name": name, "kind": kind, "input_shape": list(input_shape), "embedding_dim": dim, "metric": "cosine",
        "text_backbone": MODEL_ID if kind == "text" else None,
        "text_backbone_weights": TEXT_WEIGHTS if own_text else None,  # None: the packaged MiniLM, frozen
        "config": config, "data_fingerprint": fingerprint, "metrics": metrics,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
    }
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root / name))
    try:
        scripted.save(str(tmp / "encoder.pt"))
        if own_text:
            save_file(merged_weights(model.backbone.transformer), str(tmp / TEXT_WEIGHTS))
        torch.save({"state_dict": model.state_dict(), "config": config}, tmp / "checkpoint.pt")
        (tmp / "history.json").write_text(json.dumps(history or [], indent=1))
        while True:  # another writer may publish the same number first: take the next one
            version = (_versions(root, name) or [0])[-1] + 1
            manifest["version"] = version
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=float))
            try:
                os.rename(tmp, root / name / str(version))
                return f"{name}@{version}"
            except OSError:
                if not (root / name / str(version)).exists():
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class LoadedEncoder:
    """A registry artefact, ready to embed raw inputs: uint8 pixels (N, C, H, W) for image
    encoders, strings for text encoders (MiniLM, then the scripted head). MiniLM is the packaged one,
    frozen, unless the artefact carries its own weights (text_model: trained with LoRA, merged)."""

    ref: str
    manifest: dict[str, Any]
    module: torch.jit.ScriptModule
    text_model: MiniLMTokens | None = None
    _packaged: MiniLMTokens | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def dim(self) -> int:
        return int(self.manifest["embedding_dim"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["input_shape"])

    @torch.no_grad()
    def embed_array(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Model-input arrays: pixels (N, *input_shape); for text, frozen-MiniLM embeddings (N, 384) or
        token ids (N, L) from minilm.tokenize (the only form an encoder with its own MiniLM weights takes)."""
        tokens = self.kind == "text" and np.issubdtype(x.dtype, np.integer)
        if self.text_model is not None and not tokens:
            raise ValueError(f"{self.ref} runs its own fine-tuned MiniLM (adapter "
                             f"{self.manifest['config'].get('adapter')!r}): give it texts or token ids, not "
                             f"frozen-MiniLM embeddings")
        out = []
        for i in range(0, len(x), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))
            out.append(self.module(self._transformer()(chunk) if tokens else chunk.float()))
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)

    def _transformer(self) -> MiniLMTokens:
        if self.text_model is not None:
            return self.text_model
        if self._packaged is None:  # token ids for a head-only encoder: the packaged MiniLM, shared
            from simsearch.encoder.minilm import load_minilm

            self._packaged = MiniLMTokens(load_minilm()[0].auto_model, pad_id=PAD_ID).eval()
        return self._packaged

    def embed(self, inputs: np.ndarray | list[str]) -> np.ndarray:
        if self.kind == "text" and self.text_model is not None:
            from simsearch.encoder.minilm import tokenize

            return self.embed_array(tokenize(list(inputs)))  # token ids -> own MiniLM -> head
        if self.kind == "text":
            from simsearch.encoder.minilm import encode

            return self.embed_array(encode(list(inputs)))  # (N, 384) -> (N, dim)
        x = np.asarray(inputs)
        if x.ndim == len(self.input_shape) and self.input_shape[0] == 1:
            x = x[:, None]  # (N, H, W) grey images -> (N, 1, H, W)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"images must have shape (N, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        return self.embed_array(x)


def checkpoint(ref: str, root: Path | None = None) -> tuple[str, dict[str, Any], dict]:
    """(name@version, its training config, its weights): to start training from a registered encoder."""
    path = resolve(ref, root)
    manifest = json.loads((path / "manifest.json").read_text())
    saved = torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=False)
    return f"{manifest['name']}@{manifest['version']}", saved["config"], saved["state_dict"]


def load(ref: str, root: Path | None = None) -> LoadedEncoder:
    path = resolve(ref, root)
    manifest = json.loads((path / "manifest.json").read_text())
    module = torch.jit.load(str(path / "encoder.pt"), map_location="cpu").eval()
    return LoadedEncoder(f"{manifest['name']}@{manifest['version']}", manifest, module, _text_model(path, manifest))


def _text_model(path: Path, manifest: dict[str, Any]) -> MiniLMTokens | None:
    """MiniLM with the artefact's own (merged) weights; None for encoders that use the packaged MiniLM."""
    if not manifest.get("text_backbone_weights"):
        return None
    from safetensors.torch import load_file

    from simsearch.encoder.minilm import load_transformer

    transformer = load_transformer()
    transformer.load_state_dict(load_file(str(path / manifest["text_backbone_weights"])))
    return MiniLMTokens(transformer, pad_id=PAD_ID).eval()


__all__ = ["LoadedEncoder", "default_root", "list_models", "load", "parse_ref", "resolve", "save"]
