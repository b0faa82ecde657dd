"""Durable writes (issue "Durable writes", items 8-9): a real `simsearch serve` killed with a
real SIGKILL at random moments while it acknowledges writes, restarted on the same data dir,
must hold every acknowledged upsert with its latest acknowledged vector and no acknowledged
delete. The harness (tests/crash_harness.py, shared with scripts/crash_loop.py) says why and how.

Sized for ~45 s on 2 cores: a restart takes ~1-1.5 s here, a "writes" cycle ~3 s all told and an
"early" one ~1.5 s, so 16 kills (at least 14 are required) fit within a minute. The long version
is scripts/crash_loop.py.
"""

from __future__ import annotations

import time

import pytest

import crash_harness as ch

pytestmark = pytest.mark.integration  # `simsearch serve` subprocesses and SIGKILL

KILLS = 16
SEED = 20240611


def test_acknowledged_writes_survive_sigkill(tmp_path):
    config = ch.HarnessConfig(durability="fsync" if ch.serve_supports_durability() else None)
    print(f"\ncrash test: {KILLS} kills, seed {SEED}, durability {config.durability or '(no flag: server default)'}")
    t0 = time.monotonic()
    totals = ch.run(tmp_path, KILLS, config, seed=SEED)
    took = time.monotonic() - t0
    print(totals.table())
    print(f"wall time {took:.1f} s")

    log = ch.log_tail(tmp_path / "server.log", 30)
    assert totals.kills >= 14, totals.table()
    assert totals.acked_upserts > 0 and totals.acked_deletes > 0, totals.table()
    assert not totals.unexpected, "\n".join(totals.unexpected) + "\n" + log
    assert totals.lost == 0 and totals.resurrected == 0, (
        f"after SIGKILL: {totals.lost} acknowledged upserts lost, {totals.resurrected} acknowledged deletes "
        f"resurrected\n{totals.table()}")
    assert totals.count_mismatches == 0 and totals.search_misses == 0, totals.table()
    assert totals.clean_stop_status == [0, 0], f"SIGTERM exit statuses {totals.clean_stop_status}\n{log}"
