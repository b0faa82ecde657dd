"""Fuzz every RPC of a real `simsearch serve` process with generated hostile requests.

    python scripts/fuzz.py [--requests 10000] [--seed 0]

Starts the server in a subprocess on a free port with a fresh data directory, creates the
pre-made collection, sends the issue-14 amplification cases (each must be refused up front),
then N calls from the Hypothesis generators in tests/fuzz_messages.py (shared with
tests/test_fuzz.py) spread over every RPC of Collections, Points and Encoders. Prints a table
of status codes per RPC, the server's RSS (before, peak, after), what the server logged, and
exits non-zero on any UNKNOWN/INTERNAL status, a status message that echoes its input
(longer than fm.MAX_DETAILS), an amplification case not refused, a crash, or a change to
the pre-made data.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil
from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fuzz_messages as fm  # noqa: E402

from simsearch.client import Client  # noqa: E402

API_KEY = "fuzz-key-0123456789"
REFUSED = frozenset({"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"})
AMPLIFICATION_MAX_GROWTH = 200 << 20  # the measured bugs grew the server by 954 MiB .. 2.3 GB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RssSampler:
    """The server's resident memory, sampled every 10 ms on a thread; `peak` since the last `reset`."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return self.proc.memory_info().rss

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, self.now())
            except psutil.Error:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start_server(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "simsearch", "serve", "--port", str(port), "--data-dir",
                             str(data_dir), "--bootstrap-key", API_KEY], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}; see {log_path}")
        try:
            with Client(address, api_key=API_KEY, timeout=2) as c:
                c.list_collections()
            return proc, address
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def print_table(tally: dict[str, collections.Counter]) -> None:
    codes = sorted({c for counts in tally.values() for c in counts}, key=lambda c: (c != "OK", c))
    width = max(len(r) for r in tally) + 2
    print("".ljust(width) + "".join(c[:16].rjust(17) for c in codes) + "total".rjust(8))
    for rpc in sorted(tally):
        row = tally[rpc]
        print(rpc.ljust(width) + "".join(str(row.get(c, "")).rjust(17) for c in codes) + str(sum(row.values())).rjust(8))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000, help="generated calls to send (default 10,000)")
    ap.add_argument("--seed", type=int, default=0, help="Hypothesis seed, for a reproducible run")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="simsearch-fuzz-"))
    log_path = work / "server.log"
    t_start = time.perf_counter()
    proc, address = start_server(work / "data", log_path)
    failures: list[str] = []
    try:
        rss = RssSampler(proc.pid)
        with Client(address, api_key=API_KEY) as c:
            fm.prepare_keep(c)
            before = fm.snapshot(c)
        channel = grpc.insecure_channel(address, options=fm.CHANNEL_OPTIONS)
        rss_before = rss.reset()
        print(f"server pid {proc.pid} at {address}; RSS before: {mib(rss_before)}")

        print("\namplification cases (each must be refused before any work):")
        for label, case, copies in fm.amplification_cases():
            pre = rss.reset()
            t0 = time.perf_counter()
            outcomes = fm.send_concurrently(channel, case, API_KEY, copies)
            took = time.perf_counter() - t0
            growth = rss.peak - pre
            codes = sorted(fm.answers(outcomes))
            print(f"  {label}: {'/'.join(codes)} in {took * 1000:,.0f} ms, server RSS peak +{mib(growth)}; "
                  f"{next((o.details for o in outcomes if o.details), '')[:110]}")
            if not set(codes) <= REFUSED:
                failures.append(f"{label}: answered {codes}, not refused")
            if growth > AMPLIFICATION_MAX_GROWTH:
                failures.append(f"{label}: the server grew by {mib(growth)}")

        tally: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        kinds: collections.Counter = collections.Counter()
        longest = {"details": 0, "example": ""}
        calls = {"n": 0, "messages": 0}

        @seed(args.seed)
        @settings(max_examples=args.requests, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(case=fm.cases())
        def fuzz(case: fm.Case) -> None:
            calls["n"] += 1
            calls["messages"] += len(case.bodies)
            kinds[case.kind] += 1
            for o in fm.send(channel, case, API_KEY):
                tally[case.rpc.name + (" (in-band)" if o.in_band else "")][o.code] += 1
                if len(o.details) > longest["details"]:
                    longest.update(details=len(o.details), example=f"{case.rpc.name} {o.code}: {o.details[:240]}")
                if o.code in fm.BAD_CODES:
                    failures.append(f"{case!r}: {o.code} {o.details[:200]}")
                elif len(o.details) > fm.MAX_DETAILS:
                    failures.append(f"{case!r}: a {len(o.details):,}-character status message echoes the input: "
                                    f"{o.code} {o.details[:160]}")

        pre = rss.reset()
        t0 = time.perf_counter()
        fuzz()
        took = time.perf_counter() - t0
        print(f"\n{calls['n']:,} generated calls ({calls['messages']:,} messages) in {took:.1f} s "
              f"({calls['n'] / took:,.0f} calls/s); kinds: {dict(kinds)}; server RSS peak during them "
              f"{mib(rss.peak)} (+{mib(rss.peak - pre)})\n")
        print_table(tally)
        print(f"\nlongest status message: {longest['details']:,} characters ({longest['example']})")

        alive = proc.poll() is None
        if not alive:
            failures.append(f"the server died (exit {proc.returncode})")
        else:
            with Client(address, api_key=API_KEY) as c:
                after = fm.snapshot(c)
                names = c.list_collections()
            if after != before:
                failures.append("the pre-made collection changed")
            print(f"server still answers: yes (collections: {names}); pre-made data unchanged: {after == before}")
        rss_after = rss.now() if alive else 0
        rss.stop()
        print(f"server RSS: before {mib(rss_before)}, after {mib(rss_after)}")
        channel.close()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(work / "data", ignore_errors=True)  # the log stays, for reading
    text = log_path.read_text(errors="replace")
    print(f"server log: {len(text):,} bytes, {text.count(chr(10)):,} lines, {text.count('Traceback'):,} tracebacks, "
          f"{text.count('undecodable')} undecodable-request warnings ({log_path})")
    print(f"wall time: {time.perf_counter() - t_start:.1f} s")
    for f in failures[:20]:
        print("FAIL", f)
    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("OK: no UNKNOWN/INTERNAL, no crash, data unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
