"""One deadline per request, computed once at the edge and honoured by every stage after it.

The edge takes the smallest of the call's gRPC deadline, the request's own
`params.timeout_ms` and the server's default, and turns it into an absolute time. Embedding,
the cache, the fan-out and the shards' work all read what is left of that one value, so a
caller gets DEADLINE_EXCEEDED when it passes, whichever stage is running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from simsearch.contract.errors import DeadlineExceeded
from simsearch.contract.limits import DEFAULT_TIMEOUT_S

T = TypeVar("T")


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() when the request must be answered
    budget_s: float  # the whole budget, for messages

    @classmethod
    def at_edge(cls, call_remaining_s: float | None = None, timeout_ms: int = 0,
                default_s: float = DEFAULT_TIMEOUT_S) -> "Deadline":
        """The smallest of the gRPC deadline (None: none), params.timeout_ms (0: none) and the default."""
        budget = default_s
        if timeout_ms:
            budget = min(budget, timeout_ms / 1000)
        if call_remaining_s is not None:
            budget = min(budget, call_remaining_s)
        budget = max(budget, 0.0)
        return cls(time.monotonic() + budget, budget)

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.0)

    def expired(self, stage: str) -> DeadlineExceeded:
        return DeadlineExceeded(f"deadline of {self.budget_s * 1000:.0f} ms passed during {stage}")

    def check(self, stage: str) -> None:
        if time.monotonic() >= self.at:
            raise self.expired(stage)

    async def run(self, stage: str, work: Awaitable[T]) -> T:
        """Await `work`, or raise DeadlineExceeded naming `stage` when the deadline passes first."""
        try:
            return await asyncio.wait_for(work, self.remaining())
        except asyncio.TimeoutError:
            raise self.expired(stage) from None
