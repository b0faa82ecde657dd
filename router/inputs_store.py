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

import threading
from pathlib import Path

from simsearch.router.sqlite_files import Transaction, open_private

FILE = "inputs.sqlite"


class InputStore:
    """One collection's raw inputs. Thread-safe; every call does its I/O on the calling thread (the engine
    calls it off the event loop). The stored bytes are counted once at opening and kept up to date by
    every change, so a quota recount does not read the file."""

    def __init__(self, directory: Path):
        self.path = directory / FILE
        self._lock = threading.Lock()
        self._db = open_private(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS inputs (id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID")
        self._bytes = int(self._db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM inputs").fetchone()[0])

    def _sizes(self, ids: list[str]) -> int:
        """The bytes stored now under these ids (by primary key, in chunks under SQLite's bound-parameter limit)."""
        total = 0
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            total += self._db.execute(f"SELECT COALESCE(SUM(LENGTH(data)), 0) FROM inputs WHERE id IN "
                                      f"({','.join('?' * len(part))})", part).fetchone()[0]
        return int(total)

    def put(self, ids: list[str], blobs: list[bytes]) -> None:
        with self._lock:
            with Transaction(self._db):
                replaced = self._sizes(ids)
                self._db.executemany("INSERT OR REPLACE INTO inputs (id, data) VALUES (?, ?)", zip(ids, blobs))
            self._bytes += sum(map(len, blobs)) - replaced  # committed: counted

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
            with Transaction(self._db):
                removed = self._sizes(ids)
                if removed:  # nothing kept under these ids (a plain-vector upsert, usually): nothing to write
                    self._db.executemany("DELETE FROM inputs WHERE id = ?", ((i,) for i in ids))
            self._bytes -= removed

    def stored_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        with self._lock:
            self._db.close()
