"""Kill -9 a real `simsearch serve` at random moments, N times, and check every acknowledged write.

    python scripts/crash_loop.py [--cycles 200] [--seed 0] [--dim 16] [--durability fsync|interval|none]

Each cycle restarts the server on the same data directory, verifies it against what was
acknowledged (every acknowledged upsert readable with exactly its latest vector, no
acknowledged delete visible, the point count, an exact search for a sample), then writes
acknowledged batches until a timer thread SIGKILLs the server. After the last kill: one more
verification, a clean stop (SIGTERM), a restart and a last verification. The harness is
tests/crash_harness.py (shared with tests/test_crash.py), whose docstring says why it works
this way.

Prints one line per cycle and a final table (cycles, kills, acknowledged upserts and deletes,
lost, resurrected, unknown, restart time median/max); exits 1 if anything was lost or
resurrected, or on any other failed check (count, search, an error before a kill, a clean stop
that did not exit 0). --keep leaves the data directory and server.log behind.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import crash_harness as ch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=200, help="kill/restart cycles (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill moments and the writes")
    ap.add_argument("--dim", type=int, default=16, help="vector dimension (default 16)")
    ap.add_argument("--durability", choices=("fsync", "interval", "none"),
                    help="passed to `simsearch serve --durability` (default: not passed, the server's default)")
    ap.add_argument("--max-log-mb", type=int, default=1,
                    help="passed to `simsearch serve --max-log-mb` (default 1: frequent size-triggered checkpoints)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory and server.log")
    args = ap.parse_args()
    if args.cycles < 1:
        ap.error("--cycles must be at least 1")
    if args.durability and not ch.serve_supports_durability():
        ap.error("this simsearch serve has no --durability flag")

    work = Path(tempfile.mkdtemp(prefix="simsearch-crash-"))
    config = ch.HarnessConfig(dim=args.dim, durability=args.durability, max_log_mb=args.max_log_mb)
    print(f"crash loop: {args.cycles} cycles, seed {args.seed}, dim {args.dim}, "
          f"durability {args.durability or '(server default)'}, max log {args.max_log_mb} MB; work dir {work}",
          flush=True)
    t0 = time.monotonic()
    try:
        totals = ch.run(work, args.cycles, config, seed=args.seed, log=lambda line: print(line, flush=True))
    except BaseException:
        print(f"server log (tail):\n{ch.log_tail(work / 'server.log')}", file=sys.stderr)
        print(f"work dir kept: {work}", file=sys.stderr)
        raise
    print(f"\n{totals.table()}\nwall time {time.monotonic() - t0:.1f} s")
    for line in totals.unexpected:
        print(f"UNEXPECTED {line}")
    if args.keep or not totals.ok:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if totals.lost or totals.resurrected:
        print(f"FAIL: {totals.lost} lost, {totals.resurrected} resurrected")
    elif not totals.ok:
        print("FAIL: see the table and UNEXPECTED lines")
    return 0 if totals.ok else 1


if __name__ == "__main__":
    sys.exit(main())
