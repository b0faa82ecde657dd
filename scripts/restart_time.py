"""How long `simsearch serve` takes to come back with N stored vectors: after a clean stop
(checkpoint only) and after kill -9 (checkpoint + write-ahead log replay).

    python scripts/restart_time.py [--points 1m] [--dim 128] [--log-tail 100k] [--restarts 3] [--json out.json]

1. Load: a `simsearch serve` subprocess on a fresh data directory (started with
   `--durability none` unless --load-durability says otherwise: the load's fsyncs are not what
   is measured, and a clean stop writes everything anyway), a collection of --points synthetic
   128-d vectors (a seeded Gaussian mixture) upserted through the SDK, BuildIndex, then SIGTERM
   (a clean stop writes the checkpoint).
2. Clean restarts, --restarts times: start on the same directory, time it until it answers a
   search correctly, SIGTERM. Each restart loads the checkpoint alone.
3. The log tail: start, upsert --log-tail more vectors (new ids, after the last checkpoint),
   then kill -9, so they exist only in the log.
4. Restarts after kill -9, --restarts times: start, time it until it answers, kill -9 again.
   Each restart loads the checkpoint and replays the tail's log records. A tail of 50k rows or
   more (a quarter of the index, at most 50k) also starts a background index rebuild right
   after the replay, which shares the CPU with the first searches, as it would after a crash.

Measured per restart: from spawning the process to its "listening" banner, and to the first
search that answers correctly (the top hit of stored vectors from the start, middle and end of
the load, and the last vector of the tail once written, is that vector's own id), the restore
time the server logs per shard ("restored: checkpoint of N rows + M logged writes in X s",
M counting log records, one per upsert request per shard), the server's RSS once it answers,
and for clean restarts how long the SIGTERM stop took (it writes a checkpoint).

Restarts are timed with `--durability fsync` (the default; restores do not depend on it).
Prints one line per phase and restart, then a table; --json writes every figure to a file
("-" for stdout). --keep leaves the data directory and server.log.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from simsearch import datasets as D
from simsearch.bench.serve_process import ServeProcess
from simsearch.client import Client

COLLECTION = "restart"
CHUNK = 100_000  # rows handed to one SDK upsert call (the SDK cuts them into ~8 MiB requests)
READY_TIMEOUT_S = 600.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def upsert(client: Client, ids: np.ndarray, vectors: np.ndarray, desc: str) -> float:
    """Upsert in chunks under one progress bar; returns the seconds."""
    t0 = time.perf_counter()
    with tqdm(total=len(ids), unit="vec", desc=desc, file=sys.stderr, mininterval=2.0) as bar:
        for i in range(0, len(ids), CHUNK):
            client.upsert(COLLECTION, ids[i:i + CHUNK], vectors[i:i + CHUNK], progress=False)
            bar.update(len(ids[i:i + CHUNK]))
    return time.perf_counter() - t0


def wait_correct(server: ServeProcess, key: str, probes: np.ndarray, expected: np.ndarray) -> float:
    """Seconds from spawn until a search for each probe returns its own id first."""
    with Client(server.address, api_key=key, timeout=30.0) as client:
        last = ""
        while time.monotonic() - server.t0 < READY_TIMEOUT_S:
            try:
                got = client.search(COLLECTION, probes, 1, no_cache=True).ids[:, 0]
                if np.array_equal(got, expected):
                    return time.monotonic() - server.t0
                last = f"top hits {got.tolist()}, expected {expected.tolist()}"
            except Exception as e:  # not serving yet; anything else shows in the timeout message
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.01)
    raise TimeoutError(f"no correct search answer within {READY_TIMEOUT_S:.0f} s of spawning the server ({last})")


def restart(data_dir: Path, key: str, kind: str, probes: np.ndarray, expected: np.ndarray,
            server_log: Path) -> dict[str, Any]:
    """One timed restart, then a clean stop (kind "clean") or kill -9 (kind "kill")."""
    server = ServeProcess(data_dir, key, ["--log-level", "info"], start_timeout_s=READY_TIMEOUT_S)
    stop_s: float | None = None
    try:
        listening = server.start()
        answered = wait_correct(server, key, probes, expected)
        rss = server.rss()
        restored = server.restored()
        if kind == "clean":
            stop_s = server.stop()
        else:
            server.kill()
    finally:
        if hasattr(server, "proc") and server.proc.poll() is None:
            server.kill()
        _append_log(server, server_log, f"restart ({kind})")
    return {"after": "clean stop" if kind == "clean" else "kill -9", "listening_s": listening,
            "answered_s": answered, "restored": restored,
            "restore_s": sum(r["seconds"] for r in restored),
            "checkpoint_rows": sum(r["checkpoint_rows"] for r in restored),
            "log_records": sum(r["logged_writes"] for r in restored), "rss_bytes": rss,
            "sigterm_stop_s": stop_s}


def _append_log(server: ServeProcess, path: Path, title: str) -> None:
    with path.open("a") as f:
        f.write(f"\n=== {title}\n" + "".join(text + "\n" for _, text in getattr(server, "lines", [])))


def run(args: argparse.Namespace, data_dir: Path, server_log: Path) -> dict[str, Any]:
    n, m, dim = args.points, args.log_tail, args.dim
    key = "restart-" + secrets.token_hex(8)
    log(f"generating {n + m:,} synthetic {dim}-d vectors (a seeded Gaussian mixture)")
    ds = D.synthetic_gmm(n + m, dim, queries=0, seed=args.seed)
    ids = np.arange(n + m)
    loaded = np.array([0, n // 2, n - 1])

    log(f"load: simsearch serve --durability {args.load_durability}, {args.shards} shard(s)")
    server = ServeProcess(data_dir, key, ["--durability", args.load_durability, "--log-level", "info"])
    server.start()
    try:
        with Client(server.address, api_key=key, timeout=None) as client:
            client.create_collection(COLLECTION, dim, shards=args.shards)
            upsert_s = upsert(client, ids[:n], ds.train[:n], "load")
            log(f"  {n:,} vectors in {upsert_s:.1f} s ({n / upsert_s:,.0f} vec/s); BuildIndex (minutes at 1M)")
            t = time.perf_counter()
            client.build_index(COLLECTION, timeout=None)
            build_s = time.perf_counter() - t
        log(f"  index built in {build_s:.1f} s; SIGTERM (a clean stop writes the checkpoint)")
        stop_s = server.stop()
    finally:
        if server.proc.poll() is None:
            server.kill()
        _append_log(server, server_log, "load")
    log(f"  stopped in {stop_s:.1f} s")
    result: dict[str, Any] = {
        "points": n, "dim": dim, "shards": args.shards, "log_tail_points": m, "synthetic": True,
        "load": {"durability": args.load_durability, "upsert_s": upsert_s, "build_index_s": build_s,
                 "sigterm_stop_s": stop_s},
        "restarts": []}

    def timed(kind: str, probe_ids: np.ndarray, i: int) -> None:
        r = restart(data_dir, key, kind, ds.train[probe_ids], probe_ids.astype(str), server_log)
        result["restarts"].append(r)
        log(f"  restart {i + 1}/{args.restarts} after {r['after']}: listening {r['listening_s']:.2f} s, "
            f"answered {r['answered_s']:.2f} s; the server logged {r['restore_s']:.2f} s for "
            f"{r['checkpoint_rows']:,} checkpoint rows + {r['log_records']:,} log records")

    log(f"clean restarts ({args.restarts})")
    for i in range(args.restarts):
        timed("clean", loaded, i)

    log(f"log tail: {m:,} more vectors after the checkpoint, then kill -9")
    server = ServeProcess(data_dir, key, ["--durability", args.load_durability, "--log-level", "info"],
                          start_timeout_s=READY_TIMEOUT_S)
    server.start()
    try:
        if m:
            with Client(server.address, api_key=key, timeout=None) as client:
                tail_s = upsert(client, ids[n:], ds.train[n:], "tail")
            log(f"  {m:,} vectors in {tail_s:.1f} s")
    finally:
        server.kill()
        _append_log(server, server_log, "log tail")
    after_kill = np.concatenate([loaded, ids[-1:]]) if m else loaded

    log(f"restarts after kill -9 ({args.restarts})")
    for i in range(args.restarts):
        timed("kill", after_kill, i)
    return result


def table(result: dict[str, Any]) -> str:
    lines = [f"{result['points']:,} synthetic {result['dim']}-d vectors, {result['shards']} shard(s); "
             f"log tail {result['log_tail_points']:,} vectors (kill -9 restarts)", "",
             "| # | after | checkpoint rows | log records | restore (server log) s | listening s | "
             "answers correctly s | RSS MiB | SIGTERM stop s |", "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(result["restarts"], 1):
        stop = "—" if r["sigterm_stop_s"] is None else f"{r['sigterm_stop_s']:.1f}"
        lines.append(f"| {i} | {r['after']} | {r['checkpoint_rows']:,} | {r['log_records']:,} | {r['restore_s']:.2f} "
                     f"| {r['listening_s']:.2f} | {r['answered_s']:.2f} | {r['rss_bytes'] / 2**20:,.0f} | {stop} |")
    lines.append("")
    for after in ("clean stop", "kill -9"):
        rs = [r for r in result["restarts"] if r["after"] == after]
        if rs:
            answered = statistics.median(r["answered_s"] for r in rs)
            restore = statistics.median(r["restore_s"] for r in rs)
            lines.append(f"after {after}: answers correctly in median {answered:.2f} s "
                         f"(server-logged restore median {restore:.2f} s)")
    load = result["load"]
    lines.append(f"load (--durability {load['durability']}): upsert {load['upsert_s']:.1f} s, BuildIndex "
                 f"{load['build_index_s']:.1f} s, SIGTERM stop {load['sigterm_stop_s']:.1f} s")
    return "\n".join(lines)


def _size(text: str) -> int:
    try:
        value = D.parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count such as 1m, 100k or 2500, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=_size, default=1_000_000, help="vectors stored before the checkpoint (default 1m)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--log-tail", type=_size, default=100_000,
                    help="vectors written after the checkpoint, replayed from the log after kill -9 (default 100k)")
    ap.add_argument("--restarts", type=int, default=3, help="timed restarts of each kind (default 3)")
    ap.add_argument("--load-durability", choices=("none", "interval", "fsync"), default="none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", default=None, help="where the data directory goes (default: the temp directory)")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the figures as JSON (- for stdout)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory and server.log")
    args = ap.parse_args(argv)
    if args.points < 3 or args.restarts < 1 or args.dim < 1 or args.shards < 1:
        ap.error("--points must be at least 3, --restarts, --dim and --shards at least 1")
    root = Path(tempfile.mkdtemp(prefix="restart-time-", dir=args.work_dir))
    server_log = root / "server.log"
    try:
        result = run(args, root / "data", server_log)
    except BaseException:
        log(f"failed; the servers' output is in {server_log}")
        args.keep = True
        raise
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    result["command"] = "python scripts/restart_time.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(table(result))
    if args.json == "-":
        print(json.dumps(result, indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
