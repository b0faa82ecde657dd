"""`simsearch bench`: every system over the same queries in one run, then JSON, PNG plots and a
markdown table (bench-results/ by default). `simsearch bench --scale` runs the shard/size sweep.

    simsearch bench --dataset fashion-mnist                    # the issue's comparison
    simsearch bench --dataset wordnet-minilm --systems raw-scann,simsearch,hnswlib
    simsearch bench --scale --sizes 100k,300k,1m --shards 1,2,4
    simsearch bench --dataset tiny                             # seconds; what CI runs
    simsearch bench --dataset synthetic-50d --systems raw-scann,simsearch   # memory per point at 50-d
    simsearch bench --filtered                                 # filtered search at 50/10/1/0.1 % (issue 16)
    simsearch bench --filtered --dataset tiny --systems simsearch,raw-scann --queries 100   # seconds

With simsearch among the systems, a run also reports ingest with --durability fsync against
none (--ingest-rounds each, alternating) and the server's memory per stored point against raw
ScaNN's, measured in a clean process (--no-memory skips it).

--filtered runs simsearch, raw ScaNN + post-filtering, Chroma's `where` and Milvus Lite's `filter`
over the same payloads (the label plus seeded category, price and tags) and filters chosen at
selectivities 50 %, 10 %, 1 %, 0.1 % and a two-condition one; see bench/filtered.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simsearch import datasets as D
from simsearch.bench.wordnet_minilm import wordnet_minilm
from simsearch.bench.ingest import ingest_by_durability
from simsearch.bench.measure import first_at, measure
from simsearch.bench.memory import comparison, raw_scann_memory
from simsearch.bench.report import plot, table
from simsearch.bench.services import ChromaServer, MilvusLite
from simsearch.bench.simsearch_system import SimsearchServer
from simsearch.bench.systems import FaissHNSW, FaissIVFPQ, Hnswlib, NumpyBruteForce, RawScann, System

DATASETS: dict[str, Callable[[int], D.Dataset]] = {
    "fashion-mnist": lambda q: D.fashion_mnist().head(60_000, q),
    "wordnet-minilm": lambda q: wordnet_minilm().head(117_659, q),
    "synthetic-100k": lambda q: D.synthetic_gmm(100_000, queries=q),
    "synthetic-300k": lambda q: D.synthetic_gmm(300_000, queries=q),
    "synthetic-1m": lambda q: D.synthetic_gmm(1_000_000, queries=q),
    # a 50-d set for the memory target (no real 50-d set is installed here); synthetic, and named so
    "synthetic-50d": lambda q: D.synthetic_gmm(300_000, 50, queries=q),
    "tiny": lambda q: D.synthetic_gmm(4_000, 32, queries=min(q, 300)),
}
SYSTEMS = ("raw-scann", "simsearch", "numpy", "hnswlib", "faiss-hnsw", "faiss-ivfpq", "milvus", "chroma")


def make_system(name: str, shards: int, placement: str, batch: int) -> System:
    return {
        "raw-scann": lambda: RawScann(shards=shards),
        "simsearch": lambda: SimsearchServer(shards=shards, placement=placement, batch=batch),
        "numpy": NumpyBruteForce,
        "hnswlib": Hnswlib,
        "faiss-hnsw": FaissHNSW,
        "faiss-ivfpq": FaissIVFPQ,
        "milvus": MilvusLite,
        "chroma": ChromaServer,
    }[name]()


def machine() -> dict[str, Any]:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = ""
    keep = ("Architecture", "Model name", "CPU(s)", "Thread(s) per core", "L3 cache", "Flags")
    info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines())
            if k.strip() in keep}
    if "Flags" in info:  # only the SIMD flags matter here
        info["Flags"] = " ".join(f for f in info["Flags"].split() if f.startswith(("avx", "sse4", "fma")))
    import psutil

    info["Memory GiB"] = f"{psutil.virtual_memory().total / 2**30:.0f}"
    info["python"] = platform.python_version()
    return info


def dataset_info(ds: D.Dataset) -> dict[str, Any]:
    return {"name": ds.name, "train": len(ds.train), "queries": len(ds.test), "dim": ds.train.shape[1],
            "metric": ds.metric, "synthetic": ds.synthetic}


def compare(ds: D.Dataset, systems: list[str], *, k: int, single: int, shards: int, placement: str, batch: int,
            clients: tuple[int, ...], ingest_rounds: int = 4, memory: bool = True,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    truth = D.ground_truth(ds)[:, :k]
    result: dict[str, Any] = {"dataset": dataset_info(ds), "k": k, "machine": machine(), "systems": [],
                              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in systems:
        system = make_system(name, shards, placement, batch)
        try:
            result["systems"].append(measure(system, ds, truth, k=k, single=single, log=log))
            if isinstance(system, SimsearchServer):
                result["simsearch_extra"] = simsearch_extra(system, ds, truth, result["systems"][-1], k, clients, log)
        finally:
            system.close()
    served = next((s for s in result["systems"] if s["kind"] == "simsearch"), None)
    if served is not None and memory:
        log("memory per stored point: raw ScaNN in a clean process")
        raw = raw_scann_memory(ds.train, ds.test, ds.metric, shards)
        result["memory"] = mem = comparison(len(ds.train), ds.train.shape[1], served["memory_bytes"], raw)
        log(f"  raw ScaNN {mem['raw_scann']['bytes_per_point']:,.0f} B/point, simsearch "
            f"{mem['simsearch']['bytes_per_point']:,.0f} B/point: {mem['simsearch_over_raw']:.2f}x")
    if served is not None and ingest_rounds:
        log(f"ingest through the SDK, --durability fsync against none ({ingest_rounds} each, alternating)")
        result["durability_ingest"] = ingest_by_durability(ds, shards=shards, placement=placement,
                                                           rounds=ingest_rounds, log=log)
    return result


def simsearch_extra(system: SimsearchServer, ds: D.Dataset, truth: np.ndarray, measured: dict[str, Any], k: int,
                    clients: tuple[int, ...], log: Callable[[str], None]) -> dict[str, Any]:
    """Concurrent clients and the cache, at the cheapest setting with recall@10 >= 0.95 (else the most thorough)."""
    point = first_at(measured["points"], 0.95) or measured["points"][-1]
    system.set_knob(point["knob"])
    queries = ds.test[: min(len(ds.test), 3000)]
    conc = []
    for c in clients:
        conc.append(system.concurrent(queries, k, c))
        log(f"  {c} concurrent clients: {conc[-1]['qps']:,.0f} QPS, p50 {conc[-1]['p50_ms']:.2f} ms, "
            f"p99 {conc[-1]['p99_ms']:.2f} ms")
    transports = system.transports(queries[:1000], k)
    log("  one query per call: " + ", ".join(f"{n} p50 {t['p50_ms']:.2f} ms ({t['qps']:,.0f} QPS)"
                                             for n, t in transports.items()))
    cache = system.cache(ds.test, k, hot=min(200, len(ds.test)))
    log(f"  cache hit p50 {cache['hit']['p50_ms']:.3f} ms (in server {cache['hit_inside_server']['p50_ms']:.3f}), "
        f"miss p50 {cache['miss']['p50_ms']:.3f} ms")
    return {"knob": point["knob"], "recall": point["recall"], "concurrency": conc, "transports": transports,
            "cache": cache}


def write(result: dict[str, Any], out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    md = table(result)
    (out / f"{stem}.md").write_text(md + "\n")
    pngs = plot(result, out)
    print(md)
    print(f"wrote {out / (stem + '.json')}, {out / (stem + '.md')}, " + ", ".join(str(p) for p in pngs))


def _counts(text: str) -> list[int]:
    """"1,2,4" -> [1, 2, 4]: positive integers, comma-separated."""
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}")
    return values


def _sizes(text: str) -> list[int]:
    """"100k,1m" -> [100_000, 1_000_000]."""
    try:
        values = [D.parse_size(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated sizes such as 100k,300k,1m, got {text!r}") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="simsearch bench", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="fashion-mnist")
    ap.add_argument("--systems", default=None,
                    help=f"comma-separated, from {', '.join(SYSTEMS)} (default: all; with --filtered: "
                         "simsearch,raw-scann,chroma,milvus)")
    ap.add_argument("--queries", type=int, default=None,
                    help="queries per setting (batched; default 10,000, with --filtered 2,000)")
    ap.add_argument("--single", type=int, default=None,
                    help="queries timed one per call, per setting (or 10 s; default 1,000, with --filtered 200)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--shards", type=_counts, default=[1], help="simsearch shards (a list for --scale, e.g. 1,2,4)")
    ap.add_argument("--placement", choices=("local", "ray"), default="local")
    ap.add_argument("--batch", type=int, default=1000, help="queries per batched simsearch request")
    ap.add_argument("--clients", type=_counts, default=[1, 4, 16], help="concurrent client counts for simsearch")
    ap.add_argument("--ingest-rounds", type=int, default=4, metavar="N",
                    help="with simsearch: timed SDK ingests per durability mode (fsync, none), alternating; 0 skips")
    ap.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                    help="with simsearch: memory per point against raw ScaNN in a clean process (default on)")
    ap.add_argument("--scale", action="store_true", help="run the synthetic size x shards sweep instead")
    ap.add_argument("--filtered", action="store_true",
                    help="filtered search at several selectivities instead (payloads, exact filtered truth)")
    ap.add_argument("--rounds", type=int, default=2, metavar="N",
                    help="with --filtered: interleaved batched passes per system (the best counts)")
    ap.add_argument("--seed", type=int, default=0, help="with --filtered: the synthetic payloads' seed")
    ap.add_argument("--sizes", type=_sizes, default=[100_000, 300_000, 1_000_000], help="with --scale (e.g. 100k,1m)")
    ap.add_argument("--out", default="bench-results")
    args = ap.parse_args(argv)
    if args.ingest_rounds < 0:
        ap.error(f"--ingest-rounds must be 0 or more, got {args.ingest_rounds}")
    if args.rounds < 1:
        ap.error(f"--rounds must be 1 or more, got {args.rounds}")
    queries = args.queries if args.queries is not None else 2000 if args.filtered else 10_000
    single = args.single if args.single is not None else 200 if args.filtered else 1000
    out = Path(args.out)
    shards = args.shards
    if args.scale:
        from simsearch.bench.scale import run_scale, write_scale

        result = run_scale(args.sizes, shards, queries=queries,
                           single=single, k=args.k, placement=args.placement)
        result["machine"] = machine()
        write_scale(result, out)
        return 0
    if args.filtered:
        from simsearch.bench import filtered as F

        allowed: tuple[str, ...] = F.FILTERED_SYSTEMS
    else:
        allowed = SYSTEMS
    systems = [s.strip() for s in (args.systems or ",".join(allowed)).split(",") if s.strip()]
    unknown = sorted(set(systems) - set(allowed))
    if unknown:
        ap.error(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
    ds = DATASETS[args.dataset](queries)
    if args.filtered:
        result = F.run_filtered(ds, F.labels_for(args.dataset, ds), systems, k=args.k, single=single,
                                rounds=args.rounds, shards=shards[0], placement=args.placement, batch=args.batch,
                                seed=args.seed)
        result["command"] = "simsearch bench " + " ".join(sys.argv[1:] if argv is None else argv)
        F.write(result, out)
        return 0
    result = compare(ds, systems, k=args.k, single=single, shards=shards[0], placement=args.placement,
                     batch=args.batch, clients=tuple(args.clients), ingest_rounds=args.ingest_rounds,
                     memory=args.memory)
    result["command"] = "simsearch bench " + " ".join(sys.argv[1:] if argv is None else argv)
    write(result, out, f"bench-{ds.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
