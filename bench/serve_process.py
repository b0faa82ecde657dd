"""`python -m simsearch serve` as a child process for measurements: started on a free port of
its choosing (the banner names it), its output kept with arrival times, stopped cleanly
(SIGTERM: drain and checkpoint) or killed (SIGKILL: nothing flushed), its resident memory read
with its children's. The benchmark's server, the fsync-against-none ingest runs and
scripts/restart_time.py all start the server through this.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BANNER = "simsearch listening on "
# shard/shard.py, at info: "shard <root> restored: checkpoint of N rows + M logged writes in X.XXs"
RESTORED = re.compile(r"shard (\S+) restored: checkpoint of (\d+) rows \+ (\d+) logged writes in ([0-9.]+)s")


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


@dataclass
class ServeProcess:
    """One `simsearch serve` over data_dir. `args` are extra serve flags (e.g. ["--durability", "none"])."""

    data_dir: Path
    key: str
    args: list[str] = field(default_factory=list)
    start_timeout_s: float = 600.0  # a restart replays its log before it listens

    def start(self) -> float:
        """Spawns the server and returns once its banner is out (seconds from spawn). `t0` is the
        spawn time (time.monotonic), `lines` every output line as (monotonic time, text)."""
        self.lines: list[tuple[float, str]] = []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simsearch", "serve", "--port", "0", "--data-dir", str(self.data_dir),
             "--bootstrap-key", self.key, *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        listening = threading.Event()

        def drain() -> None:  # also after the banner, so the pipe never fills
            for line in self.proc.stdout:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                if line.startswith(BANNER):
                    self.address = line.split()[3]
                    listening.set()
            listening.set()  # exited

        threading.Thread(target=drain, daemon=True).start()
        if not listening.wait(self.start_timeout_s) or self.proc.poll() is not None:
            code = self.proc.poll()
            self.kill()
            tail = "\n".join(text for _, text in self.lines[-20:])
            raise RuntimeError(f"simsearch serve {'exited with ' + str(code) if code is not None else 'timed out'} "
                               f"before listening:\n{tail}")
        self.listening_s = next(t for t, text in self.lines if text.startswith(BANNER)) - self.t0
        return self.listening_s

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return tree_rss(self.proc.pid)

    def restored(self) -> list[dict[str, float]]:
        """What the server logged about restoring its shards (needs --log-level info): one entry per shard."""
        out = []
        for _, text in self.lines:
            m = RESTORED.search(text)
            if m:
                out.append({"shard": m.group(1), "checkpoint_rows": int(m.group(2)),
                            "logged_writes": int(m.group(3)), "seconds": float(m.group(4))})
        return out

    def stop(self, timeout_s: float = 300.0) -> float:
        """SIGTERM, the clean shutdown (drain, checkpoint every shard); returns the seconds it took."""
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"simsearch serve did not stop within {timeout_s:.0f} s of SIGTERM") from None
        return time.monotonic() - t

    def kill(self) -> None:
        """SIGKILL (no handler runs, nothing is flushed or checkpointed) and reap."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
