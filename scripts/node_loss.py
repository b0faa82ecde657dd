"""Losing a Ray node, on one machine (issue 18): tests/node_loss.py's scenario as a script.

    python scripts/node_loss.py

A head and a second Ray node started by `ray start` (token auth), a server joined to them with a
4-shard collection over both nodes' shard hosts, the second node SIGKILLed under search load. Prints
the searches, failures and the longest wait; exits 1 on any failed check.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import node_loss  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        node_loss.losing_a_node_re_creates_its_shards_on_the_survivor_with_no_failed_search(Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
