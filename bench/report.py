"""Benchmark outputs: the markdown table at fixed recall targets, recall-vs-QPS and latency
CDF plots (PNG), from the JSON a run writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simsearch.bench.measure import best_at

TARGETS = (0.90, 0.95, 0.99)


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "—" if x is None else format(x, spec)


def table(result: dict[str, Any]) -> str:
    """One row per system and target: the best batched QPS with recall@10 >= target, that point's single-query
    p50/p99, and each system's ratio to raw ScaNN at the same target."""
    systems = result["systems"]
    raw = next((s for s in systems if s["kind"] == "ceiling"), None)
    ds = result["dataset"]
    lines = [f"**{ds['name']}**{' (synthetic)' if ds['synthetic'] else ''}: {ds['train']:,} vectors x {ds['dim']}, "
             f"{ds['queries']:,} queries, {ds['metric']}, k = {result['k']}.", "",
             "| recall@10 ≥ | system | recall | batched QPS | × raw ScaNN | 1-query QPS | × raw | p50 ms | p99 ms "
             "| build s | ingest rows/s | memory MiB | bytes/vector |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for target in TARGETS:
        ref = best_at(raw["points"], target) if raw else None
        ref1 = best_at(raw["points"], target, "single_qps") if raw else None
        for s in systems:
            p = best_at(s["points"], target)
            p1 = best_at(s["points"], target, "single_qps")
            if p is None:
                lines.append(f"| {target:.2f} | {s['name']} | max {max((q['recall'] for q in s['points']), default=0):.3f} "
                             "| not reached | | | | | | | | | |")
                continue
            ratio = f"{p['batched_qps'] / ref['batched_qps']:.2f}" if ref else "—"
            ratio1 = f"{p1['single_qps'] / ref1['single_qps']:.2f}" if ref1 else "—"
            lines.append(
                f"| {target:.2f} | {s['name']} | {p['recall']:.3f} | {p['batched_qps']:,.0f} | {ratio} "
                f"| {p1['single_qps']:,.0f} | {ratio1} | {p1['single']['p50_ms']:.2f} | {p1['single']['p99_ms']:.2f} "
                f"| {s['build_s']:.1f} | {_ingest(s)} | {s['memory_bytes'] / 2**20:,.0f} "
                f"| {s['bytes_per_vector']:,.0f} |")
    lines += _memory(result.get("memory"), ds) + _durability(result.get("durability_ingest"))
    extra = result.get("simsearch_extra")
    if extra:
        lines += ["", f"simsearch at {extra['knob']} (recall@10 {extra['recall']:.3f}):", "",
                  "| concurrent clients (one query per call) | QPS | × 1 client | p50 ms | p99 ms |", "|---|---|---|---|---|"]
        base = extra["concurrency"][0]["qps"]
        for c in extra["concurrency"]:
            lines.append(f"| {c['clients']} | {c['qps']:,.0f} | {c['qps'] / base:.2f} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} |")
        if "transports" in extra:
            lines += ["", "| call path (one query per call, same setting) | QPS | p50 ms | p99 ms |", "|---|---|---|---|"]
            for name, t in extra["transports"].items():
                label = {"unary": "unary Search", "stream": "SearchStream (the SDK default)"}.get(name, name)
                lines.append(f"| {label} | {t['qps']:,.0f} | {t['p50_ms']:.2f} | {t['p99_ms']:.2f} |")
        cache = extra["cache"]
        lines += ["", "| cache path | p50 ms | p99 ms |", "|---|---|---|"]
        for key, label in (("miss", "miss, end to end"), ("miss_inside_server", "miss, inside the server"),
                           ("hit", "hit, end to end"), ("hit_inside_server", "hit, inside the server")):
            lines.append(f"| {label} | {cache[key]['p50_ms']:.3f} | {cache[key]['p99_ms']:.3f} |")
        lines += ["", f"Cache hit / miss p50 end to end: {cache['hit']['p50_ms'] / cache['miss']['p50_ms']:.3f} "
                  f"({cache['hit']['n']:,} hits and {cache['miss']['n']:,} misses, interleaved: each hot query, "
                  "then the same query perturbed by 1e-4 of its mean magnitude, a new key)."]
    return "\n".join(lines)


def _memory(mem: dict[str, Any] | None, ds: dict[str, Any]) -> list[str]:
    """Bytes per stored point, simsearch's server against raw ScaNN measured in a clean process."""
    if not mem:
        return []
    raw, sim = mem["raw_scann"], mem["simsearch"]
    f32 = mem["float32_bytes_per_point"]
    data = f"{ds['name']}{' (synthetic)' if ds['synthetic'] else ''}"
    return ["", f"Memory per stored point, {mem['points']:,} points x {mem['dim']} on {data} "
            f"(the float32 vector alone: {f32:,} bytes):", "",
            "| system | bytes/point | × float32 vector | MiB | how measured |", "|---|---|---|---|---|",
            f"| raw ScaNN, same parameters (re-order keeps the floats) | {raw['bytes_per_point']:,.0f} "
            f"| {raw['bytes_per_point'] / f32:.2f} | {raw['bytes'] / 2**20:,.0f} | {raw['method']}; "
            f"peak {raw['peak_over_before_load'] / 2**20:,.0f} MiB |",
            f"| simsearch server | {sim['bytes_per_point']:,.0f} | {sim['bytes_per_point'] / f32:.2f} "
            f"| {sim['bytes'] / 2**20:,.0f} | {sim['method']} |",
            "", f"Server memory per point / raw ScaNN's: **{mem['simsearch_over_raw']:.2f}×** "
            "(issue 15's target: ≤ 1.5×)."]


def _durability(ing: dict[str, Any] | None) -> list[str]:
    """SDK ingest with --durability fsync against none, same run."""
    if not ing:
        return []
    med = ing["median_vectors_per_s"]
    lines = ["", f"Ingest through the SDK, {ing['vectors']:,} vectors x {ing['dim']}, {ing['shards']} shard(s), "
             f"requests of {ing['batch_rows']:,} rows (the SDK's default ~8 MiB), {ing['rounds']} ingest(s) per mode "
             f"in the order {ing['order']}, each into a fresh collection of a server started with that mode "
             f"({_index_params(ing.get('collection_index_params'))}):", "",
             "| --durability | vectors/s (median) | each ingest, vectors/s |", "|---|---|---|"]
    for mode in ("fsync", "none"):
        each = ", ".join(f"{r['vectors_per_s']:,.0f}" for r in ing["runs"] if r["durability"] == mode)
        lines.append(f"| {mode} | {med[mode]:,.0f} | {each} |")
    lines += ["", f"Ingest fsync / none: **{ing['fsync_over_none']:.2f}×** (issue 15's target: ≥ 0.7×)."]
    return lines


def _index_params(params: dict[str, int] | None) -> str:
    if not params:
        return "default index parameters: background index builds run during ingest"
    said = ", ".join(f"{k} {v:,}" for k, v in params.items())
    return f"created with {said}" + (", so no background index build runs" if "min_index_size" in params else "")


def _ingest(s: dict[str, Any]) -> str:
    """Rows/s until searchable; "—" for a system with no index to build (brute force holds the array)."""
    return "—" if s["build_s"] < 0.01 else f"{s['ingest_rows_per_s']:,.0f}"


def plot(result: dict[str, Any], out: Path) -> list[Path]:
    """recall-vs-QPS (batched and one query per call, log scale) and single-query latency CDFs at recall >= 0.95."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = result["dataset"]
    title = f"{ds['name']}{' (synthetic)' if ds['synthetic'] else ''}, k={result['k']}"
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, key, label in ((axes[0], "batched_qps", "batched QPS"), (axes[1], "single_qps", "one query per call, QPS")):
        for s in result["systems"]:
            pts = sorted(s["points"], key=lambda p: p["recall"])
            ax.plot([p["recall"] for p in pts], [p[key] for p in pts], marker="o", ms=3, label=s["name"])
        ax.set_yscale("log")
        ax.set_xlim(0.8, 1.002)  # the comparison happens here; cheaper settings are in the JSON
        ax.set_xlabel("recall@10")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(title)
    axes[1].legend(fontsize=8)
    curves = out / f"recall-qps-{ds['name']}.png"
    fig.tight_layout()
    fig.savefig(curves, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5))
    for s in result["systems"]:
        p = best_at(s["points"], 0.95, "single_qps")
        if p:
            cdf = p["single"]["cdf_ms"]
            ax.plot(cdf, range(len(cdf)), label=f"{s['name']} (recall {p['recall']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("single-query latency, ms")
    ax.set_ylabel("percentile")
    ax.set_title(f"{title}: latency CDF at recall@10 ≥ 0.95")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    cdf_path = out / f"latency-cdf-{ds['name']}.png"
    fig.tight_layout()
    fig.savefig(cdf_path, dpi=110)
    plt.close(fig)
    return [curves, cdf_path]
