"""At most one log line per key per interval, with a count of what was held back.

A client that sends garbage, or a bug that every request hits, must not turn each request
into a traceback in the log (a fuzzer once produced 6,409 of them, ~2.6 MB): the first event
of a kind is logged at once, later ones within the interval are only counted, and the next
line reports how many there were.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class LogThrottle:
    def __init__(self, interval_s: float = 10.0, *, clock: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()  # deserializers may run off the event loop's thread
        self._state: dict[Hashable, tuple[float, int]] = {}  # key -> (last logged at, events since)

    def admit(self, key: Hashable) -> tuple[int, float] | None:
        """Count one event. Returns (events since the last line, including this one; seconds since
        that line) when this event should be logged, else None."""
        now = self._clock()
        with self._lock:
            last, held = self._state.get(key, (None, 0))
            if last is not None and now - last < self.interval_s:
                self._state[key] = (last, held + 1)
                return None
            self._state[key] = (now, 0)
            return held + 1, (now - last if last is not None else 0.0)
