"""Versioned encoders on disk: `name@version` -> config, training-data fingerprint,
evaluation metrics and a TorchScript artefact that loads without the training code.

Layout: <root>/<name>/<version>/{manifest.json, encoder.pt, checkpoint.pt, history.json};
a version is published by renaming a finished temp dir, so readers never see half of one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simsearch.encoder.manifests import _versions, default_root, list_models, manifest, parse_ref, resolve
from simsearch.encoder.minilm import MODEL_ID

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
    """Publish the next version of `name`; returns 'name@version'."""
    root = Path(root) if root is not None else default_root()
    parse_ref(name)
    (root / name).mkdir(parents=True, exist_ok=True)
    scripted = export(model, input_shape)
    with torch.no_grad():
        dim = int(scripted(torch.zeros((1, *input_shape))).shape[-1])
    manifest = {
        "name": name, "kind": kind, "input_shape": list(input_shape), "embedding_dim": dim, "metric": "cosine",
        "text_backbone": MODEL_ID if kind == "text" else None,
        "config": config, "data_fingerprint": fingerprint, "metrics": metrics,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
    }
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root / name))
    try:
        scripted.save(str(tmp / "encoder.pt"))
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
    encoders, strings for text encoders (frozen MiniLM, then the scripted adapter)."""

    ref: str
    manifest: dict[str, Any]
    module: torch.jit.ScriptModule

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
        """Model-input arrays: pixels (N, *input_shape) or MiniLM embeddings (N, 384)."""
        out = [self.module(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])).float())
               for i in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)

    def embed(self, inputs: np.ndarray | list[str]) -> np.ndarray:
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
    return LoadedEncoder(f"{manifest['name']}@{manifest['version']}", manifest, module)


__all__ = ["LoadedEncoder", "default_root", "list_models", "load", "parse_ref", "resolve", "save"]
