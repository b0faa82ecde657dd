"""Compact row storage and checkpoints: ids without per-id objects, hash collisions, checksummed files,
hard-linked sealed files, loud faults, and the shard's background checkpoints and folding."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from simsearch.shard import IndexParams, Shard, snapshot, storage
from simsearch.shard.faults import CheckpointDamaged
from simsearch.shard.storage import Rows, Sealed

pytestmark = pytest.mark.unit
SMALL = IndexParams(min_index_size=256)


def _rows(n: int, dim: int = 4, prefix: str = "id") -> tuple[list[str], np.ndarray]:
    return [f"{prefix}-{i}" for i in range(n)], np.arange(n * dim, dtype=np.float32).reshape(n, dim)


def _sealed_rows(ids: list[str], vecs: np.ndarray) -> Rows:
    return Rows.assemble(Sealed.build(vecs, ids), np.ones(len(ids), bool), vecs[:0], [], np.zeros(0, bool))


def test_overwrites_and_deletes_find_the_live_row_in_either_segment():
    ids, vecs = _rows(1000)
    rows = _sealed_rows(ids, vecs)
    rows.append(["id-5", "new-1"], vecs[:2] + 0.5)  # id-5 moves from the sealed segment to the fresh one
    assert rows.live == 1001 and rows.dead == 1
    found, at = rows.lookup(["id-5", "new-1", "id-999", "absent", "id-1"])
    assert found.tolist() == [True, True, True, False, True]
    view = rows.view()
    assert view.id_list(at) == ["id-5", "new-1", "id-999", "id-1"]
    np.testing.assert_array_equal(view.vectors(at[:2]), vecs[:2] + 0.5)
    assert rows.kill(["id-5", "id-6", "absent"]) == 2
    assert rows.find(["id-5", "id-6", "id-7"]).tolist()[:2] == [-1, -1]
    rows.append(["id-6"], vecs[:1])  # deleted from the sealed segment, written again
    assert rows.live == 1000 and rows.find(["id-6"])[0] >= 1000


def test_ids_that_share_a_hash_still_find_their_own_rows(monkeypatch):
    """Every id hashed to one value: the index must confirm the id itself, never take a neighbour's row."""
    monkeypatch.setattr(storage, "_hashes", lambda ids: np.zeros(len(ids), np.int64))
    ids, vecs = _rows(50)
    rows = _sealed_rows(ids, vecs)
    assert rows.find(["id-7", "id-49", "id-0", "nope"]).tolist() == [7, 49, 0, -1]
    assert rows.kill(["id-7"]) == 1 and rows.find(["id-7", "id-8"]).tolist() == [-1, 8]


def test_non_ascii_ids_keep_their_bytes_and_lengths():
    ids = ["ß-straße", "東京", "a" * 300, "x"]
    rows = _sealed_rows(ids, np.zeros((4, 2), np.float32))
    assert rows.view().id_list(np.arange(4)) == ids
    assert rows.max_id_bytes() == 300
    rows.kill(["a" * 300])
    assert rows.max_id_bytes() == len("ß-straße".encode())


def _save(root: Path, rows: Rows, last_seq: int) -> Path:
    s = rows.sealed.size
    return snapshot.save(root, sealed=rows.sealed, sealed_alive=rows.alive[:s], fresh=rows.fresh[: rows.n - s],
                         fresh_ids=rows.fresh_ids, fresh_alive=rows.alive[s:rows.n], num_leaves=0, save_index=None,
                         last_seq=last_seq)


def test_a_checkpoint_of_the_same_build_links_the_sealed_files_and_round_trips(tmp_path):
    ids, vecs = _rows(2000, 8)
    rows = _sealed_rows(ids, vecs)
    first = _save(tmp_path, rows, 10)
    rows.append(["fresh-1"], vecs[:1])
    rows.kill(["id-3"])
    _save(tmp_path, rows, 12)
    assert not first.exists()  # superseded
    ckpt = snapshot.load(tmp_path)
    assert ckpt.last_seq == 12 and ckpt.sealed.uid == rows.sealed.uid
    back = Rows.assemble(ckpt.sealed, ckpt.sealed_alive, ckpt.fresh, ckpt.fresh_ids, ckpt.fresh_alive)
    assert back.live == 2000 and back.find(["id-3", "fresh-1", "id-1999"]).tolist()[0] == -1
    np.testing.assert_array_equal(back.view().vectors(back.find(["id-1999"])), vecs[1999:])


def test_linked_files_are_the_same_inode_across_checkpoints(tmp_path):
    ids, vecs = _rows(500)
    rows = _sealed_rows(ids, vecs)
    _save(tmp_path, rows, 1)
    inode = (tmp_path / "snap-000001" / "sealed.npy").stat().st_ino
    _save(tmp_path, rows, 2)
    assert (tmp_path / "snap-000002" / "sealed.npy").stat().st_ino == inode  # linked, not rewritten


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove"])
def test_a_damaged_checkpoint_file_is_refused_by_name(tmp_path, damage):
    ids, vecs = _rows(500)
    snap = _save(tmp_path, _sealed_rows(ids, vecs), 3)
    path = snap / "sealed.npy"
    if damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        os.truncate(path, path.stat().st_size - 7)
    else:
        path.unlink()
    with pytest.raises(CheckpointDamaged, match=str(path)):
        snapshot.load(tmp_path)


def test_a_garbled_manifest_is_refused(tmp_path):
    ids, vecs = _rows(100)
    _save(tmp_path, _sealed_rows(ids, vecs), 3)
    manifest = tmp_path / snapshot.MANIFEST
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(CheckpointDamaged, match="manifest.json is damaged"):
        snapshot.load(tmp_path)


def test_a_lost_manifest_is_refused_but_an_unpublished_checkpoint_is_ignored(tmp_path):
    ids, vecs = _rows(300, 8)
    shard = Shard(8, "l2", SMALL, data_dir=tmp_path, background=False, durability="none")
    shard.upsert(ids[:100], vecs[:100])
    shard.save()  # a checkpoint through record 1; the log starts again at record 2
    shard.upsert(ids[100:], vecs[100:])
    shard.close(save=False)
    (tmp_path / snapshot.MANIFEST).unlink()  # the snapshot directory stays: only the manifest is lost
    with pytest.raises(CheckpointDamaged, match="starts at record 2 but there is no checkpoint"):
        Shard(8, "l2", SMALL, data_dir=tmp_path, background=False)
    # A crash between publishing the directory and the manifest of a first checkpoint: the log
    # still starts at record 1, so the shard loads everything from it.
    fresh_dir = tmp_path / "other"
    shard = Shard(8, "l2", SMALL, data_dir=fresh_dir, background=False, durability="none")
    shard.upsert(ids, vecs)
    shard.close(save=False)
    (fresh_dir / "snap-000001").mkdir()
    again = Shard(8, "l2", SMALL, data_dir=fresh_dir, background=False)
    assert again.stats()["points"] == 300
    again.close()


def test_version_1_checkpoints_still_load(tmp_path):
    """Data directories written before compact storage: vectors.npy, ids.npy (str), alive.npy."""
    ids, vecs = _rows(300, 8)
    snap = tmp_path / "snap-000001"
    snap.mkdir()
    np.save(snap / "vectors.npy", vecs)
    np.save(snap / "ids.npy", np.array(ids))
    alive = np.ones(300, bool)
    alive[5] = False
    np.save(snap / "alive.npy", alive)
    (tmp_path / snapshot.MANIFEST).write_text(json.dumps(
        {"version": 1, "seq": 1, "snapshot": "snap-000001", "points": 300, "indexed": 0, "num_leaves": 0, "last_seq": 0}))
    shard = Shard(8, "l2", SMALL, data_dir=tmp_path, background=False)
    assert shard.stats()["points"] == 299
    found, got, _ = shard.get(["id-5", "id-6"])
    assert found.tolist() == [False, True]
    np.testing.assert_array_equal(got, vecs[6:7])
    shard.close()


def _wait(predicate, limit_s: float = 30.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_after_a_bulk_load_the_fresh_rows_are_folded_in_and_checkpointed(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3000, 16)).astype(np.float32)
    shard = Shard(16, "l2", SMALL, data_dir=tmp_path, durability="none")
    for i in range(0, 3000, 500):
        shard.upsert([f"p{j}" for j in range(i, i + 500)], vecs[i:i + 500])
    # The threshold builds leave a tail of fresh rows; once writes stop they are folded in.
    assert _wait(lambda: shard.stats()["index_state"] == "ready" and shard.stats()["fresh"] == 0)
    assert shard.stats()["indexed"] == 3000
    # ...and the build is checkpointed without a clean stop: the log no longer holds those writes.
    assert _wait(lambda: (tmp_path / snapshot.MANIFEST).exists()
                 and json.loads((tmp_path / snapshot.MANIFEST).read_text())["indexed"] == 3000)
    shard.close(save=False)
    again = Shard(16, "l2", SMALL, data_dir=tmp_path, background=False)
    assert again.stats()["points"] == 3000 and again.stats()["index_state"] == "ready"
    again.close()


def test_the_log_is_checkpointed_when_it_passes_its_size_limit(tmp_path):
    vecs = np.random.default_rng(1).standard_normal((4000, 32)).astype(np.float32)
    shard = Shard(32, "l2", IndexParams(min_index_size=100_000), data_dir=tmp_path, durability="none",
                  checkpoint_log_bytes=256 << 10, background=False)
    for i in range(0, 4000, 200):  # ~26 KB per record: past the limit after ten
        shard.upsert([f"p{j}" for j in range(i, i + 200)], vecs[i:i + 200])
    assert _wait(lambda: shard._wal.size_bytes() < 256 << 10 and (tmp_path / snapshot.MANIFEST).exists())
    shard.close(save=False)
    again = Shard(32, "l2", IndexParams(min_index_size=100_000), data_dir=tmp_path, background=False)
    assert again.stats()["points"] == 4000
    again.close()


def test_close_does_not_wait_for_a_running_build(tmp_path):
    vecs = np.random.default_rng(2).standard_normal((60_000, 64)).astype(np.float32)
    shard = Shard(64, "l2", IndexParams(), data_dir=tmp_path, durability="none", background=False)
    shard.upsert([f"p{j}" for j in range(60_000)], vecs)
    shard.build_index(wait=False)
    builder = shard._builder
    shard.close()
    assert builder.is_alive()  # the checkpoint was written from the rows; the build's result is dropped
    again = Shard(64, "l2", IndexParams(), data_dir=tmp_path, background=False)
    assert again.stats()["points"] == 60_000
    again.close(save=False)
    builder.join()
