"""The `simsearch` command: serve, demo, collection administration, and encoders (train,
eval, models list)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path


def _client(args):
    from simsearch.client import Client

    return Client(args.address, api_key=args.api_key)


def _cmd_serve(args) -> int:
    from simsearch.router import ServeConfig, serve

    config = ServeConfig(host=args.host, port=args.port, data_dir=Path(args.data_dir), redis_url=args.redis_url,
                         ray_address=args.ray_address, bootstrap_key=args.bootstrap_key,
                         cache_min_hits=args.cache_min_hits, cache_ttl_s=args.cache_ttl, metrics_port=args.metrics_port,
                         placement=args.placement)
    asyncio.run(serve(config))
    return 0


def _cmd_demo(args) -> int:
    from simsearch.bench.demo import run_demo

    run_demo(shards=args.shards, queries=args.queries, single=args.single,
             data_dir=Path(args.data_dir) if args.data_dir else None, redis_url=args.redis_url)
    return 0


def _cmd_collections(args) -> int:
    with _client(args) as client:
        if args.action == "list":
            for name in client.list_collections():
                print(name)
        elif args.action == "describe":
            print(json.dumps(asdict(client.describe_collection(args.name)), indent=2))
        elif args.action == "drop":
            client.drop_collection(args.name)
            print(f"dropped {args.name}")
    return 0


def _models_dir(args) -> Path | None:
    return Path(args.models_dir) if args.models_dir else None


def _cmd_train(args) -> int:
    from simsearch.encoder.config import TrainConfig

    cfg = TrainConfig.from_file(args.config)
    if args.ray_address or args.ray_workers:
        from simsearch.cluster import start_ray
        from simsearch.cluster.train import train_on_ray

        start_ray(args.ray_address)
        ref, metrics = train_on_ray(cfg, num_workers=args.ray_workers or 2, root=_models_dir(args))
    else:
        from simsearch.encoder.pipeline import train_and_register

        ref, metrics, _ = train_and_register(cfg, root=_models_dir(args))
    print(json.dumps({"model": ref, "metrics": metrics}, indent=2, default=float))
    return 0


def _cmd_eval(args) -> int:
    from simsearch.encoder.pipeline import evaluate_registered

    print(json.dumps(evaluate_registered(args.model, args.dataset, root=_models_dir(args)), indent=2, default=float))
    return 0


def _cmd_models(args) -> int:
    if args.address:
        with _client(args) as client:
            models = client.list_models()
    else:
        from simsearch.encoder.registry import list_models

        models = list_models(_models_dir(args))
    for m in models:
        shown = {k: round(v, 4) for k, v in m["metrics"].items() if isinstance(v, (int, float))}
        print(f"{m['ref']}\t{m['kind']}\tdim={m['embedding_dim']}\tinput={m['input_shape']}\t{m['created']}\t"
              f"{json.dumps(shown)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simsearch", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gRPC server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=50051)
    s.add_argument("--data-dir", default="simsearch-data")
    s.add_argument("--redis-url", default=None, help="e.g. redis://localhost:6379/0 (default: in-process cache)")
    s.add_argument("--ray-address", default=None, help="join this Ray cluster (default: start a local Ray)")
    s.add_argument("--bootstrap-key", default=None,
                   help="API key of the default tenant (else $SIMSEARCH_BOOTSTRAP_KEY, else generated and printed)")
    s.add_argument("--cache-min-hits", type=int, default=2, help="sightings before a query is cached")
    s.add_argument("--cache-ttl", type=float, default=300.0, help="cache entry lifetime, seconds")
    s.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port")
    s.add_argument("--placement", choices=("auto", "local", "ray"), default="auto",
                   help="where shards live: in this process (local) or in Ray actors (ray); "
                        "auto = local without --ray-address, ray with it")
    s.set_defaults(func=_cmd_serve)

    d = sub.add_parser("demo", help="Fashion-MNIST end to end on embedded defaults; prints recall and latency")
    d.add_argument("--shards", type=int, default=4)
    d.add_argument("--queries", type=int, default=10_000)
    d.add_argument("--single", type=int, default=1000, help="queries timed one per call")
    d.add_argument("--data-dir", default=None, help="default: a fresh temporary directory")
    d.add_argument("--redis-url", default=None)
    d.set_defaults(func=_cmd_demo)

    sub.add_parser("bench", add_help=False,  # main() hands its arguments to simsearch.bench.run
                   help="benchmarks: recall/QPS against raw ScaNN, brute force and peers (simsearch bench --help)")

    c = sub.add_parser("collections", help="list, describe or drop collections")
    c.add_argument("action", choices=["list", "describe", "drop"])
    c.add_argument("name", nargs="?")
    c.add_argument("--address", default=os.environ.get("SIMSEARCH_ADDRESS", "127.0.0.1:50051"))
    c.add_argument("--api-key", default=None, help="default: $SIMSEARCH_API_KEY")
    c.set_defaults(func=_cmd_collections)

    models_help = "model registry (default: $SIMSEARCH_MODELS, else ./simsearch-data/models, where serve looks)"
    t = sub.add_parser("train", help="train an encoder from a YAML/JSON config and register it as name@version")
    t.add_argument("config")
    t.add_argument("--models-dir", default=None, help=models_help)
    t.add_argument("--ray-address", default=None, help="train data-parallel on this Ray cluster (Ray Train)")
    t.add_argument("--ray-workers", type=int, default=0, help="Ray Train workers (a local Ray if no address)")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="score a registered encoder on a dataset's test protocol")
    e.add_argument("model", help="name@version, or name for the latest")
    e.add_argument("--dataset", required=True, choices=["fashion-mnist", "digits", "text-pairs"])
    e.add_argument("--models-dir", default=None, help=models_help)
    e.set_defaults(func=_cmd_eval)

    m = sub.add_parser("models", help="list registered encoders")
    m.add_argument("action", choices=["list"])
    m.add_argument("--models-dir", default=None, help=models_help)
    m.add_argument("--address", default=None, help="ask a running server instead of reading the registry")
    m.add_argument("--api-key", default=None, help="default: $SIMSEARCH_API_KEY")
    m.set_defaults(func=_cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from simsearch.bench.run import main as bench_main

        return bench_main(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "collections" and args.action != "list" and not args.name:
        parser().error(f"collections {args.action} needs a collection name")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from simsearch.contract.errors import SimsearchError

    try:
        return args.func(args)
    except SimsearchError as e:
        print(f"error ({e.code}): {e.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
