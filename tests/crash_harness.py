"""Kill -9 a real `simsearch serve` while it acknowledges writes, restart it, and check that
nothing acknowledged was lost or resurrected. Shared by tests/test_crash.py (a short run in the
suite) and scripts/crash_loop.py (long runs).

Why real processes and real signals: a crash test inside one process (or one that calls
close()) exercises the clean-shutdown path, which snapshots every shard; SIGKILL runs no
handler, so only what the server put on disk before replying survives.

One cycle:

    restart on the same data dir ─▶ verify (get every id the ledger knows, count, exact search)
        ─▶ write acknowledged batches in this thread ─▶ a timer thread SIGKILLs the server

The ledger keeps, per id, the set of states the server may hold: a version number (the id
holds `vectors_for(id, version)`) or DELETED. An acknowledged write makes that set one state;
a write that raised (the kill cut it off: "unknown") adds its state to the set, since it may or
may not have been applied. Verification accepts any state in the set and then collapses it to
what the server showed, which the restarted server now holds on disk.

Kinds of cycle: "writes" (kill 0.2-2 s after the writer starts, after verifying the previous
kill; enough points per cycle to cross min_index_size, so background index builds run and some
kills land during one) and "early" (kill 0.02-0.2 s after the restarted server first answers,
while it may still be replaying its log or rebuilding an index; verified at the next restart).
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from simsearch.client import Client
from simsearch.contract import NotFound

API_KEY = "crash-key-0123456789"
COLLECTION = "crash"
DELETED = -1  # the ledger's state for "absent"; versions are >= 0
_WRONG = -2  # seen: present, but with a vector that is none of the allowed versions
START_TIMEOUT_S = 120.0
_STRIPPED_ENV = ("SIMSEARCH_BOOTSTRAP_KEY", "RAY_ADDRESS", "SIMSEARCH_LOG_LEVEL", "SIMSEARCH_LOG_FORMAT")


# ---- vectors --------------------------------------------------------------------------------


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a cheap, well-spread hash of uint64s (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def vectors_for(ids: Iterable[int], versions: Iterable[int], dim: int) -> np.ndarray:
    """The vector of each (id, version): deterministic, so the ledger stores two integers per id
    and recomputes vectors when it checks them; different for every version, so reading back an
    older version of an overwritten id is told apart from the latest. Values are multiples of
    2**-23 in [-1, 1): exact in float32, so a stored vector compares equal bit for bit."""
    ids = np.fromiter(ids, np.uint64)
    versions = np.fromiter(versions, np.uint64)
    with np.errstate(over="ignore"):
        key = _mix64(ids * np.uint64(0x9E3779B97F4A7C15) + _mix64(versions + np.uint64(1)))
        x = _mix64(key[:, None] + np.arange(1, dim + 1, dtype=np.uint64)[None, :] * np.uint64(0x9E3779B97F4A7C15))
    return ((x >> np.uint64(40)).astype(np.float64) / 2.0**23 - 1.0).astype(np.float32)


# ---- the ledger -----------------------------------------------------------------------------


class Ledger:
    """What the server may hold for each id: a set of states (a version, or DELETED)."""

    def __init__(self) -> None:
        self.states: dict[int, set[int]] = {}
        self._next_version: dict[int, int] = {}

    def new_versions(self, ids: list[int]) -> list[int]:
        """A fresh version per write attempt, so no two attempts on an id share a vector."""
        out = []
        for i in ids:
            v = self._next_version.get(i, 0)
            self._next_version[i] = v + 1
            out.append(v)
        return out

    def acknowledged(self, ids: Iterable[int], states: Iterable[int]) -> None:
        for i, s in zip(ids, states):
            self.states[i] = {s}

    def unknown(self, ids: Iterable[int], states: Iterable[int]) -> None:
        """The write raised: it may or may not have been applied, so either state is acceptable."""
        for i, s in zip(ids, states):
            self.states.setdefault(i, {DELETED}).add(s)

    def maybe_live(self) -> list[int]:
        return [i for i, s in self.states.items() if s != {DELETED}]


class Pool:
    """Ids to overwrite or delete: O(1) add, remove and random sample."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._items: list[int] = []
        self._pos: dict[int, int] = {}
        for i in ids:
            self.add(i)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, i: int) -> None:
        if i not in self._pos:
            self._pos[i] = len(self._items)
            self._items.append(i)

    def remove(self, i: int) -> None:
        p = self._pos.pop(i)
        last = self._items.pop()
        if p < len(self._items):
            self._items[p] = last
            self._pos[last] = p

    def sample(self, rng: np.random.Generator, k: int) -> list[int]:
        """k distinct ids (fewer if the pool is smaller)."""
        k = min(k, len(self._items))
        return [self._items[p] for p in rng.choice(len(self._items), size=k, replace=False)] if k else []


# ---- the server process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    """The caller's environment without settings that would change the server under test."""
    return {k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV}


@cache
def serve_supports_durability() -> bool:
    """Whether this tree's `simsearch serve` has --durability (asked once: it costs an import)."""
    out = subprocess.run([sys.executable, "-m", "simsearch", "serve", "--help"], env=_env(), capture_output=True,
                         text=True, timeout=120)
    return "--durability" in out.stdout


def mid_checkpoint(data_dir: Path) -> bool:
    """Whether a shard was writing a checkpoint when the process died: its snapshot directory under a
    temporary name, or its manifest's temporary file, is still there."""
    shards = data_dir / "tenants"
    return any(True for _ in shards.glob("*/*/shard-*/snap-*.partial")) or any(
        True for _ in shards.glob("*/*/shard-*/manifest.json.tmp"))


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class ServerProcess:
    """`python -m simsearch serve` on a free port over data_dir; output appended to log_path."""

    data_dir: Path
    log_path: Path
    durability: str | None = None
    max_log_mb: int | None = None
    proc: subprocess.Popen | None = None
    address: str = ""
    startup_s: float = 0.0

    def start(self) -> float:
        """Spawns the server and waits for its first successful call; returns those seconds.
        Retries on another port when the free port was taken in between (exit before answering
        with "in use" in the log)."""
        for _ in range(3):
            port = free_port()
            cmd = [sys.executable, "-m", "simsearch", "serve", "--port", str(port), "--data-dir", str(self.data_dir),
                   "--bootstrap-key", API_KEY]
            if self.durability:
                cmd += ["--durability", self.durability]
            if self.max_log_mb:
                cmd += ["--max-log-mb", str(self.max_log_mb)]
            with self.log_path.open("a") as log:
                log.write(f"\n=== {' '.join(cmd[1:])}\n")
                log.flush()
                t0 = time.monotonic()
                self.proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT)
            self.address = f"127.0.0.1:{port}"
            if self._wait_ready(t0):
                self.startup_s = time.monotonic() - t0
                return self.startup_s
            if "in use" not in log_tail(self.log_path, 3):
                break
        raise RuntimeError(f"simsearch serve exited with {self.proc.returncode} before answering:\n"
                           f"{log_tail(self.log_path)}")

    def _wait_ready(self, t0: float) -> bool:
        """Polls list_collections with a fresh channel each time (a reused channel backs off
        after refused connections and would inflate the measured restart time)."""
        while time.monotonic() - t0 < START_TIMEOUT_S:
            if self.proc.poll() is not None:
                return False
            try:
                with Client(self.address, api_key=API_KEY, timeout=1.0) as c:
                    c.list_collections()
                return True
            except Exception:
                time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"simsearch serve did not answer within {START_TIMEOUT_S:.0f} s:\n{log_tail(self.log_path)}")

    def kill(self) -> None:
        """SIGKILL (no handler runs, nothing is flushed or snapshotted) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> int:
        """SIGTERM, the clean shutdown (drain, snapshot); returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9


class KillTimer(threading.Thread):
    """Sleeps, then SIGKILLs one pid. It only sleeps and signals, so every check stays on the
    test's thread; `killed_at` (time.monotonic, taken just before the signal) tells the writer
    whether an error came after the kill (expected) or before it (a bug)."""

    def __init__(self, pid: int, delay_s: float):
        super().__init__(name="crash-kill-timer", daemon=True)
        self.pid, self.delay_s = pid, delay_s
        self.killed_at: float | None = None
        self._cancel = threading.Event()

    def run(self) -> None:
        if self._cancel.wait(self.delay_s):
            return
        self.killed_at = time.monotonic()
        os.kill(self.pid, signal.SIGKILL)

    def cancel(self) -> None:
        self._cancel.set()


# ---- reports --------------------------------------------------------------------------------


@dataclass
class Verification:
    """One check of the restarted server against the ledger."""

    ids_checked: int = 0
    lost: int = 0  # an id that must be live is absent or holds a vector it never had acknowledged
    resurrected: int = 0  # an acknowledged delete is visible again
    points: int = -1  # describe_collection(...).points
    expected_lo: int = 0  # ids certainly live
    expected_hi: int = 0  # ids possibly live (unknown writes)
    present: int = 0  # ids get() returned
    search_checked: int = 0
    search_misses: int = 0  # exact search did not return the id for its own vector
    examples: list[str] = field(default_factory=list)

    @property
    def count_ok(self) -> bool:
        return self.expected_lo <= self.points <= self.expected_hi and self.points == self.present

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.resurrected or self.search_misses or not self.count_ok)


@dataclass
class CycleReport:
    index: int
    kind: str  # "writes", "early" or "final"
    restart_s: float = 0.0
    verification: Verification | None = None
    kill_delay_s: float = 0.0
    acked_upserts: int = 0
    acked_deletes: int = 0
    unknown: int = 0  # ids in writes that raised
    errors: list[str] = field(default_factory=list)  # what the writer saw after the kill
    unexpected: str = ""  # an error before the kill, or no error after it
    index_state_at_kill: str = ""  # the last describe before the kill ("building": a kill during a build)
    checkpoint_at_kill: bool = False  # a checkpoint was being written when the kill landed (files show it)

    def line(self) -> str:
        v = self.verification
        check = ("not verified (next restart)" if v is None else
                 f"lost {v.lost}, resurrected {v.resurrected}, points {v.points} "
                 f"(expected {v.expected_lo}..{v.expected_hi}), search {v.search_checked - v.search_misses}/"
                 f"{v.search_checked}")
        wrote = ("" if self.kind == "final" else
                 f" | acked {self.acked_upserts} upserts, {self.acked_deletes} deletes, {self.unknown} unknown; "
                 f"killed at {self.kill_delay_s:.2f}s ({self.index_state_at_kill or 'n/a'}"
                 f"{', mid-checkpoint' if self.checkpoint_at_kill else ''})")
        extra = f" | UNEXPECTED: {self.unexpected}" if self.unexpected else ""
        if v is not None and v.examples:
            extra += " | e.g. " + "; ".join(v.examples[:2])
        return f"cycle {self.index:3d} [{self.kind:6s}] restart {self.restart_s:.2f}s | {check}{wrote}{extra}"


@dataclass
class Totals:
    cycles: int = 0
    kills: int = 0
    kills_during_build: int = 0
    kills_during_checkpoint: int = 0
    acked_upserts: int = 0
    acked_deletes: int = 0
    unknown: int = 0
    lost: int = 0
    resurrected: int = 0
    count_mismatches: int = 0
    search_misses: int = 0
    unexpected: list[str] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)
    clean_stop_status: list[int] = field(default_factory=list)

    def add(self, r: CycleReport) -> None:
        self.cycles += r.kind != "final"
        self.kills += r.kind != "final" and not r.unexpected.startswith("no kill")
        self.kills_during_build += r.index_state_at_kill == "building"
        self.kills_during_checkpoint += r.checkpoint_at_kill
        self.acked_upserts += r.acked_upserts
        self.acked_deletes += r.acked_deletes
        self.unknown += r.unknown
        self.restart_s.append(r.restart_s)
        if r.unexpected:
            self.unexpected.append(f"cycle {r.index}: {r.unexpected}")
        if (v := r.verification) is not None:
            self.lost += v.lost
            self.resurrected += v.resurrected
            self.count_mismatches += not v.count_ok
            self.search_misses += v.search_misses

    @property
    def ok(self) -> bool:
        return not (self.lost or self.resurrected or self.count_mismatches or self.search_misses or self.unexpected
                    or any(self.clean_stop_status))

    def table(self) -> str:
        rs = self.restart_s or [0.0]
        rows = [
            ("cycles", self.cycles), ("kills (SIGKILL)", self.kills),
            ("kills during an index build", self.kills_during_build),
            ("kills during a checkpoint", self.kills_during_checkpoint),
            ("acknowledged upserts", self.acked_upserts), ("acknowledged deletes", self.acked_deletes),
            ("lost", self.lost), ("resurrected", self.resurrected), ("unknown (writes cut off)", self.unknown),
            ("count mismatches", self.count_mismatches), ("exact-search misses", self.search_misses),
            ("unexpected errors", len(self.unexpected)),
            ("restart s (median / max)", f"{statistics.median(rs):.2f} / {max(rs):.2f}"),
            ("clean stops (exit status)", ", ".join(map(str, self.clean_stop_status)) or "-"),
        ]
        width = max(len(k) for k, _ in rows) + 2
        return "\n".join(f"{k.ljust(width)}{v}" for k, v in rows)


# ---- the harness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HarnessConfig:
    dim: int = 16
    shards: int = 2
    metric: str = "l2"
    min_index_size: int = 256  # small, so each cycle's writes start background index builds
    new_per_batch: int = 16  # new ids per upsert call
    overwrites_per_batch: int = 4  # earlier ids rewritten with a new version in the same call
    deletes_per_batch: int = 2  # earlier ids deleted per delete call (more once the live set is full)
    live_target: int = 4000  # above this, delete as many as are added: keeps rebuilds cheap and frequent
    kill_after_s: tuple[float, float] = (0.2, 2.0)  # "writes" cycles, from the writer's start
    early_kill_after_s: tuple[float, float] = (0.02, 0.2)  # "early" cycles, from the first answer
    early_fraction: float = 0.25
    search_sample: int = 32
    describe_every_s: float = 0.05  # how often the writer samples index_state
    durability: str | None = None  # passed to `simsearch serve --durability` when set
    # `--max-log-mb`: 1 makes size-triggered checkpoints (and log rotations) frequent, so kills land in them
    max_log_mb: int | None = 1


class CrashHarness:
    """Runs kill/restart/verify cycles against one data directory; see the module docstring."""

    def __init__(self, work_dir: Path, config: HarnessConfig = HarnessConfig(), seed: int = 0,
                 log: Callable[[str], None] = print):
        self.config, self.log = config, log
        self.rng = np.random.default_rng(seed)
        self.server = ServerProcess(work_dir / "data", work_dir / "server.log", config.durability,
                                    config.max_log_mb)
        self.ledger = Ledger()
        self.totals = Totals()
        self.next_id = 0
        self.cycle = 0
        self.created = False

    # -- cycles --

    def run_cycle(self) -> CycleReport:
        """Restart (or first start), verify unless early, write until the kill lands."""
        self.cycle += 1
        early = self.created and self.rng.random() < self.config.early_fraction
        report = CycleReport(self.cycle, "early" if early else "writes")
        report.restart_s = self.server.start()
        t_ready = time.monotonic()
        with Client(self.server.address, api_key=API_KEY, timeout=10.0) as client:
            if not self.created:
                client.create_collection(COLLECTION, dim=self.config.dim, metric=self.config.metric,
                                         shards=self.config.shards, min_index_size=self.config.min_index_size)
                self.created = True
            elif not early:
                report.verification = self.verify(client)
            lo, hi = self.config.early_kill_after_s if early else self.config.kill_after_s
            report.kill_delay_s = float(self.rng.uniform(lo, hi))
            start = t_ready if early else time.monotonic()
            self.write_until_killed(client, report, start)
        self.server.kill()  # reaps it; a no-op signal when the timer's kill already landed
        report.checkpoint_at_kill = mid_checkpoint(self.server.data_dir)
        self._record(report)
        return report

    def finish(self) -> list[CycleReport]:
        """After the last kill: restart and verify, then a clean stop (SIGTERM, exit 0) and one
        more restart and verification, so the checkpoint written at shutdown is checked too."""
        reports = []
        for _ in range(2):
            report = CycleReport(self.cycle + 1 + len(reports), "final")
            report.restart_s = self.server.start()
            with Client(self.server.address, api_key=API_KEY, timeout=10.0) as client:
                report.verification = self.verify(client)
            self.totals.clean_stop_status.append(self.server.stop())
            self._record(report)
            reports.append(report)
        return reports

    def close(self) -> None:
        """Leaves no server behind, whatever happened."""
        self.server.kill()

    def _record(self, report: CycleReport) -> None:
        self.totals.add(report)
        self.log(report.line())

    # -- writing --

    def write_until_killed(self, client: Client, report: CycleReport, start: float) -> None:
        """Acknowledged batches in this thread until a call fails after the timer's SIGKILL.
        A failed call is "unknown": its ids accept the old state or the new one."""
        cfg = self.config
        pool = Pool(self.ledger.maybe_live())
        timer = KillTimer(self.server.proc.pid, max(0.0, report.kill_delay_s - (time.monotonic() - start)))
        timer.start()
        last_describe, state = 0.0, ""
        give_up = time.monotonic() + report.kill_delay_s + 15.0
        try:
            while time.monotonic() < give_up:
                new = list(range(self.next_id, self.next_id + cfg.new_per_batch))
                self.next_id += cfg.new_per_batch
                ids = new + pool.sample(self.rng, cfg.overwrites_per_batch)
                versions = self.ledger.new_versions(ids)
                if not self._call(report, timer, ids, versions,
                                  lambda: client.upsert(COLLECTION, [str(i) for i in ids],
                                                        vectors_for(ids, versions, cfg.dim), progress=False)):
                    return
                report.acked_upserts += len(ids)
                for i in new:
                    pool.add(i)
                n_del = cfg.new_per_batch if len(pool) > cfg.live_target else cfg.deletes_per_batch
                dels = pool.sample(self.rng, n_del)
                for i in dels:
                    pool.remove(i)
                if not self._call(report, timer, dels, [DELETED] * len(dels),
                                  lambda: client.delete(COLLECTION, [str(i) for i in dels])):
                    return
                report.acked_deletes += len(dels)
                if time.monotonic() - last_describe >= cfg.describe_every_s:
                    try:
                        state = client.describe_collection(COLLECTION).index_state
                        last_describe = time.monotonic()
                    except Exception as e:
                        self._stop_after(report, timer, e)
                        return
                    report.index_state_at_kill = state
            report.unexpected = f"no kill: the writer saw no error {report.kill_delay_s + 15:.0f} s after starting"
        finally:
            timer.cancel()
            timer.join()

    def _call(self, report: CycleReport, timer: KillTimer, ids: list[int], states: list[int],
              send: Callable[[], object]) -> bool:
        """Sends one write; records it in the ledger as acknowledged (True) or unknown (False)."""
        if not ids:
            return True
        try:
            send()
        except Exception as e:
            self.ledger.unknown(ids, states)
            report.unknown += len(ids)
            self._stop_after(report, timer, e)
            return False
        self.ledger.acknowledged(ids, states)
        return True

    def _stop_after(self, report: CycleReport, timer: KillTimer, e: Exception) -> None:
        """An error ends the cycle. After the kill it is expected; before it, it is a finding (the
        server failed on its own), and the server is killed now so the cycle can go on."""
        t_err = time.monotonic()
        report.errors.append(type(e).__name__)
        killed_at = timer.killed_at
        if killed_at is None or t_err < killed_at:
            report.unexpected = f"{type(e).__name__} before the kill: {str(e)[:200]}"

    # -- verification --

    def verify(self, client: Client) -> Verification:
        """Every id the ledger knows, read back with get: acknowledged upserts hold exactly their
        latest acknowledged vector, acknowledged deletes are missing; the count matches; an exact
        search finds a sample of ids by their own vectors. Then the ledger takes what it saw."""
        v = Verification()
        ids = sorted(self.ledger.states)
        observed = self._observe(client, ids)
        for i in ids:
            allowed = self.ledger.states[i]
            live = allowed - {DELETED}
            v.expected_lo += DELETED not in allowed
            v.expected_hi += bool(live)
            seen = observed.get(i, DELETED)
            if seen in allowed:
                self.ledger.states[i] = {seen}
                continue
            if live:
                v.lost += 1
                what = "missing" if seen == DELETED else "holds a vector never acknowledged"
            else:
                v.resurrected += 1
                what = "visible after an acknowledged delete"
            if len(v.examples) < 5:
                v.examples.append(f"id {i}: {what} (allowed states {sorted(allowed)})")
            self.ledger.states[i] = {seen}  # counted once: from now on the server's state is the reference
        v.ids_checked = len(ids)
        v.present = sum(1 for s in observed.values() if s != DELETED)
        try:
            v.points = client.describe_collection(COLLECTION).points
        except NotFound:
            v.points = 0
        self._check_search(client, observed, v)
        return v

    def _observe(self, client: Client, ids: list[int]) -> dict[int, int]:
        """id -> the version the server holds (matched against the allowed versions), _WRONG for
        a vector that is none of them; ids the server lacks are left out."""
        found: dict[int, np.ndarray] = {}
        try:
            for lo in range(0, len(ids), 20_000):
                pts = client.get(COLLECTION, [str(i) for i in ids[lo:lo + 20_000]])
                found.update((int(s), row) for s, row in zip(pts.ids, pts.vectors))
        except NotFound:  # the collection itself was lost
            return {}
        pairs = [(i, ver) for i in found for ver in sorted(self.ledger.states.get(i, set())) if ver >= 0]
        expected = vectors_for((p[0] for p in pairs), (p[1] for p in pairs), self.config.dim) if pairs else None
        observed = {i: _WRONG for i in found}
        for (i, ver), want in zip(pairs, expected if expected is not None else []):
            if np.array_equal(found[i], want):
                observed[i] = ver
        return observed

    def _check_search(self, client: Client, observed: dict[int, int], v: Verification) -> None:
        """Exact search (no cache) with a sample of live ids' own vectors: each must be its own
        nearest neighbour, so the search path sees what get sees."""
        live = [(i, s) for i, s in observed.items() if s >= 0]
        if not live:
            return
        picks = self.rng.choice(len(live), size=min(self.config.search_sample, len(live)), replace=False)
        sample = [live[p] for p in picks]
        res = client.search(COLLECTION, vectors_for((i for i, _ in sample), (s for _, s in sample), self.config.dim),
                            k=1, exact=True, no_cache=True)
        v.search_checked = len(sample)
        for (i, _), got in zip(sample, res.ids[:, 0]):
            if got != str(i):
                v.search_misses += 1
                if len(v.examples) < 5:
                    v.examples.append(f"exact search for id {i}'s vector returned {got!r}")



def run(work_dir: Path, cycles: int, config: HarnessConfig = HarnessConfig(), seed: int = 0,
        log: Callable[[str], None] = print) -> Totals:
    """`cycles` kill cycles, then the final verification and clean stops; the totals."""
    harness = CrashHarness(work_dir, config, seed, log)
    try:
        for _ in range(cycles):
            harness.run_cycle()
        harness.finish()
    finally:
        harness.close()
    return harness.totals
