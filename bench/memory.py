"""Memory per stored point: the simsearch server against raw in-process ScaNN with the same
parameters, on the same data in the same run.

Raw ScaNN is measured in a clean child process (`python -m simsearch.bench.memory`), not in
the benchmark's own process, whose heap already holds every earlier system's leftovers. The
child imports numpy, ScaNN and the benchmark's `RawScann` first and reads its RSS; then loads
the database from a .npy file, builds `RawScann` (the shards' leaves, AH, and ScaNN's exact
re-order, which keeps a float32 copy of the database: simsearch re-ranks on full-precision
vectors too), runs 100 batched and 10 single searches, frees the input array, collects
garbage and reads its RSS again. Raw ScaNN's cost is the difference: what the index holds,
whether it copied the input or kept a reference to it. Its peak RSS over the build is
reported beside it.

simsearch's cost is the server process tree's RSS after ingest, BuildIndex, idle and 50
warm-up searches, minus its RSS before the collection was created (`SimsearchServer`).
"""

from __future__ import annotations

import gc
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RAW_METHOD = ("clean child process: RSS after build + 110 searches, the input array freed, minus RSS before "
              "loading it (libraries imported first)")
SIMSEARCH_METHOD = ("server process tree RSS after ingest + BuildIndex + idle + 50 searches, minus its RSS "
                    "before the collection was created")


def raw_scann_memory(train: np.ndarray, queries: np.ndarray, metric: str, shards: int = 1,
                     timeout_s: float = 3600.0) -> dict[str, Any]:
    """Raw ScaNN's resident bytes for this database, measured in a fresh Python process."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        np.save(tmp / "train.npy", np.ascontiguousarray(train, np.float32))
        np.save(tmp / "queries.npy", np.ascontiguousarray(queries[:100], np.float32))
        out = subprocess.run([sys.executable, "-m", "simsearch.bench.memory", str(tmp), metric, str(shards)],
                             capture_output=True, text=True, timeout=timeout_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(f"the raw ScaNN memory child exited with {out.returncode}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def comparison(n: int, dim: int, simsearch_bytes: int, raw: dict[str, Any]) -> dict[str, Any]:
    """Bytes per stored point for both, and simsearch / raw ScaNN."""
    sim_pp, raw_pp = simsearch_bytes / n, raw["bytes"] / n
    return {"points": n, "dim": dim, "float32_bytes_per_point": dim * 4,
            "raw_scann": {**raw, "bytes_per_point": raw_pp, "method": RAW_METHOD},
            "simsearch": {"bytes": int(simsearch_bytes), "bytes_per_point": sim_pp, "method": SIMSEARCH_METHOD},
            "simsearch_over_raw": sim_pp / raw_pp if raw_pp > 0 else float("nan")}


def _rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _child(folder: Path, metric: str, shards: int) -> dict[str, Any]:
    import scann  # noqa: F401  (imported before the first reading, like everything the build needs)

    from simsearch.bench.systems import RawScann
    from simsearch.datasets import Dataset

    before_load = _rss()
    train = np.load(folder / "train.npy")
    queries = np.load(folder / "queries.npy")
    loaded = _rss()
    system = RawScann(shards=shards)
    system.build(Dataset("memory", train, queries, metric))
    system.set_knob(system.knobs()[len(system.knobs()) // 2])
    system.search_batch(queries, 10)
    for q in queries[:10]:
        system.search_one(q, 10)
    built = _rss()
    del train  # whatever the index still needs it holds itself (its re-order copy of the floats)
    dropped = _rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"bytes": dropped - before_load, "rss_before_load": before_load, "rss_loaded": loaded,
            "rss_built": built, "rss_input_dropped": dropped, "input_bytes": loaded - before_load,
            "peak_over_before_load": peak - before_load, "params": system.params}


if __name__ == "__main__":
    print(json.dumps(_child(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))))
