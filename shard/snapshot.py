"""On-disk snapshots of a shard, published atomically through a manifest.

Layout under the shard's directory (the write-ahead log lives beside the snapshots in `wal/`):

    manifest.json          {"snapshot": "snap-000007", "last_seq": 4711, ...}   (temp file, fsynced, renamed)
    snap-000007/vectors.npy, ids.npy, alive.npy, scann/ (optional serialized index)

A snapshot directory is complete before the manifest names it, so a crash mid-save leaves
the previous snapshot in force.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "manifest.json"


@dataclass
class Snapshot:
    vectors: np.ndarray
    ids: np.ndarray
    alive: np.ndarray
    indexed: int  # rows [0, indexed) are covered by the index in index_dir
    num_leaves: int
    index_dir: Path | None
    last_seq: int  # the write-ahead log's last record this snapshot holds; replay starts after it


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new, renamed or removed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_manifest(root: Path) -> dict | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text())


def save(root: Path, vectors: np.ndarray, ids: np.ndarray, alive: np.ndarray,
         indexed: int, num_leaves: int, save_index, *, last_seq: int = 0) -> Path:
    """Write a new snapshot dir, then point the manifest at it, then remove older ones.

    `save_index(dir)` writes the serialized ScaNN index, or is None when there is none.
    """
    root.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(root)
    seq = (previous["seq"] + 1) if previous else 1
    name = f"snap-{seq:06d}"
    tmp = root / f"{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for fname, arr in (("vectors.npy", vectors), ("ids.npy", ids.astype(str)), ("alive.npy", alive)):
        with open(tmp / fname, "wb") as f:
            np.save(f, arr)
            f.flush()
            os.fsync(f.fileno())
    has_index = save_index is not None
    if has_index:
        save_index(tmp / "scann")
    shutil.rmtree(root / name, ignore_errors=True)  # left by a crash between this rename and the manifest
    os.replace(tmp, root / name)
    fsync_dir(root)
    write_json_atomic(root / MANIFEST, {
        "version": 1, "seq": seq, "snapshot": name, "points": int(len(ids)),
        "indexed": indexed if has_index else 0, "num_leaves": num_leaves if has_index else 0,
        "last_seq": last_seq,
    })
    for old in root.glob("snap-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return root / name


def load(root: Path) -> Snapshot | None:
    manifest = read_manifest(root)
    if manifest is None:
        return None
    snap = root / manifest["snapshot"]
    ids = np.load(snap / "ids.npy").astype(object)
    index_dir = snap / "scann" if manifest["indexed"] else None
    return Snapshot(
        vectors=np.load(snap / "vectors.npy"),
        ids=ids,
        alive=np.load(snap / "alive.npy"),
        indexed=manifest["indexed"],
        num_leaves=manifest["num_leaves"],
        index_dir=index_dir,
        last_seq=int(manifest.get("last_seq", 0)),
    )
