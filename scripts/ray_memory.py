"""Where the memory of `serve --placement ray` goes: ingest a 300k x 50-d set into 4 shards and print each
process's RSS, PSS and USS (psutil) before and after, grouped by process name, beside the same ingest into
a `--placement local` server (issue 18's memory probe).

    python scripts/ray_memory.py [--points 300000] [--placement ray local]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import serve_process  # noqa: E402
from simsearch import Client  # noqa: E402
from simsearch.bench.simsearch_system import wait_idle  # noqa: E402
from simsearch.datasets import synthetic_gmm  # noqa: E402


def snap(pid: int) -> list[tuple[str, int, int, int]]:
    """(name, rss, pss, uss) in MiB for the process and its descendants."""
    out = []
    p = psutil.Process(pid)
    for q in [p, *p.children(recursive=True)]:
        try:
            m = q.memory_full_info()
            out.append((q.name()[:28], m.rss >> 20, m.pss >> 20, m.uss >> 20))
        except psutil.NoSuchProcess:
            pass
    return out


def probe(placement: str, train: np.ndarray) -> float:
    key = "ss_" + secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as d, serve_process(Path(d) / "data", "--placement", placement, key=key) as run:
        with Client(run.address, api_key=key) as c:
            c.create_collection("b", train.shape[1], shards=4)
            c.count("b")
            wait_idle(run.proc.pid)
            a = snap(run.proc.pid)
            c.upsert("b", np.arange(len(train)), train, progress=False)
            c.build_index("b")
            wait_idle(run.proc.pid)
            time.sleep(5)
            b = snap(run.proc.pid)
        print(f"--placement {placement}")
        for name in sorted({x[0] for x in a + b}):
            ra = [x for x in a if x[0] == name]
            rb = [x for x in b if x[0] == name]
            print(f"  {name:30s} before rss/pss {sum(x[1] for x in ra)}/{sum(x[2] for x in ra)}  "
                  f"after rss/pss/uss {sum(x[1] for x in rb)}/{sum(x[2] for x in rb)}/{sum(x[3] for x in rb)}")
        growth = sum(x[2] for x in b) - sum(x[2] for x in a)
        print(f"  tree rss growth MiB {sum(x[1] for x in b) - sum(x[1] for x in a)}, pss growth {growth} "
              f"({(growth << 20) / len(train):.0f} bytes per point)", flush=True)
        return growth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300_000)
    parser.add_argument("--placement", nargs="+", default=["ray", "local"])
    args = parser.parse_args()
    ds = synthetic_gmm(args.points, 50, queries=100)
    growth = {p: probe(p, ds.train) for p in args.placement}
    if len(growth) == 2:
        a, b = growth.values()
        print(f"pss growth {list(growth)[0]} / {list(growth)[1]}: {a / b:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
