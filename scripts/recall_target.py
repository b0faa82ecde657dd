"""Does the self-tuning recall target hold, and what does it cost? Old defaults and calibrated ones, same run.

For each data set a default collection (one shard, every index parameter left at auto) is built twice in
one server: once with calibration switched off (the old defaults: 7 % of the leaves, oversample 4) and
once with it on (target recall@10 0.95). For both: recall@10 of the held-out queries against exact search
(float64 brute force), QPS batched (the queries in batches of 100) and from one client (one query per
call, back to back), all through the SDK over gRPC with the cache off, both collections loaded side by side
and timed in alternation (best of 3 rounds each); and the calibration's own time per build.

- gaussian: i.i.d. standard normal 64-d, 100k points + 1,000 queries from the same distribution (synthetic);
- fashion-mnist: the 60,000 training images (784-d, l2), the first 1,000 test images as queries;
- text: MiniLM (all-MiniLM-L6-v2) embeddings of WordNet definitions (~20k, cosine), queries the GCIDE
  definitions of 1,000 of the same words (another dictionary's wording of the same meanings).

    python scripts/recall_target.py [--gaussian-n 100000] [--queries 1000] [--single 300] [--only gaussian,...]

Writes docs/benchmarks/recall-target.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from simsearch.client import Client
from simsearch.datasets.ground_truth import exact_neighbors, recall_at
from simsearch.router import EmbeddedServer, ServeConfig
from simsearch.shard import calibration

KEY = "recall-target-key-0123456789"
OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "recall-target.json"
K = 10
BATCH = 100


class _CalibrationLog(logging.Handler):
    """Collects each calibration's seconds from the index's log line (the build runs in the server's process)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("index calibrated"):
            self.seconds.append(float(record.args[0]))


def gaussian(n: int, queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 64), np.float32), rng.standard_normal((queries, 64), np.float32), "l2"


def fashion(queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    from simsearch.datasets import fashion_mnist

    fm = fashion_mnist()
    return fm.train.astype(np.float32), fm.test[:queries].astype(np.float32), "l2"


def text(queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    from simsearch.datasets.text_pairs import definition_pairs
    from simsearch.encoder.minilm import embed_texts

    pairs = definition_pairs()
    docs = embed_texts(pairs.documents)  # cached on disk after the first run (~20k texts)
    picked = np.random.default_rng(0).choice(len(pairs.words), queries, replace=False)
    return docs, embed_texts(pairs.queries)[picked], "cosine"


def load(c: Client, name: str, db: np.ndarray, metric: str, calibrate: bool, log: _CalibrationLog) -> dict:
    """A default collection over db, built with calibration on or off; what its shard settled on."""
    os.environ[calibration.SWITCH] = "on" if calibrate else "off"
    log.seconds.clear()
    c.create_collection(name, db.shape[1], metric=metric)  # every index parameter at auto
    t0 = time.perf_counter()
    c.upsert(name, np.arange(len(db)), db, progress=False)
    c.build_index(name)
    load_s = time.perf_counter() - t0
    shard = c.describe_collection(name).shard_info[0]
    return {"num_leaves": shard["num_leaves"], "leaves_to_search": shard["leaves_to_search"],
            "oversample": shard["oversample"], "calibrated_recall": round(shard["calibrated_recall"], 4),
            "calibration_s_per_build": [round(s, 2) for s in log.seconds], "builds": shard["builds"],
            "upsert_and_build_s": round(load_s, 1)}


def recall(c: Client, name: str, q: np.ndarray, truth: np.ndarray) -> float:
    found = np.concatenate([c.search(name, q[i:i + BATCH], K, no_cache=True).ids for i in range(0, len(q), BATCH)])
    return round(recall_at(np.where(found == "", -1, found).astype(np.int64), truth, K), 4)


def qps(c: Client, name: str, q: np.ndarray, single: int) -> tuple[float, float]:
    """(batched, one client): every query in batches of BATCH; `single` queries one per call, back to back."""
    t0 = time.perf_counter()
    for i in range(0, len(q), BATCH):
        c.search(name, q[i:i + BATCH], K, no_cache=True)
    batched = len(q) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for row in q[:single]:
        c.search(name, row, K, no_cache=True)
    return batched, single / (time.perf_counter() - t0)


def compare(c: Client, name: str, db: np.ndarray, q: np.ndarray, metric: str, single: int, rounds: int,
            log: _CalibrationLog) -> dict:
    """Both sides loaded side by side, then timed in alternation (the best of `rounds` each), so that other
    work on the machine weighs on both alike."""
    truth = exact_neighbors(db, q, K, metric)
    row: dict = {"points": len(db), "dim": db.shape[1], "metric": metric, "queries": len(q)}
    names = {}
    for side, on in SIDES:
        names[side] = f"{name}-{side}".replace("_", "-")
        row[side] = load(c, names[side], db, metric, on, log)
        row[side]["recall_at_10"] = recall(c, names[side], q, truth)  # also the warm-up for the timing
    best = {side: (0.0, 0.0) for side, _ in SIDES}
    for _ in range(rounds):
        for side, _ in SIDES:
            b, one = qps(c, names[side], q, single)
            best[side] = (max(best[side][0], b), max(best[side][1], one))
    for side, _ in SIDES:
        row[side]["qps_batched"], row[side]["qps_1_client"] = (round(x, 1) for x in best[side])
        c.drop_collection(names[side])
    return row


SIDES = (("old_defaults", False), ("calibrated", True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussian-n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=300, help="queries sent one per call for the 1-client QPS")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds per side, alternating; the best counts")
    ap.add_argument("--only", default="gaussian,fashion-mnist,text")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sets = {"gaussian": lambda: gaussian(args.gaussian_n, args.queries), "fashion-mnist": lambda: fashion(args.queries),
            "text": lambda: text(args.queries)}
    log = _CalibrationLog()
    logging.getLogger("simsearch.shard.scann_index").addHandler(log)
    logging.getLogger("simsearch.shard.scann_index").setLevel(logging.INFO)
    results: dict[str, dict] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServeConfig(port=0, data_dir=Path(tmp), bootstrap_key=KEY)
        with EmbeddedServer(cfg) as server, Client(server.address, api_key=KEY, timeout=600) as c:
            for name in args.only.split(","):
                db, q, metric = sets[name]()
                results[name] = compare(c, name, db, q, metric, args.single, args.rounds, log)
                print(name, results[name], flush=True)
    os.environ.pop(calibration.SWITCH, None)
    doc = {"command": "python scripts/recall_target.py", "k": K, "target_recall": 0.95, "batch": BATCH,
           "wall_s": round(time.perf_counter() - started), "cpus": os.cpu_count(), "results": results,
           "calibration_cap": {"sample_max": calibration.SAMPLE_MAX, "sample_min": calibration.SAMPLE_MIN,
                               "exact_work_max": calibration.EXACT_WORK_MAX, "oversamples": calibration.OVERSAMPLES,
                               "leaf_step": calibration.LEAF_STEP}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(results))


def table(results: dict) -> str:
    lines = ["| data | setting | leaves searched | oversample | recall@10 | calibrated (sample) | QPS batched | "
             "QPS 1 client | calibration per build |", "|---|---|---|---|---|---|---|---|---|"]
    for name, row in results.items():
        for side in ("old_defaults", "calibrated"):
            r = row[side]
            cal = ", ".join(f"{s:.2f} s" for s in r["calibration_s_per_build"]) or "—"
            lines.append(f"| {name} ({row['points']:,} × {row['dim']}) | {side.replace('_', ' ')} | "
                         f"{r['leaves_to_search']} / {r['num_leaves']} | {r['oversample']} | {r['recall_at_10']:.3f} | "
                         f"{r['calibrated_recall'] or '—'} | {r['qps_batched']:,.0f} | {r['qps_1_client']:,.0f} | {cal} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
