"""What durability costs at ingest: the whole database upserted through the SDK into a server
started with `--durability fsync` and into one started with `--durability none`, in the same
run, alternating.

Two servers run side by side on fresh data directories, one per mode, with the benchmark's
placement and shards. Each first takes an untimed warm-up upsert. Then the rounds run in an
ABBA order (fsync, none, none, fsync, ...), so a VM whose speed drifts over minutes puts the
drift into both modes alike. Each timed round creates a fresh collection, upserts the whole
database with the SDK's default batching, and stops the clock at the last acknowledgement;
then it waits for the server to go idle, drops the collection (its files go, so "none"'s
unwritten pages are not flushed into the next round) and syncs the disk.

The collections are created with min_index_size at its maximum, so no background index build
runs during or after a timed ingest: the two modes then differ only in the log's fsync. With
builds on (the defaults), the build work sharing this 2-core VM made single Fashion-MNIST
ingests range over 13k-47k vec/s in one run (against 29k-59k without), which buried the
difference being measured.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simsearch.bench.serve_process import ServeProcess
from simsearch.bench.simsearch_system import wait_idle
from simsearch.client import Client
from simsearch.client._requests import upsert_batches
from simsearch.contract.limits import MAX_INDEX_SIZE
from simsearch.datasets import Dataset

MODES = ("fsync", "none")
WARMUP_ROWS = 5000
IDLE_LIMIT_S = 600.0
NO_BUILDS = {"min_index_size": MAX_INDEX_SIZE}  # no background build below this many rows


def abba(rounds: int) -> list[str]:
    """fsync, none, none, fsync, ... : `rounds` ingests of each mode, the order flipped every pair."""
    return [m for r in range(rounds) for m in (MODES if r % 2 == 0 else MODES[::-1])]


def ingest_by_durability(ds: Dataset, *, shards: int = 1, placement: str = "local", rounds: int = 4,
                         index: dict[str, int] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`rounds` timed ingests of ds.train per mode; vectors/s per ingest, the medians and fsync / none.
    index: the collections' index parameters (default NO_BUILDS)."""
    index = NO_BUILDS if index is None else index
    ids = np.arange(len(ds.train))
    batch_rows = upsert_batches([str(i) for i in ids[:1]], ds.train[:1], None)[0].stop  # what the SDK plans
    root = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    key = "bench-" + secrets.token_hex(8)
    servers = {m: ServeProcess(root / m, key, ["--placement", placement, "--durability", m]) for m in MODES}
    clients: dict[str, Client] = {}
    runs: list[dict[str, Any]] = []
    try:
        for mode, server in servers.items():
            server.start()
            clients[mode] = Client(server.address, api_key=key)
            _ingest(clients[mode], server, "warm-up", ds, ids[:WARMUP_ROWS], shards, index)
        for i, mode in enumerate(abba(rounds)):
            seconds = _ingest(clients[mode], servers[mode], f"ingest-{i}", ds, ids, shards, index)
            runs.append({"durability": mode, "order": i, "seconds": seconds, "vectors_per_s": len(ids) / seconds})
            log(f"  ingest with --durability {mode}: {len(ids):,} vectors in {seconds:.2f} s "
                f"({runs[-1]['vectors_per_s']:,.0f} vec/s)")
    finally:
        for mode, server in servers.items():
            if mode in clients:
                clients[mode].close()
            if hasattr(server, "proc"):
                server.kill()  # its data is thrown away, so no checkpoint is needed
        shutil.rmtree(root, ignore_errors=True)
    median = {m: statistics.median(r["vectors_per_s"] for r in runs if r["durability"] == m) for m in MODES}
    result = {"vectors": len(ids), "dim": int(ds.train.shape[1]), "shards": shards, "batch_rows": batch_rows,
              "collection_index_params": index,
              "rounds": rounds, "order": ", ".join(abba(rounds)), "runs": runs,
              "median_vectors_per_s": median, "fsync_over_none": median["fsync"] / median["none"]}
    log(f"  ingest fsync / none: {result['fsync_over_none']:.2f} (medians {median['fsync']:,.0f} and "
        f"{median['none']:,.0f} vec/s, {rounds} ingests each, SDK batches of {batch_rows:,} rows)")
    return result


def _ingest(client: Client, server: ServeProcess, name: str, ds: Dataset, ids: np.ndarray, shards: int,
            index: dict[str, int]) -> float:
    """One timed ingest into a fresh collection, then idle, drop and sync; returns the ingest's seconds."""
    client.create_collection(name, ds.train.shape[1], metric=ds.metric, shards=shards, **index)
    t0 = time.perf_counter()
    client.upsert(name, ids, ds.train[:len(ids)], progress=False)
    seconds = time.perf_counter() - t0
    wait_idle(server.pid, IDLE_LIMIT_S)
    client.drop_collection(name)
    wait_idle(server.pid, IDLE_LIMIT_S)
    os.sync()
    return seconds
