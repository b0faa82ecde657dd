"""The raw inputs of a collection bound to an encoder, kept so that it can be embedded again by another
encoder version (issue 19: reindex, and training on what a collection stores).

One SQLite file per collection (`<collection dir>/inputs.sqlite`, 0600): id -> the input, compressed
(zlib), in WAL mode with synchronous=FULL, so an input is durable before the write that carries it is
acknowledged. The router writes it before the shards (a crash between leaves an input no point uses,
never a point without its input), replaces it on every upsert of the id, and removes it with a delete
by ids; a filter delete leaves the inputs of the points it removed (no read ever returns them: a read
asks for found points only). Why SQLite: one transaction per request, durable, no server, and the
inputs are bytes keyed by id, which needs no more.

The blobs are made and read by protos/convert.py (`encode_inputs`, `decode_inputs`): one text
(b"t" + UTF-8) or one image (b"i" + channels, height, width as 3 uint16 + pixels), zlib-compressed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

FILE = "inputs.sqlite"


class InputStore:
    """One collection's raw inputs. Thread-safe; every call does its I/O on the calling thread (the engine
    calls it off the event loop)."""

    def __init__(self, directory: Path):
        self.path = directory / FILE
        self._lock = threading.Lock()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # private from the first byte
        os.close(fd)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS inputs (id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID")

    def put(self, ids: list[str], blobs: list[bytes]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO inputs (id, data) VALUES (?, ?)", zip(ids, blobs))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, ids: list[str]) -> list[bytes | None]:
        with self._lock:
            found: dict[str, bytes] = {}
            for i in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                part = ids[i:i + 500]
                marks = ",".join("?" * len(part))
                found.update(self._db.execute(f"SELECT id, data FROM inputs WHERE id IN ({marks})", part).fetchall())
        return [found.get(i) for i in ids]

    def delete(self, ids: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM inputs WHERE id = ?", ((i,) for i in ids))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def stored_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM inputs").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
