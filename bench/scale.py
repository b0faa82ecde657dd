"""The scale sweep: synthetic Gaussian-mixture data (labelled synthetic everywhere) at growing
N, simsearch with 1, 2 and 4 shards at its default setting (7% of leaves probed), raw ScaNN
beside it at each N. Reports build time, memory per vector, recall, p50/p99 and batched QPS,
and fits how each grows with N (the exponent of a power law through the points).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.bench.measure import measure
from simsearch.bench.simsearch_system import SimsearchServer
from simsearch.bench.systems import RawScann
from simsearch.datasets import ground_truth, synthetic_gmm
from simsearch.shard.config import DEFAULT_PROBE_FRACTION

DEFAULT_FRACTION = (DEFAULT_PROBE_FRACTION,)


def run_scale(sizes: list[int], shards: list[int], *, queries: int = 2000, single: int = 500, k: int = 10,
              placement: str = "local") -> dict[str, Any]:
    rows = []
    for n in sizes:
        ds = synthetic_gmm(n, queries=queries)
        truth = ground_truth(ds)[:, :k]
        systems = [("raw ScaNN", 1, RawScann(fractions=DEFAULT_FRACTION))]
        systems += [("simsearch", s, SimsearchServer(shards=s, placement=placement, fractions=DEFAULT_FRACTION))
                    for s in shards]
        for label, s, system in systems:
            try:
                m = measure(system, ds, truth, k=k, single=single, single_budget_s=5.0,
                            log=lambda line: print(f"[{ds.name}] {line}"))
            finally:
                system.close()
            p = m["points"][0]
            rows.append({"system": label, "n": n, "shards": s, "build_s": m["build_s"],
                         "ingest_rows_per_s": m["ingest_rows_per_s"], "bytes_per_vector": m["bytes_per_vector"],
                         "recall": p["recall"], "p50_ms": p["single"]["p50_ms"], "p99_ms": p["single"]["p99_ms"],
                         "batched_qps": p["batched_qps"], "knob": p["knob"]})
    return {"dataset": "synthetic-gmm-128 (synthetic)", "queries": queries, "k": k, "rows": rows,
            "growth": growth(rows)}


def growth(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per (system, shards): the exponent b in cost ~ N^b for build time, p50 and 1/QPS."""
    out = {}
    for key in sorted({(r["system"], r["shards"]) for r in rows}):
        pts = sorted((r for r in rows if (r["system"], r["shards"]) == key), key=lambda r: r["n"])
        if len(pts) < 2:
            continue
        n = np.log([r["n"] for r in pts])
        out[f"{key[0]} x{key[1]}"] = {
            metric: float(np.polyfit(n, np.log([f(r) for r in pts]), 1)[0])
            for metric, f in (("build_s", lambda r: r["build_s"]), ("p50_ms", lambda r: r["p50_ms"]),
                              ("1/batched_qps", lambda r: 1 / r["batched_qps"]))}
    return out


def scale_table(result: dict[str, Any]) -> str:
    lines = [f"**{result['dataset']}**, {result['queries']:,} queries, k = {result['k']}, default setting "
             "(7% of leaves probed per shard).", "",
             "| N | system | shards | build s | ingest rows/s | bytes/vector | recall@10 | p50 ms | p99 ms | batched QPS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['n']:,} | {r['system']} | {r['shards']} | {r['build_s']:.1f} | {r['ingest_rows_per_s']:,.0f} "
                     f"| {r['bytes_per_vector']:,.0f} | {r['recall']:.3f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                     f"| {r['batched_qps']:,.0f} |")
    if result["growth"]:
        lines += ["", "Growth exponents b (cost ∝ N^b, least squares over the sizes):", "",
                  "| system | build time | p50 latency | time per query, batched |", "|---|---|---|---|"]
        for name, g in result["growth"].items():
            lines.append(f"| {name} | {g['build_s']:.2f} | {g['p50_ms']:.2f} | {g['1/batched_qps']:.2f} |")
    return "\n".join(lines)


def plot_scale(result: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for key in sorted({(r["system"], r["shards"]) for r in result["rows"]}):
        pts = sorted((r for r in result["rows"] if (r["system"], r["shards"]) == key), key=lambda r: r["n"])
        label = f"{key[0]} ({key[1]} shard{'s' if key[1] > 1 else ''})"
        for ax, metric in zip(axes, ("build_s", "p50_ms", "batched_qps")):
            ax.plot([r["n"] for r in pts], [r[metric] for r in pts], marker="o", label=label)
    for ax, title in zip(axes, ("build + ingest, s", "single-query p50, ms", "batched QPS")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (synthetic GMM, 128-d)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "scale-synthetic.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_scale(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale-synthetic.json").write_text(json.dumps(result, indent=1))
    md = scale_table(result)
    (out / "scale-synthetic.md").write_text(md + "\n")
    png = plot_scale(result, out)
    print(md)
    print(f"wrote {out / 'scale-synthetic.json'}, {out / 'scale-synthetic.md'}, {png}")
