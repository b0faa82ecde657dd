"""A collection's feedback log: what users did with search results (issue 19, item 5).

Each event is (query, ids shown in order, id chosen or none), appended with a sequence number and a
time to one SQLite file per collection (`<collection dir>/feedback.sqlite`, 0600, WAL, synchronous=FULL:
durable before the RPC answers). The query is kept as sent: a float32 vector, or a raw input compressed
like the kept inputs (protos/convert.py), so a later encoder version can embed it again. Training reads
the log to mine hard negatives: shown but not chosen, and close to the query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simsearch.router.sqlite_files import open_private

FILE = "feedback.sqlite"
SEP = "\x00"  # ids never hold NUL (router/validate.py)


@dataclass(frozen=True)
class FeedbackEvent:
    seq: int
    at: float  # unix seconds
    kind: str  # "vector" (float32 bytes) or "input" (a compressed raw input)
    query: bytes
    shown: list[str]
    chosen: str  # "" = none chosen


class FeedbackStore:
    def __init__(self, directory: Path):
        self.path = directory / FILE
        self._lock = threading.Lock()
        self._db = open_private(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
                         "kind TEXT NOT NULL, query BLOB NOT NULL, shown TEXT NOT NULL, chosen TEXT NOT NULL)")

    def record(self, kind: str, query: bytes, shown: list[str], chosen: str) -> int:
        """Append one event (durable on return); its sequence number."""
        with self._lock:
            cur = self._db.execute("INSERT INTO events (at, kind, query, shown, chosen) VALUES (?, ?, ?, ?, ?)",
                                   (time.time(), kind, query, SEP.join(shown), chosen))
            return int(cur.lastrowid)

    def events(self, after: int = 0, limit: int = 10_000) -> Iterator[FeedbackEvent]:
        """The events after sequence number `after`, in order, `limit` at a time."""
        while True:
            with self._lock:
                rows = self._db.execute("SELECT seq, at, kind, query, shown, chosen FROM events WHERE seq > ? "
                                        "ORDER BY seq LIMIT ?", (after, limit)).fetchall()
            for seq, at, kind, query, shown, chosen in rows:
                yield FeedbackEvent(seq, at, kind, bytes(query), shown.split(SEP), chosen)
            if len(rows) < limit:
                return
            after = rows[-1][0]

    def page(self, after: int, limit: int, max_bytes: int) -> tuple[list[FeedbackEvent], int]:
        """Up to `limit` events after `after`, stopping once they hold about `max_bytes` (at least one event);
        and the `after` of the next page (0 when this was the last)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, at, kind, query, shown, chosen FROM events WHERE seq > ? "
                                    "ORDER BY seq LIMIT ?", (after, limit + 1)).fetchall()
        events: list[FeedbackEvent] = []
        size = 0
        for seq, at, kind, query, shown, chosen in rows[:limit]:
            size += len(query) + len(shown) + len(chosen) + 64
            if events and size > max_bytes:
                return events, events[-1].seq
            events.append(FeedbackEvent(seq, at, kind, bytes(query), shown.split(SEP), chosen))
        return events, events[-1].seq if len(rows) > limit else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
