"""A shard's write-ahead log: every upsert or delete batch is one checksummed, sequence-numbered
record, written (and, by default, fsynced) before the write is acknowledged.

Why: a write acknowledged only from memory is lost by any crash. Recovery loads the latest
checkpoint and replays the records after its sequence number, so the log is the source of
truth between checkpoints; replicas (the cluster issue) can catch up from the same records.

Record (little-endian):

    u32 body length | u32 CRC-32 of (length, seq, body) | u64 seq | body
    body = u8 kind (1 upsert, 2 delete, 3 upsert with payloads) | u32 n | u32 dim | u32 id-bytes
           | ids as UTF-8 joined by NUL (ids never hold NUL) | n x dim float32 (upserts)
           | u32 payload-bytes | payloads (canonical JSON, "" for none) joined by NUL (kind 3)

Sequence numbers rise by one per record, across segments. Segments are files
`wal/<first seq, 20 digits>.log`, rotated at a size and at every checkpoint, and deleted once a
checkpoint covers them. Each append is one `write` of the whole record, so a killed process
never leaves half a record (the page cache keeps what was written); power loss can, and
recovery cuts such a torn tail off. A bad record followed by a valid later one is corruption,
not a torn tail: recovery stops with the file and offset rather than drop acknowledged writes.

Durability: "fsync" fsyncs before a write is acknowledged, one fsync for every writer that
waits at that moment (group commit); "interval" fsyncs in the background every N ms (a power
loss loses at most N ms; a process crash loses nothing); "none" never fsyncs (tests and
benchmarks).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsearch.shard.faults import StorageFault

from simsearch.shard.snapshot import fsync_path

log = logging.getLogger(__name__)

DURABILITY = ("fsync", "interval", "none")
UPSERT, DELETE, UPSERT_PAYLOADS = 1, 2, 3
SEGMENT_BYTES = 64 << 20  # a new segment after this many bytes
_HEAD = struct.Struct("<IIQ")  # length, crc, seq
_BODY = struct.Struct("<BIII")  # kind, n, dim, id bytes
_LEN = struct.Struct("<I")
_SEQ = struct.Struct("<Q")


class LogCorrupted(StorageFault):
    """A record that fails its checks with valid records after it: acknowledged writes would be lost."""


@dataclass(frozen=True)
class Record:
    seq: int
    kind: int  # UPSERT or DELETE
    ids: list[str]
    vectors: np.ndarray | None  # (n, dim) float32 for upserts
    payloads: list[str] | None = None  # canonical JSON per point ("" = none), for upserts that carry them


def _joined(texts: list[str]) -> bytes:
    return "\0".join(texts).encode("utf-8", "surrogatepass")


def encode(seq: int, kind: int, ids: list[str], vectors: np.ndarray | None,
           payloads: list[str] | None = None) -> bytes:
    """One record. An upsert with payloads is kind UPSERT_PAYLOADS: its body goes on with u32 bytes
    and the payloads joined by NUL (canonical JSON never holds a raw NUL)."""
    blob = _joined(ids)
    dim = 0 if vectors is None else vectors.shape[1]
    if kind == UPSERT and payloads is not None:
        kind = UPSERT_PAYLOADS
    parts = [_BODY.pack(kind, len(ids), dim, len(blob)), blob]
    if vectors is not None:
        parts.append(np.ascontiguousarray(vectors, "<f4").tobytes())
    if kind == UPSERT_PAYLOADS:
        docs = _joined(payloads)
        parts += [_LEN.pack(len(docs)), docs]
    body = b"".join(parts)
    crc = zlib.crc32(_SEQ.pack(seq) + body, zlib.crc32(_LEN.pack(len(body))))
    return _HEAD.pack(len(body), crc, seq) + body


def decode_body(seq: int, body: bytes) -> Record:
    kind, n, dim, nblob = _BODY.unpack_from(body)
    start = _BODY.size
    text = body[start:start + nblob].decode("utf-8", "surrogatepass")
    ids = text.split("\0") if n else []
    vectors = payloads = None
    if kind in (UPSERT, UPSERT_PAYLOADS):
        vectors = np.frombuffer(body, "<f4", n * dim, start + nblob).reshape(n, dim)
    if kind == UPSERT_PAYLOADS:
        at = start + nblob + n * dim * 4
        (ndocs,) = _LEN.unpack_from(body, at)
        payloads = body[at + _LEN.size:at + _LEN.size + ndocs].decode("utf-8", "surrogatepass").split("\0")
        kind = UPSERT
    return Record(seq, kind, ids, vectors, payloads)


def _parse(data: bytes, offset: int) -> tuple[int, int, bytes] | None:
    """(seq, end offset, payload) of a valid record at offset, else None."""
    if offset + _HEAD.size > len(data):
        return None
    length, crc, seq = _HEAD.unpack_from(data, offset)
    end = offset + _HEAD.size + length
    if end > len(data):
        return None
    payload = data[offset + _HEAD.size:end]
    if zlib.crc32(_SEQ.pack(seq) + payload, zlib.crc32(_LEN.pack(length))) != crc:
        return None
    return seq, end, payload


def _valid_record_after(data: bytes, offset: int, expected: tuple[int, ...]) -> int | None:
    """The offset of a valid record with one of the `expected` seqs anywhere after `offset`, or None.
    The seq field sits 8 bytes into a record, so candidates are found with bytes.find."""
    for seq in expected:
        needle = _SEQ.pack(seq)
        at = data.find(needle, offset)
        while at != -1:
            start = at - 8
            if start >= offset and _parse(data, start) is not None:
                return start
            at = data.find(needle, at + 1)
    return None


class WriteAheadLog:
    def __init__(self, directory: Path, durability: str = "fsync", interval_ms: int = 100,
                 segment_bytes: int = SEGMENT_BYTES):
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY)}, got {durability!r}")
        self.directory = directory
        self.durability = durability
        self.segment_bytes = segment_bytes
        self.last_seq = 0
        self._synced = 0
        self._fd: int | None = None
        self._broken: OSError | None = None  # why appends stopped, when a partial record could not be cut
        self._size = 0
        self._lock = threading.Lock()  # appends and rotation
        self._sync_lock = threading.Lock()  # one fsync at a time; the writers waiting share it
        self._stop = threading.Event()
        self._interval_s = interval_ms / 1000
        self._flusher: threading.Thread | None = None

    # ---- recovery ----

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("*.log"))

    def first_seq(self) -> int | None:
        """The sequence number the oldest segment starts at (its name), None when there is no log."""
        segments = self.segments()
        return int(segments[0].stem) if segments else None

    def size_bytes(self) -> int:
        """Bytes the log holds on disk (what a checkpoint would let go)."""
        total = 0
        for path in self.segments():
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # deleted by a checkpoint meanwhile
                pass
        return total

    def recover(self, after_seq: int) -> Iterator[Record]:
        """Yield every record with seq > after_seq, oldest first; cut a torn tail off the last
        segment (logged with its size); raise LogCorrupted, naming the file and offset, for a bad
        record that valid records follow. Then open the log for appends."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.last_seq = after_seq
        prev = 0  # the previous record's seq in the log: seqs rise by one per record
        segments = self.segments()
        for i, path in enumerate(segments):
            data = path.read_bytes()
            offset = 0
            while offset < len(data):
                parsed = _parse(data, offset)
                if parsed is not None and prev and parsed[0] != prev + 1:
                    parsed = None  # a gap or a step back in the sequence is damage too
                if parsed is None:
                    self._torn_or_corrupt(path, data, offset, prev, last=i == len(segments) - 1)
                    break
                seq, end, payload = parsed
                if seq > after_seq:
                    yield decode_body(seq, payload)
                prev = seq
                self.last_seq = max(self.last_seq, seq)
                offset = end
        self._synced = self.last_seq
        self._open_segment(segments[-1] if segments else None)
        if self.durability == "interval":
            self._flusher = threading.Thread(target=self._flush_loop, name="wal-flush", daemon=True)
            self._flusher.start()

    def _torn_or_corrupt(self, path: Path, data: bytes, offset: int, prev: int, *, last: bool) -> None:
        nxt = prev + 1
        later = _valid_record_after(data, offset + 1, (nxt, nxt + 1))
        if not last or later is not None:
            where = f"a valid record follows at offset {later}" if later is not None else "a later segment follows"
            raise LogCorrupted(f"write-ahead log {path} is damaged at offset {offset} ({where}); refusing to "
                               f"drop acknowledged writes. Restore the file, or move it away to accept the loss")
        with open(path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())
        log.warning("write-ahead log %s: cut a torn record of %d bytes at offset %d (a crash mid-write); "
                    "every earlier record is kept", path, len(data) - offset, offset)

    # ---- appends ----

    def _open_segment(self, path: Path | None) -> None:
        if path is None:
            path = self.directory / f"{self.last_seq + 1:020d}.log"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        fsync_path(self.directory)  # the new file's name is durable before a record in it is acknowledged

    def append(self, kind: int, ids: list[str], vectors: np.ndarray | None = None,
               payloads: list[str] | None = None) -> int:
        """Write one record (one `write` call) and return its seq. Not yet durable: see `sync`.
        Call under the shard's write lock, so seq order is the order writes are applied."""
        with self._lock:
            if self._fd is None:
                raise self._broken or OSError("the write-ahead log is closed")
            seq = self.last_seq + 1
            record = encode(seq, kind, ids, vectors, payloads)
            if self._size and self._size + len(record) > self.segment_bytes:
                self._rotate_locked()
            view = memoryview(record)
            try:
                while view:  # os.write may write less than asked (a nearly full disk: up to the last free page)
                    view = view[os.write(self._fd, view):]
            except OSError as e:
                self._cut_partial_record(e)
                raise
            self._size += len(record)
            self.last_seq = seq
            return seq

    def _cut_partial_record(self, cause: OSError) -> None:
        """After a failed write: cut the segment back to where the record began, so nothing valid is ever
        appended after a partial record (recovery would rightly call that damage). When even that fails,
        the log stops taking appends: the shard answers UNAVAILABLE until it is restarted."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as e:
            log.error("write-ahead log %s: could not cut a partial record (%s); refusing further appends",
                      self.directory, e.strerror or e)
            os.close(self._fd)
            self._fd = None
            self._broken = OSError(cause.errno, f"{cause.strerror}; the log stopped taking writes after a partial "
                                                f"record it could not cut: restart the server once the disk is writable")

    def sync(self, seq: int) -> None:
        """Return once record `seq` is durable under the log's policy (fsync: group commit)."""
        if self.durability != "fsync" or self._synced >= seq:
            return
        self._fsync_through()

    def _fsync_through(self) -> None:
        with self._sync_lock:
            with self._lock:
                target = self.last_seq
                if self._synced >= target or self._fd is None:
                    return
                fd = os.dup(self._fd)  # stays valid if the segment rotates while we sync
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._synced = max(self._synced, target)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._fsync_through()
            except OSError:
                log.exception("write-ahead log: background fsync failed")

    def rotate(self) -> int:
        """Start a new segment; returns the last seq of the old ones (a checkpoint's cut point)."""
        with self._lock:
            if self._size:
                self._rotate_locked()
            return self.last_seq

    def _rotate_locked(self) -> None:
        os.fsync(self._fd)  # earlier segments are always durable
        os.close(self._fd)
        self._synced = max(self._synced, self.last_seq)
        self._open_segment(None)

    def truncate_through(self, seq: int) -> int:
        """Delete the segments whose records all have seq <= `seq` (a checkpoint holds them). Returns how many."""
        segments = self.segments()
        removed = 0
        for path, nxt in zip(segments, segments[1:]):
            if int(nxt.stem) - 1 <= seq:
                path.unlink()
                removed += 1
        if removed:
            fsync_path(self.directory)
        return removed

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        with self._lock:
            if self._fd is not None:
                if self.durability != "none":
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
