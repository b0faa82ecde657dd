"""A tenant's admitted request rate against its configured max_qps, over a long window.

    python scripts/rate_limit.py [--qps 50] [--seconds 30] [--callers 8]

Starts `simsearch serve` (a subprocess, fresh data dir, free port), creates a tenant with the
given max_qps, and has `--callers` threads send ListCollections as fast as they can over raw gRPC
(no SDK retries) for `--seconds`. Prints the admitted and refused counts, the admitted rate after
the bucket's one-second burst, and its error against the configured rate (issue 17: within ±10 %).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import serve_process  # noqa: E402
from simsearch import AdminClient  # noqa: E402
from simsearch.protos.simsearch.v1 import collections_pb2  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qps", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--callers", type=int, default=8)
    args = ap.parse_args()
    key = "ss_" + secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as d, serve_process(Path(d) / "data", key=key) as run:
        address = run.banner.split("listening on ")[1].split()[0]
        with AdminClient(address, api_key=key) as admin:
            admin.create_tenant("metered", max_qps=args.qps)
            tenant_key = admin.create_key("metered", "read-only").secret
        counts = {"admitted": 0, "refused": 0, "other": 0}
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def caller() -> None:
            with grpc.insecure_channel(address) as ch:
                call = ch.unary_unary("/simsearch.v1.Collections/ListCollections")
                body = collections_pb2.ListCollectionsRequest().SerializeToString()
                while time.monotonic() < stop:
                    try:
                        call(body, metadata=(("x-api-key", tenant_key),))
                        outcome = "admitted"
                    except grpc.RpcError as e:
                        outcome = "refused" if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else "other"
                    with lock:
                        counts[outcome] += 1

        threads = [threading.Thread(target=caller) for _ in range(args.callers)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
    burst = max(1.0, args.qps)
    rate = (counts["admitted"] - burst) / took
    error = rate / args.qps - 1
    print(f"{args.callers} callers for {took:.1f} s at max_qps {args.qps:g}: {counts['admitted']:,} admitted, "
          f"{counts['refused']:,} refused (RESOURCE_EXHAUSTED), {counts['other']} other; admitted rate after the "
          f"{burst:g}-request burst {rate:.2f}/s ({error:+.1%} against the configured rate); offered "
          f"{sum(counts.values()) / took:,.0f}/s")
    return 0 if abs(error) <= 0.10 and counts["other"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
