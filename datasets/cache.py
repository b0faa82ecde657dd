"""Where derived data (ground truth, text embeddings) is cached: one directory, `$SIMSEARCH_CACHE`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    path = Path(os.environ.get("SIMSEARCH_CACHE", Path.home() / ".cache" / "simsearch"))
    path.mkdir(parents=True, exist_ok=True)
    return path
