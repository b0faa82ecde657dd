"""The registry's layout and manifests, readable without torch: enough to resolve
`name@version`, bind a collection, check raw inputs and list models, so the router can do all
of that in a server installed without the training extra.

Layout: <root>/<name>/<version>/{manifest.json, encoder.pt, checkpoint.pt, history.json}, and
minilm.safetensors for a text encoder trained with LoRA (manifest "text_backbone_weights")."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_root() -> Path:
    return Path(os.environ.get("SIMSEARCH_MODELS", "simsearch-data/models"))


def parse_ref(ref: str) -> tuple[str, str | None]:
    """'name@3' -> ('name', '3'); 'name' or 'name@latest' -> ('name', None)."""
    name, _, version = ref.partition("@")
    if not NAME_RE.match(name):
        raise ValueError(f"model name must match {NAME_RE.pattern}, got {name!r}")
    if version in ("", "latest"):
        return name, None
    if not version.isdigit():
        raise ValueError(f"model version must be a positive integer or 'latest', got {version!r} in {ref!r}")
    return name, str(int(version))


def _versions(root: Path, name: str) -> list[int]:
    d = root / name
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def resolve(ref: str, root: Path | None = None) -> Path:
    root = Path(root) if root is not None else default_root()
    name, version = parse_ref(ref)
    versions = _versions(root, name)
    if not versions:
        raise LookupError(f"no model named {name!r} in {root}")
    version = version or str(versions[-1])
    path = root / name / version
    if not (path / "manifest.json").exists():
        raise LookupError(f"model {name}@{version} not found in {root} (versions: {versions})")
    return path


def manifest(ref: str, root: Path | None = None) -> dict[str, Any]:
    """The manifest alone (no torch load): enough to bind a collection or check inputs."""
    m = json.loads((resolve(ref, root) / "manifest.json").read_text())
    m["ref"] = f"{m['name']}@{m['version']}"
    return m


def list_models(root: Path | None = None) -> list[dict[str, Any]]:
    root = Path(root) if root is not None else default_root()
    out = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        for v in _versions(root, d.name):
            m = json.loads((root / d.name / str(v) / "manifest.json").read_text())
            out.append({"ref": f"{d.name}@{v}", "kind": m["kind"], "embedding_dim": m["embedding_dim"],
                        "input_shape": m["input_shape"], "created": m["created"], "metrics": m.get("metrics", {}),
                        "data_fingerprint": m["data_fingerprint"]})
    return out
