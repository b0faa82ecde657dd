"""Two tenants on one server: a quiet one searching one query at a time, and a noisy one at its rate
and concurrency limits with many callers. Shared by tests/test_quotas.py (a short run) and
scripts/noisy_neighbour.py (the full one).

The quiet tenant's latency is measured in alternating windows, alone and beside the noisy one
(ABAB..., so drift on this VM hits both alike); the figure is the median of the windows' p99 with
the neighbour over the median without. With a `control` (the same quiet tenant on a second server
process), a third window in each round measures the quiet tenant on that server while the noisy one
loads the first: what the neighbour costs through the machine alone (CPU caches, the scheduler, the
clients sharing two cores), which no server-side limit can remove. The noisy callers run in a process of their own (as
another tenant's clients would) and use the SDK, which waits out each refusal's RetryInfo, as a
well-behaved client at its limit does.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from simsearch import AdminClient, Client

DIM = 64
POINTS = 20_000


@dataclass
class Result:
    alone_p99_ms: list[float] = field(default_factory=list)
    beside_p99_ms: list[float] = field(default_factory=list)
    alone_p50_ms: list[float] = field(default_factory=list)
    beside_p50_ms: list[float] = field(default_factory=list)
    control_p99_ms: list[float] = field(default_factory=list)  # quiet on the other server, noisy on this one
    noisy_admitted: int = 0
    quiet_errors: int = 0

    @property
    def p99_ratio(self) -> float:
        return float(np.median(self.beside_p99_ms) / np.median(self.alone_p99_ms))

    @property
    def machine_ratio(self) -> float:
        """The quiet p99 on a separate server beside the noisy load over alone: the machine's share."""
        return float(np.median(self.control_p99_ms) / np.median(self.alone_p99_ms))

    @property
    def server_ratio(self) -> float:
        """The quiet p99 sharing the noisy tenant's server over on a separate one, both beside the same load:
        what sharing the server adds on top of sharing the machine."""
        return float(np.median(self.beside_p99_ms) / np.median(self.control_p99_ms))


def prepare(address: str, admin_key: str, *, noisy_qps: float | None, noisy_concurrent: int | None,
            suffix: str = "") -> tuple[str, str]:
    """Two tenants with a collection each (the noisy one with the limits given; None: none); returns
    (quiet key, noisy key)."""
    rng = np.random.default_rng(0)
    quiet, loud = "quiet" + suffix, "noisy" + suffix
    with AdminClient(address, api_key=admin_key) as admin:
        admin.create_tenant(quiet)
        admin.create_tenant(loud, max_qps=noisy_qps, max_concurrent_searches=noisy_concurrent)
        keys = admin.create_key(quiet, "tenant-admin").secret, admin.create_key(loud, "tenant-admin").secret
    for key in keys:
        with Client(address, api_key=key) as c:
            c.create_collection("docs", DIM)
            c.upsert("docs", np.arange(POINTS), rng.standard_normal((POINTS, DIM)).astype(np.float32), progress=False)
            c.build_index("docs")
    return keys


def _noisy(address: str, key: str, on, done, callers: int, batch: int, admitted) -> None:
    """The noisy tenant's callers, in their own process (as another tenant's clients would be): while `on`
    is set, each sends `batch`-query searches back to back through the SDK (which waits out refusals).
    At nice 10: on this 2-core machine the load generator would otherwise take CPU from the server and
    the quiet client, which another tenant's clients, on their own machines, do not."""
    os.nice(10)
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((4096, DIM)).astype(np.float32)

    def caller() -> None:
        with Client(address, api_key=key) as c:
            while not done.is_set():
                if not on.wait(0.05):
                    continue
                try:
                    c.search("docs", queries[rng.integers(0, 4096 - batch):][:batch], 10, no_cache=True)
                    with admitted.get_lock():
                        admitted.value += 1
                except Exception:  # noqa: BLE001 (past the SDK's retries: the caller goes on)
                    pass

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _window(client: Client, queries: np.ndarray, window_s: float, result: Result) -> list[float]:
    """The quiet tenant's one-query search latencies (ms) over one window."""
    lat = []
    end = time.monotonic() + window_s
    i = 0
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            client.search("docs", queries[i % 4096], 10, no_cache=True)
        except Exception:  # noqa: BLE001
            result.quiet_errors += 1
        lat.append((time.perf_counter() - t0) * 1000)
        i += 1
    return lat


def run(address: str, quiet_key: str, noisy_key: str, *, windows: int = 3, window_s: float = 5.0,
        noisy_callers: int = 8, noisy_batch: int = 64, control: tuple[str, str] | None = None) -> Result:
    """`windows` rounds of: quiet alone, quiet beside the noisy tenant, and with `control` (address, quiet
    key of a second server prepared alike) quiet on that server while the noisy tenant loads this one."""
    result = Result()
    queries = np.random.default_rng(1).standard_normal((4096, DIM)).astype(np.float32)
    ctx = multiprocessing.get_context("spawn")
    on, done, admitted = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
    proc = ctx.Process(target=_noisy, args=(address, noisy_key, on, done, noisy_callers, noisy_batch, admitted),
                       daemon=True)
    proc.start()
    try:
        with Client(address, api_key=quiet_key) as c, \
                (Client(control[0], api_key=control[1]) if control else contextlib.nullcontext()) as other:
            for client in (c, other) if control else (c,):
                for q in queries[:50]:
                    client.search("docs", q, 10, no_cache=True)  # warm
            kinds = ("alone", "beside", "control") if control else ("alone", "beside")
            for _ in range(windows):
                for kind in kinds:
                    (on.clear if kind == "alone" else on.set)()
                    time.sleep(1.0)  # let the noisy callers reach (or leave) their limit
                    lat = _window(other if kind == "control" else c, queries, window_s, result)
                    p50, p99 = np.percentile(lat, [50, 99])
                    if kind == "control":
                        result.control_p99_ms.append(float(p99))
                    else:
                        (result.beside_p99_ms if kind == "beside" else result.alone_p99_ms).append(float(p99))
                        (result.beside_p50_ms if kind == "beside" else result.alone_p50_ms).append(float(p50))
    finally:
        done.set()
        on.set()
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
    result.noisy_admitted = admitted.value
    return result
