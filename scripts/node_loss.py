"""Losing a Ray node with replicated shards, on one machine (issue 18): tests/test_node_loss.py's
scenario, repeated.

    python scripts/node_loss.py --runs 5

Each run: a head and a second Ray node started by `ray start` (token auth), a server joined to them with
2 shards x 2 replicas over both nodes, the second node SIGKILLed under search and upsert load. Prints
each run's searches, failures, longest search and the seconds until every replica served again; exits
1 if any run failed a check
(each run's failure is printed and the next run goes on).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_node_loss  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    failed = 0
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            try:
                figures = test_node_loss.run_node_loss(Path(d))
            except AssertionError as e:
                failed += 1
                print(json.dumps({"run": i + 1, "check failed": str(e)[:3000]}), flush=True)
                continue
        print(json.dumps({"run": i + 1, **figures}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
