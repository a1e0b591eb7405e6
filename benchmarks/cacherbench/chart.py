"""Bar chart of cacher/peer time ratios with their targets; run by the peers venv (matplotlib).

Usage: ``python chart.py RESULTS.json OUT.png``
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter

COLORS = {True: "#2e7d32", False: "#c62828", None: "#999999"}
TICKS = (0.05, 0.1, 0.2, 0.35, 0.5, 1, 1.2, 2, 3, 5, 10, 20)


def main(results_path: str, out_path: str) -> None:
    with open(results_path) as f:
        rows = json.load(f)["comparisons"]
    labels = [f"{r['label'].replace('`', '')} vs {r['peer_name']}" for r in rows]
    ratios = [r["ratio"] for r in rows]
    colors = [COLORS[r["met"]] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 2.0))
    y = list(range(len(rows)))
    ax.barh(y, ratios, color=colors)
    for i, r in enumerate(rows):
        if r["target"] is not None:
            ax.plot([r["target"]] * 2, [i - 0.42, i + 0.42], color="black", linewidth=2.5)
        ax.text(r["ratio"] * 1.03, i - 0.1, f"{r['ratio']:.2f}x", va="center", fontsize=8)
    ax.axvline(1.0, color="#555555", linestyle=":", linewidth=1)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ticks = [t for t in TICKS if min(ratios) / 1.5 <= t <= max(ratios) * 1.5]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(ratios) / 1.5, max(ratios) * 1.6)
    ax.set_xlabel("cacher time / peer time, medians (log scale); lower is better")
    handles = [
        Patch(color=COLORS[True], label="target met"),
        Patch(color=COLORS[False], label="target missed"),
        Patch(color=COLORS[None], label="no target"),
        Line2D([], [], color="black", label="target"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4, fontsize=8)
    ax.set_title("cacher against its peers")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
