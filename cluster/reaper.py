"""Stops a private local Ray when the process that started it is gone, even after a kill -9.

Why: `ray.init(address="local")` starts the GCS, a raylet and agents as children of the server; when
the server is killed with SIGKILL nothing runs its shutdown, and some of them (the dashboard and
runtime-env agents, measured with Ray 2.60) keep running and holding memory. The starter launches
this module as a process of its own session, connected by a pipe on its stdin; the pipe reaches EOF
when the starter exits in any way. Until then it notes the descendants of the processes ray.init
started (the roots, given by the starter: its new children) every POLL_S: Ray renames its agents and
workers, so their command lines do not say whose they are, and once the starter is gone they belong
to init. Only the roots' trees are noted, never the starter's other children. Then each noted process still alive (same pid and start time),
its descendants, and every process whose command line names the private Ray's temporary directory (a
unique mkdtemp path: the GCS and the raylet) get SIGTERM, then SIGKILL after a grace period, and the
directory (sockets, logs, the private token) is removed.

    python -m simsearch.cluster.reaper TEMP_DIR ROOT_PID...   (stdin: the pipe from the starter)
"""

from __future__ import annotations

import select
import shutil
import signal
import sys
import time

import psutil

GRACE_S = 3.0
POLL_S = 1.0


def grow(noted: dict[int, psutil.Process]) -> None:
    """Add the live descendants of the live noted processes to `noted`, and drop the dead ones (one pass
    over the process table; a pid reused by another process fails psutil's start-time check)."""
    for pid, p in list(noted.items()):
        if not p.is_running():
            del noted[pid]
    children: dict[int, list[psutil.Process]] = {}
    for p in psutil.process_iter(["ppid"]):
        children.setdefault(p.info["ppid"], []).append(p)
    todo = list(noted)
    while todo:
        for c in children.get(todo.pop(), ()):
            if c.pid not in noted:
                noted[c.pid] = c
                todo.append(c.pid)


def ray_processes(temp_dir: str, noted: dict[int, psutil.Process]) -> list[psutil.Process]:
    """The private Ray's live processes: those noted, any whose command line names `temp_dir` (the GCS and
    the raylet name their session directory), and the descendants of both; never this one."""
    found = dict(noted)
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = p.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(temp_dir in part for part in cmd):
            found.setdefault(p.pid, p)
    grow(found)
    found.pop(psutil.Process().pid, None)
    return list(found.values())


def sweep(temp_dir: str, noted: dict[int, psutil.Process] | None = None, grace_s: float = GRACE_S,
          sig: int = signal.SIGTERM) -> int:
    """`sig` (SIGTERM), then SIGKILL after `grace_s`, to the private Ray's processes; their count. (Tests
    use it, with SIGKILL, to take down a Ray node they started with `ray start --temp-dir`.)"""
    procs = ray_processes(temp_dir, noted or {})
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    return len(procs)


def main() -> int:
    temp_dir, roots = sys.argv[1], [int(a) for a in sys.argv[2:]]
    if not temp_dir.startswith("/") or len(temp_dir) < 8:
        return 2  # never a path that could match unrelated processes
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the server; this waits for it
    noted: dict[int, psutil.Process] = {}
    for pid in roots:
        try:
            noted[pid] = psutil.Process(pid)
        except psutil.NoSuchProcess:
            pass
    stdin = sys.stdin.buffer.raw
    while True:
        grow(noted)
        if select.select([stdin], [], [], POLL_S)[0] and not stdin.read(4096):
            break  # EOF: the starter closed the pipe or died
    sweep(temp_dir, noted)
    time.sleep(0.2)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
