"""Does a byte-level reply shortcut earn its place? One run, two figures side by side.

Issue 14 asks the engine to answer domain objects and build protobuf at the edge, keeping a
byte-level shortcut only where it buys at least 5 % of end-to-end latency. This measures, in
one process and one run, on Fashion-MNIST:

- the end-to-end latency of a cache hit through the SDK (the shortest search path there is,
  so the one where reply building weighs the most), p50 over many hits;
- in place, the reply building a hit costs now (decode the cached hits, build the
  SearchResponse, serialize it inside SearchStreamResponse) against what the removed shortcut
  cost (append this call's fields to the stored wire bytes and write the stream's tag and length).

    python scripts/reply_path_cost.py [--k 10] [--hits 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

from simsearch.client import Client
from simsearch.datasets import fashion_mnist
from simsearch.protos import convert
from simsearch.protos.simsearch.v1 import points_pb2
from simsearch.router import EmbeddedServer, ServeConfig
from simsearch.router.replies import Hits, SearchReply, decode_hits, encode_hits

KEY = "reply-path-cost-key-0123456789"


def _varint_wrap(field: int, payload: bytes) -> bytes:
    """The removed shortcut's stream wrapping: tag + varint length + bytes."""
    n, head = len(payload), bytearray([(field << 3) | 2])
    while n > 0x7F:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + payload


def in_place_costs(ids: np.ndarray, scores: np.ndarray, reps: int = 20000) -> tuple[float, float]:
    """(µs per hit now, µs per hit with the old byte shortcut) for one query's k results."""
    hits = Hits.from_rows(ids, scores, np.ones(ids.shape, bool))
    stored_now = encode_hits(hits)
    old_results = points_pb2.SearchResponse(counts=hits.counts.tolist(), ids=hits.ids)
    old_results.scores.extend(hits.scores.tolist())
    stored_old = old_results.SerializeToString()
    timings = {"cache": 0.0001, "total": 0.0002}

    def now() -> bytes:
        reply = SearchReply(decode_hits(stored_now), 7, cached=True, timings_s=dict(timings))
        return points_pb2.SearchStreamResponse(result=convert.search_response(reply)).SerializeToString()

    def old() -> bytes:
        own = points_pb2.SearchResponse(generation=7, cached=True)
        for stage, s in timings.items():
            own.timings.add(stage=stage, ms=s * 1000)
        return _varint_wrap(1, stored_old + own.SerializeToString())

    assert points_pb2.SearchStreamResponse.FromString(now()) == points_pb2.SearchStreamResponse.FromString(old())
    t_now = min(timeit.repeat(now, number=reps, repeat=5)) / reps * 1e6
    t_old = min(timeit.repeat(old, number=reps, repeat=5)) / reps * 1e6
    return t_now, t_old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--hits", type=int, default=3000)
    args = ap.parse_args()
    fm = fashion_mnist()
    db, queries = fm.train[:20000], fm.test[:200]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServeConfig(port=0, data_dir=Path(tmp), bootstrap_key=KEY, cache_min_hits=1)
        with EmbeddedServer(cfg) as server, Client(server.address, api_key=KEY) as c:
            c.create_collection("fm", 784, shards=1)
            c.upsert("fm", np.arange(len(db)), db, progress=False)
            c.build_index("fm")
            for q in queries:  # admit every query
                c.search("fm", q, args.k)
            lat = []
            for i in range(args.hits):
                t0 = time.perf_counter()
                res = c.search("fm", queries[i % len(queries)], args.k)
                lat.append(time.perf_counter() - t0)
                assert res.cached
            sample = c.search("fm", queries[0], args.k)
    p50_us = float(np.median(lat)) * 1e6
    t_now, t_old = in_place_costs(sample.ids, sample.scores)
    delta = t_now - t_old
    print(f"cache hit end to end (SDK stream, k={args.k}): p50 {p50_us:.0f} µs over {args.hits} hits")
    print(f"reply building in place: domain objects + protobuf at the edge {t_now:.1f} µs, "
          f"old byte shortcut {t_old:.1f} µs; difference {delta:+.1f} µs = {100 * delta / p50_us:+.2f} % "
          f"of the end-to-end hit (threshold to keep a shortcut: 5 %)")


if __name__ == "__main__":
    main()
