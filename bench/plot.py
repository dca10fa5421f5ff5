"""Plots latency (p50 and p99) against throughput for each family of
scenarios from bench/out/results.json, one PNG per family.

    bench/.venv/bin/python bench/plot.py bench/out/results.json bench/out/plots
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Which scenarios share a plot: the scenario's name starts with one of these.
FAMILIES = {
    "noop": ["clipper/noop-py/", "direct/noop-py/", "clipper/noop-node/", "direct/noop-node/", "edge/", "ray/noop/", "ray-tuned/noop/"],
    "fixed-cost": ["clipper/fixed-b1/", "clipper/fixed-batched/"],
    "sklearn": ["clipper/sklearn/", "direct/sklearn/", "ray/sklearn/", "ray-tuned/sklearn/"],
    "gateway": ["clipper/noop-py/rest", "clipper-unary/noop-py/", "clipper-2workers/noop-py/", "clipper-inprocess/noop-py/"],
    "cache": ["clipper/cache-", "clipper/fixed-b1/"],
}


def family_points(points, prefixes):
    series = defaultdict(list)
    for p in points:
        if any(p["scenario"].startswith(prefix) for prefix in prefixes):
            series[p["scenario"]].append(p)
    return series


def plot_family(name, series, out_dir, meta):
    fig, ax = plt.subplots(figsize=(8, 5))
    for index, (scenario, pts) in enumerate(sorted(series.items())):
        pts = sorted(pts, key=lambda p: p["throughput"])
        colour = f"C{index % 10}"
        xs = [p["throughput"] for p in pts]
        ax.plot(xs, [p["p50Ms"] for p in pts], "o-", color=colour, label=f"{scenario} p50")
        ax.plot(xs, [p["p99Ms"] for p in pts], "s--", color=colour, label=f"{scenario} p99")
        for p in pts:
            load = f"c{p['concurrency']}" if p["mode"] == "closed" else f"{int(p['targetRate'])}/s"
            ax.annotate(load, (p["throughput"], p["p99Ms"]), fontsize=6, textcoords="offset points", xytext=(2, 2))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (answers/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{name}: latency against load ({meta['commit']}, {meta['date'][:10]}, {meta['nproc']} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    results = json.loads(Path(argv[1]).read_text())
    out_dir = Path(argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    points = results["points"]
    families = dict(FAMILIES)
    written = []
    for name, prefixes in families.items():
        series = family_points(points, prefixes)
        if series:
            written.append(plot_family(name, series, out_dir, results["meta"]))
    open_loop = {s: [p for p in pts if p["mode"] == "open"] for s, pts in family_points(points, [""]).items()}
    open_loop = {s: pts for s, pts in open_loop.items() if pts}
    if open_loop:
        written.append(plot_family("open-loop", open_loop, out_dir, results["meta"]))
    for path in written:
        print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
