"""A shard's checkpoints on disk, published atomically through a manifest, every file checksummed.

Layout under the shard's directory (the write-ahead log lives beside them in `wal/`):

    manifest.json       {"version": 2, "snapshot": "snap-000007", "last_seq": 4711, "sealed_uid": ...,
                         "files": {"sealed.npy": [bytes, crc32], ...}}   (temp file, fsynced, renamed)
    snap-000007/sealed.npy       the sealed segment's vectors (S x d float32), row i = index row i
                sealed_ids.txt   its ids, UTF-8, each followed by NUL
                scann/           the serialized ScaNN index over the sealed rows (when there is one)
                fresh.npy, fresh_ids.txt, fresh_payloads.txt   rows written since that index was built
                alive.npy        liveness of every row (tombstones)

A snapshot directory is complete and fsynced before the manifest names it, so a crash mid-save
leaves the previous checkpoint in force. The sealed files and the index only change when an
index build does: a checkpoint of the same sealed generation hard-links them from the previous
one and writes just the fresh rows and the liveness, so frequent checkpoints stay cheap.

Loading checks every file's size and CRC-32 against the manifest; a missing or damaged file
raises CheckpointDamaged naming it — a shard never starts from a partial picture of its data.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsearch.shard.faults import CheckpointDamaged
from simsearch.shard.storage import SEP, Sealed

MANIFEST = "manifest.json"
VERSION = 2
SHARED = ("sealed.npy", "sealed_ids.txt", "sealed_payloads.txt")  # with scann/*: one per sealed generation, hard-linked onwards
_CHUNK = 8 << 20
# ScaNN records absolute paths in this file; loading rewrites them for where the index lies now
# (scann_index._relocate_assets), so only its presence is checked.
REWRITTEN = "scann_assets.pbtxt"


@dataclass
class Checkpoint:
    sealed: Sealed
    sealed_alive: np.ndarray
    fresh: np.ndarray  # (f, d) float32
    fresh_ids: list[str]
    fresh_alive: np.ndarray
    fresh_payloads: list[str]
    num_leaves: int
    index_dir: Path | None  # the ScaNN index over the sealed rows, if one was saved
    last_seq: int  # the write-ahead log's last record this checkpoint holds; replay starts after it
    path: Path  # the snapshot directory


def fsync_path(path: Path) -> None:
    """fsync a file (its bytes), or a directory (its entries: a new, renamed or removed file)."""
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
    fsync_path(path.parent)


def _crc(path: Path) -> list[int]:
    """[size, CRC-32] of a file, read in chunks."""
    crc, size = 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return [size, crc]


def _write_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(arr), allow_pickle=False)


def _write_ids(path: Path, ids: list[str] | str) -> None:
    text = ids if isinstance(ids, str) else (SEP.join(ids) + SEP if ids else "")
    path.write_bytes(text.encode("utf-8"))


def read_manifest(root: Path) -> dict | None:
    """The manifest, None when there is none; CheckpointDamaged when it cannot be read."""
    path = root / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointDamaged(f"checkpoint manifest {path} cannot be read ({e})") from e
    try:
        manifest = json.loads(text)
        for key in ("snapshot", "last_seq", "indexed", "num_leaves"):
            manifest[key]  # noqa: B018 (presence check)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointDamaged(f"checkpoint manifest {path} is damaged ({type(e).__name__}: {e}); restore it "
                                f"from a backup, or move {root} away to give up this shard's data") from e
    return manifest


def _tree_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def save(root: Path, *, sealed: Sealed, sealed_alive: np.ndarray, fresh: np.ndarray, fresh_ids: list[str],
         fresh_alive: np.ndarray, num_leaves: int, save_index, last_seq: int,
         fresh_payloads: list[str] | None = None) -> Path:
    """Write a new snapshot dir, then point the manifest at it, then remove older ones.

    `save_index(dir)` writes the serialized ScaNN index over the sealed rows, or is None when
    there is none. Files of the same sealed generation are hard-linked from the previous snapshot.
    """
    root.mkdir(parents=True, exist_ok=True)
    try:
        previous = read_manifest(root)
    except CheckpointDamaged:
        previous = None  # replaced by this one
    seq = (int(previous.get("seq", 0)) + 1) if previous else 1
    name = f"snap-{seq:06d}"
    tmp = root / f"{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files: dict[str, list[int]] = {}
    reused = previous is not None and previous.get("version") == VERSION and previous.get("sealed_uid") == sealed.uid
    if reused:
        old = root / previous["snapshot"]
        shared = {k: v for k, v in previous["files"].items() if k in SHARED or k.startswith("scann/")}
        try:
            for rel in shared:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(old / rel, tmp / rel)
            files.update(shared)
        except OSError:  # the old files are gone or the file system cannot link: write them anew
            shutil.rmtree(tmp)
            tmp.mkdir()
            reused = False
    written: list[Path] = []
    if not reused:
        _write_npy(tmp / "sealed.npy", sealed.vectors)
        _write_ids(tmp / "sealed_ids.txt", sealed.text)
        written += [tmp / "sealed.npy", tmp / "sealed_ids.txt"]
        if sealed.payloads is not None:
            _write_ids(tmp / "sealed_payloads.txt", sealed.payloads.text)
            written.append(tmp / "sealed_payloads.txt")
        if save_index is not None:
            save_index(tmp / "scann")
            written += _tree_files(tmp / "scann")
    _write_npy(tmp / "fresh.npy", fresh)
    _write_ids(tmp / "fresh_ids.txt", fresh_ids)
    _write_npy(tmp / "alive.npy", np.concatenate([sealed_alive, fresh_alive]))
    written += [tmp / "fresh.npy", tmp / "fresh_ids.txt", tmp / "alive.npy"]
    if fresh_payloads is not None and any(fresh_payloads):
        _write_ids(tmp / "fresh_payloads.txt", fresh_payloads)
        written.append(tmp / "fresh_payloads.txt")
    for path in written:
        fsync_path(path)
        files[path.relative_to(tmp).as_posix()] = _crc(path)
    for directory in {p.parent for p in written}:
        fsync_path(directory)
    has_index = any(k.startswith("scann/") for k in files)
    shutil.rmtree(root / name, ignore_errors=True)  # left by a crash between this rename and the manifest
    os.replace(tmp, root / name)
    fsync_path(root)
    write_json_atomic(root / MANIFEST, {
        "version": VERSION, "seq": seq, "snapshot": name, "points": sealed.size + len(fresh_ids),
        "indexed": sealed.size if has_index else 0, "sealed": sealed.size, "sealed_uid": sealed.uid,
        "num_leaves": num_leaves if has_index else 0, "last_seq": last_seq, "files": files,
    })
    for old_snap in root.glob("snap-*"):
        if old_snap.name != name:
            shutil.rmtree(old_snap, ignore_errors=True)
    return root / name


def _verify(snap: Path, files: dict[str, list[int]]) -> None:
    for rel, (size, crc) in files.items():
        path = snap / rel
        try:
            got = _crc(path) if path.name != REWRITTEN else [size, crc] if path.exists() else _crc(path)
        except FileNotFoundError:
            raise CheckpointDamaged(f"checkpoint file {path} is missing; restore it, or move {snap.parent} "
                                    f"away to give up this shard's data") from None
        except OSError as e:
            raise CheckpointDamaged(f"checkpoint file {path} cannot be read ({e.strerror or e})") from e
        if got != [size, crc]:
            what = f"{got[0]} bytes, expected {size}" if got[0] != size else "its checksum does not match"
            raise CheckpointDamaged(f"checkpoint file {path} is damaged ({what}); restore it, or move "
                                    f"{snap.parent} away to give up this shard's data")


def _read_ids(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8")
    return text.split(SEP)[:-1] if text else []


def load(root: Path) -> Checkpoint | None:
    """The latest checkpoint; None when the shard has none; CheckpointDamaged when it cannot be
    loaded as written (a manifest that does not parse, a missing or damaged file)."""
    manifest = read_manifest(root)
    if manifest is None:
        # A snapshot directory without a manifest was never published (a crash before the rename of
        # the manifest): the log still holds all it has. A manifest lost after publication shows as a
        # log that starts after record 1, which the shard refuses.
        return None
    snap = root / manifest["snapshot"]
    if not snap.is_dir():
        raise CheckpointDamaged(f"checkpoint {snap} named by {root / MANIFEST} is missing")
    if manifest.get("version", 1) == 1:
        return _load_v1(snap, manifest)
    try:
        _verify(snap, manifest["files"])
        files = manifest["files"]
        vectors = np.load(snap / "sealed.npy", allow_pickle=False)
        sealed_ids = _read_ids(snap / "sealed_ids.txt")
        sealed_payloads = _read_ids(snap / "sealed_payloads.txt") if "sealed_payloads.txt" in files else None
        sealed = Sealed.build(vectors, sealed_ids, uid=manifest["sealed_uid"], payloads=sealed_payloads)
        fresh = np.load(snap / "fresh.npy", allow_pickle=False)
        fresh_ids = _read_ids(snap / "fresh_ids.txt")
        fresh_payloads = (_read_ids(snap / "fresh_payloads.txt") if "fresh_payloads.txt" in files
                          else [""] * len(fresh_ids))
        alive = np.load(snap / "alive.npy", allow_pickle=False)
    except (ValueError, KeyError, UnicodeDecodeError) as e:  # files that pass their checksums but do not agree
        raise CheckpointDamaged(f"checkpoint {snap} is inconsistent ({type(e).__name__}: {e})") from e
    s = sealed.size
    if (len(sealed.starts) != s + 1 or len(fresh_ids) != len(fresh) or len(alive) != s + len(fresh)
            or len(fresh_payloads) != len(fresh) or (sealed_payloads is not None and len(sealed_payloads) != s)):
        raise CheckpointDamaged(f"checkpoint {snap} is inconsistent: {s} sealed rows, {len(fresh)} fresh rows with "
                                f"{len(fresh_ids)} ids, {len(alive)} liveness flags, payloads for "
                                f"{len(sealed_payloads) if sealed_payloads is not None else s} sealed and "
                                f"{len(fresh_payloads)} fresh rows")
    return Checkpoint(sealed, alive[:s], fresh, fresh_ids, alive[s:], fresh_payloads, int(manifest["num_leaves"]),
                      snap / "scann" if manifest["indexed"] else None, int(manifest["last_seq"]), snap)


def _load_v1(snap: Path, manifest: dict) -> Checkpoint:
    """Version 1 (before compact storage): vectors.npy, ids.npy (str), alive.npy; rows [0, indexed) indexed."""
    try:
        vectors = np.load(snap / "vectors.npy")
        ids = np.load(snap / "ids.npy").astype(str).tolist()
        alive = np.load(snap / "alive.npy")
    except (OSError, ValueError) as e:
        raise CheckpointDamaged(f"checkpoint {snap} cannot be loaded ({type(e).__name__}: {e})") from e
    s = int(manifest["indexed"])
    sealed = Sealed.build(np.ascontiguousarray(vectors[:s]), ids[:s])
    return Checkpoint(sealed, alive[:s], vectors[s:], ids[s:], alive[s:], [""] * (len(ids) - s),
                      int(manifest["num_leaves"]),
                      snap / "scann" if s else None, int(manifest.get("last_seq", 0)), snap)
