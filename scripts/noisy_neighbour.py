"""Fair share between tenants: a quiet tenant's search p99 beside a noisy one at its limits.

    python scripts/noisy_neighbour.py [--windows 5] [--window-s 6] [--qps 20] [--concurrent 2]

Starts `simsearch serve` (a subprocess, fresh data dir, free port). Tenant "quiet" searches one
query at a time; tenant "noisy" has 8 callers sending 64-query searches through the SDK as fast as
its limits (max_qps, max_concurrent_searches) let them. The quiet tenant's latency is measured in
alternating windows, alone and beside the noisy one (tests/neighbours.py); the figure is the median
p99 beside over the median p99 alone (issue 17: at most 1.2). The same run is then repeated with a
noisy tenant that has no limits, to show what the limits prevent.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import neighbours  # noqa: E402
from conftest import serve_process  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--window-s", type=float, default=6.0)
    ap.add_argument("--qps", type=float, default=20.0)
    ap.add_argument("--concurrent", type=int, default=2)
    args = ap.parse_args()
    key = "ss_" + secrets.token_hex(16)
    out = {}
    with tempfile.TemporaryDirectory() as d, serve_process(Path(d) / "data", key=key) as run, \
            serve_process(Path(d) / "control", key=key) as control_run:
        for label, qps, conc, suffix in (("limited", args.qps, args.concurrent, ""), ("unlimited", None, None, "-x")):
            quiet, noisy = neighbours.prepare(run.address, key, noisy_qps=qps, noisy_concurrent=conc, suffix=suffix)
            control_quiet, _ = neighbours.prepare(control_run.address, key, noisy_qps=qps, noisy_concurrent=conc,
                                                  suffix=suffix)
            r = neighbours.run(run.address, quiet, noisy, windows=args.windows, window_s=args.window_s,
                               control=(control_run.address, control_quiet))
            out[label] = {"p99_ratio": round(r.p99_ratio, 3), "machine_ratio": round(r.machine_ratio, 3),
                          "server_ratio": round(r.server_ratio, 3),
                          "alone_p99_ms": [round(x, 2) for x in r.alone_p99_ms],
                          "beside_p99_ms": [round(x, 2) for x in r.beside_p99_ms],
                          "control_p99_ms": [round(x, 2) for x in r.control_p99_ms],
                          "alone_p50_ms": [round(x, 2) for x in r.alone_p50_ms],
                          "beside_p50_ms": [round(x, 2) for x in r.beside_p50_ms],
                          "noisy_searches_admitted": r.noisy_admitted, "quiet_errors": r.quiet_errors}
            print(f"{label}: quiet p99 beside / alone = {r.p99_ratio:.3f}, on a separate server / alone = "
                  f"{r.machine_ratio:.3f}, beside / separate = {r.server_ratio:.3f}; noisy searches admitted "
                  f"{r.noisy_admitted}", flush=True)
    print(json.dumps(out, indent=2))
    return 0 if out["limited"]["server_ratio"] <= 1.2 and out["limited"]["quiet_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
