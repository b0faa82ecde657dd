"""Issue 19's end-to-end figure: an image collection on a weak encoder v1 -> v2 trained by `simsearch train` on the
collection's own kept images and labels -> reindex to v2 under search and upsert load -> the gate's decision;
then a v3 trained for one step is refused by the gate. Real `simsearch serve` (its private Ray hosts the encoder
replicas), the SDK over gRPC, Fashion-MNIST images.

    python scripts/reindex_under_load.py [--points 10000] [--epochs 3]

Prints a table and writes docs/benchmarks/reindex-under-load.json: searches and writes sent and failed during
the reindex, acknowledged writes lost (every one is read back and compared with v2's embedding of its image),
search throughput before / during the reindex, the reindex's duration, and the gate's figures for both jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from simsearch.client import Client
from simsearch.datasets import fashion_mnist
from simsearch.encoder import TrainConfig, load
from simsearch.encoder.pipeline import train_and_register
from simsearch.encoder.sources import task_from_arrays

KEY = "reindex-bench-key-0123456789abcdef"
OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "reindex-under-load.json"
BASE = dict(name="fmnist", dataset="fashion-mnist", backbone="cnn", loss="proxy-anchor", width=16, embedding_dim=64,
            batch_size=256, m_per_class=16, augment=False, num_threads=2)


def serve(data: Path) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMSEARCH_", "RAY_"))}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "simsearch", "serve", "--port", str(port), "--data-dir", str(data),
                             "--bootstrap-key", KEY], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        if "listening on" in line:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain
            return proc, line.split("listening on ")[1].split(" ")[0]
    raise SystemExit("simsearch serve did not start")


class Load:
    """One search client (raw images, k=10) and one upsert client (20 images not yet stored, every 0.1 s) in
    threads."""

    def __init__(self, address: str, queries: np.ndarray, new: np.ndarray, labels: np.ndarray):
        self.address, self.queries, self.new, self.labels = address, queries, new, labels
        self.stop = threading.Event()
        self.search_times: list[float] = []
        self.search_failed: list[str] = []
        self.write_failed: list[str] = []
        self.acknowledged: list[int] = []
        self.threads = [threading.Thread(target=self._search), threading.Thread(target=self._write)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _search(self) -> None:
        rng = np.random.default_rng(0)
        with Client(self.address, api_key=KEY, timeout=60) as c:
            while not self.stop.is_set():
                try:
                    c.search("fm", images=self.queries[rng.integers(len(self.queries), size=1)], k=10)
                    self.search_times.append(time.monotonic())
                except Exception as e:  # noqa: BLE001 - counted
                    self.search_failed.append(repr(e))

    def _write(self) -> None:
        with Client(self.address, api_key=KEY, timeout=60) as c:
            for start in range(0, len(self.new), 20):
                if self.stop.is_set():
                    return
                ids = list(range(start, min(start + 20, len(self.new))))
                try:
                    c.upsert("fm", [f"new-{i}" for i in ids], images=self.new[ids],
                             payloads=[{"label": -1}] * len(ids))
                    self.acknowledged += ids
                except Exception as e:  # noqa: BLE001
                    self.write_failed.append(repr(e))
                time.sleep(0.1)


def qps(times: list[float], start: float, end: float) -> float:
    return sum(start <= t < end for t in times) / max(end - start, 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    ds = fashion_mnist()
    x = ds.train[:args.points].reshape(-1, 28, 28).astype(np.uint8)
    y = ds.train_labels[:args.points].astype(np.int64)
    held_out = np.arange(len(x)) % 3 == 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        models = data / "models"
        one_step = TrainConfig(**BASE, epochs=1, max_steps_per_epoch=1)
        # v1 and v3 take one step on a task of these images (its small test keeps their evaluation short)
        task = task_from_arrays("fmnist", x[:, None], y, "item", 0.1, 0.1, 0)
        print("training v1 (one step) ...", flush=True)
        train_and_register(one_step, root=models, task=task, progress=False)  # fmnist@1
        proc, address = serve(data)
        try:
            with Client(address, api_key=KEY, timeout=600) as client:
                client.create_collection("fm", encoder="fmnist@1", shards=2)
                payloads = [{"label": int(v), "split": "eval"} if h else
                            {"label": int(v), "train_label": int(v), "split": "train"} for v, h in zip(y, held_out)]
                t0 = time.monotonic()
                client.upsert("fm", [str(i) for i in range(len(x))], images=x, payloads=payloads, batch_size=500)
                print(f"ingested {len(x)} images in {time.monotonic() - t0:.1f} s; training v2 on them ...", flush=True)
                cfg = {k: v for k, v in TrainConfig(**BASE, epochs=args.epochs).to_dict().items()
                       if k not in ("dataset", "data")}
                config = Path(tmp) / "v2.json"
                config.write_text(json.dumps({**cfg, "data": {"format": "collection", "address": address,
                                                              "collection": "fm", "label_field": "train_label",
                                                              "split": "item"}}))
                t0 = time.monotonic()
                out = subprocess.run([sys.executable, "-m", "simsearch", "train", str(config), "--models-dir",
                                      str(models)], env={**os.environ, "SIMSEARCH_API_KEY": KEY},
                                     capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(out.stderr[-3000:])
                v2 = json.loads(out.stdout[out.stdout.index("{\n"):])["model"]
                train_s = time.monotonic() - t0
                train_and_register(one_step.replace(seed=7), root=models, task=task, progress=False)  # v3: one step
                new = ds.train[args.points:args.points + 2000].reshape(-1, 28, 28).astype(np.uint8)  # unseen images
                new_labels = ds.train_labels[args.points:args.points + 2000]
                load_ = Load(address, x[held_out], new, new_labels)
                load_.start()
                time.sleep(10)
                r0 = time.monotonic()
                client.reindex("fm", v2, label_field="label", eval_filter={"split": "eval"})
                done = client.wait_reindex("fm", timeout=3600)
                r1 = time.monotonic()
                time.sleep(5)
                load_.finish()
                acked = sorted(set(load_.acknowledged))
                got = client.get("fm", [f"new-{i}" for i in acked])
                lost = len(got.missing)
                want = load(v2, models).embed(new[[int(i.split("-")[1]) for i in got.ids]][:, None])
                mismatched = int((np.abs(got.vectors - want).max(axis=1) > 1e-4).sum())
                info = client.describe_collection("fm")
                worse = client.reindex("fm", "fmnist@3", label_field="label", eval_filter={"split": "eval"})
                refused = client.wait_reindex("fm", timeout=3600)
        finally:
            proc.terminate()
            proc.wait(120)
    result = {
        "points": int(len(x)), "eval_points": int(held_out.sum()), "v2": v2, "v2_train_s": train_s,
        "reindex_s": r1 - r0, "job": done.state, "copied": done.copied,
        "searches_during": sum(r0 <= t < r1 for t in load_.search_times), "searches_failed": len(load_.search_failed),
        "qps_before": qps(load_.search_times, r0 - 10, r0), "qps_during": qps(load_.search_times, r0, r1),
        "writes_acknowledged": len(acked), "writes_failed": len(load_.write_failed), "writes_lost": lost,
        "writes_not_v2": mismatched, "encoder_after": info.encoder, "gate_v2": done.decision,
        "v3": worse.encoder, "v3_state": refused.state, "gate_v3": refused.decision,
        "failures": (load_.search_failed + load_.write_failed)[:5],
    }
    OUT.write_text(json.dumps(result, indent=2, default=float) + "\n")
    g2, g3 = done.decision, refused.decision
    print(f"\nreindex {result['points']} images fmnist@1 -> {v2}: {done.state} in {result['reindex_s']:.1f} s")
    print(f"searches during: {result['searches_during']}, failed {result['searches_failed']}; QPS before "
          f"{result['qps_before']:.1f}, during {result['qps_during']:.1f}")
    print(f"writes acknowledged {len(acked)}, failed {result['writes_failed']}, lost {lost}, not v2's {mismatched}")
    print("| job | state | current P@1 | new P@1 | current MAP@R | new MAP@R | current R@10 | new R@10 | live overlap |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, st, g in ((f"fmnist@1 -> {v2}", done.state, g2), (f"{v2} -> fmnist@3", refused.state, g3)):
        print(f"| {name} | {st} | {g['current']['p_at_1']:.3f} | {g['candidate']['p_at_1']:.3f} | "
              f"{g['current']['map_at_r']:.3f} | {g['candidate']['map_at_r']:.3f} | {g['current']['r_at_10']:.3f} | "
              f"{g['candidate']['r_at_10']:.3f} | {g.get('live_overlap')} |")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
