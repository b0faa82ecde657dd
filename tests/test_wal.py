"""The write-ahead log on its own and inside a shard: records survive, a torn tail is cut at every
byte offset with every earlier record kept, damage before the tail stops recovery naming the
file and offset, and a shard reopened without a clean shutdown has every logged write."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from simsearch.shard import IndexParams, Shard
from simsearch.shard.wal import DELETE, UPSERT, LogCorrupted, WriteAheadLog

pytestmark = pytest.mark.unit


def _write(directory, n_records: int, **kw) -> list[tuple[int, list[str], np.ndarray]]:
    log = WriteAheadLog(directory, **kw)
    list(log.recover(0))
    rng = np.random.default_rng(0)
    written = []
    for i in range(n_records):
        ids = [f"id-{i}-{j}-ü" for j in range(3)]
        vecs = rng.standard_normal((3, 4)).astype(np.float32)
        seq = log.append(UPSERT, ids, vecs)
        log.sync(seq)
        written.append((seq, ids, vecs))
    log.close()
    return written


def _replay(directory) -> list:
    log = WriteAheadLog(directory, durability="none")
    records = list(log.recover(0))
    log.close()
    return records


def test_records_come_back_in_order_with_identical_contents(tmp_path):
    written = _write(tmp_path, 5)
    log = WriteAheadLog(tmp_path)
    list(log.recover(0))
    seq = log.append(DELETE, ["id-0-1"])
    log.close()
    records = _replay(tmp_path)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6] and seq == 6
    for rec, (s, ids, vecs) in zip(records, written):
        assert rec.kind == UPSERT and rec.seq == s and rec.ids == ids and np.array_equal(rec.vectors, vecs)
    assert records[-1].kind == DELETE and records[-1].ids == ["id-0-1"] and records[-1].vectors is None


def test_a_torn_last_record_is_cut_at_every_byte_offset_and_earlier_records_are_kept(tmp_path):
    written = _write(tmp_path / "orig", 4)
    (segment,) = (tmp_path / "orig").glob("*.log")
    data = segment.read_bytes()
    last_start = len(data) - (len(data) // 4)  # all records have the same size here
    assert len(data) % 4 == 0
    for cut in range(last_start, len(data)):
        d = tmp_path / f"cut-{cut}"
        d.mkdir()
        (d / segment.name).write_bytes(data[:cut])
        records = _replay(d)
        assert [r.seq for r in records] == [1, 2, 3], cut
        assert all(r.ids == w[1] for r, w in zip(records, written))
        assert (d / segment.name).stat().st_size == last_start  # the torn bytes were cut off
        log = WriteAheadLog(d, durability="none")  # and appends continue after the cut
        list(log.recover(0))
        assert log.append(UPSERT, ["again"], np.zeros((1, 4), np.float32)) == 4
        log.close()


def test_a_corrupted_last_record_is_cut_at_every_byte_offset(tmp_path):
    _write(tmp_path / "orig", 3)
    (segment,) = (tmp_path / "orig").glob("*.log")
    data = segment.read_bytes()
    last_start = len(data) - len(data) // 3
    for at in range(last_start, len(data)):
        d = tmp_path / f"flip-{at}"
        d.mkdir()
        damaged = bytearray(data)
        damaged[at] ^= 0xFF
        (d / segment.name).write_bytes(bytes(damaged))
        assert [r.seq for r in _replay(d)] == [1, 2], at


def test_damage_before_the_tail_stops_recovery_naming_file_and_offset(tmp_path):
    _write(tmp_path, 4)
    (segment,) = tmp_path.glob("*.log")
    data = bytearray(segment.read_bytes())
    size = len(data) // 4
    data[size + 20] ^= 0xFF  # inside record 2; records 3 and 4 are intact after it
    segment.write_bytes(bytes(data))
    with pytest.raises(LogCorrupted, match=rf"{segment.name} is damaged at offset {size}"):
        _replay(tmp_path)
    assert segment.stat().st_size == len(data)  # nothing was cut


def test_concurrent_writers_share_fsyncs_and_lose_nothing(tmp_path):
    log = WriteAheadLog(tmp_path, durability="fsync")
    list(log.recover(0))
    lock = threading.Lock()  # the shard's write lock: appends in seq order
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(50):
                with lock:
                    seq = log.append(UPSERT, [f"w{w}-{i}"], np.full((1, 2), w, np.float32))
                log.sync(seq)
        except BaseException as e:  # checked in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert not errors
    assert sorted(r.ids[0] for r in _replay(tmp_path)) == sorted(f"w{w}-{i}" for w in range(4) for i in range(50))


def test_a_shard_reopened_without_a_clean_shutdown_has_every_logged_write(tmp_path):
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((3000, 8)).astype(np.float32)
    shard = Shard(8, "l2", IndexParams(min_index_size=256), data_dir=tmp_path, background=False)
    shard.upsert([str(i) for i in range(2000)], vecs[:2000])
    shard.save()  # a checkpoint; the log is cut after it
    shard.upsert([str(i) for i in range(2000, 3000)], vecs[2000:])
    shard.upsert(["5"], vecs[:1] + 1)  # an overwrite after the checkpoint
    shard.delete(["7", "2500"])
    # no close(): what a crash leaves (the log's writes are in the page cache)
    again = Shard(8, "l2", IndexParams(min_index_size=256), data_dir=tmp_path, background=False)
    found, got, _ = again.get([str(i) for i in range(3000)])
    assert found.sum() == 2998 and not found[7] and not found[2500]
    expect = vecs.copy()
    expect[5] = vecs[0] + 1  # id "5" was overwritten with vecs[0] + 1
    keep = np.flatnonzero(found)
    assert np.array_equal(got, expect[keep])
    assert len(list((tmp_path / "wal").glob("*.log"))) <= 2  # segments before the checkpoint were deleted
