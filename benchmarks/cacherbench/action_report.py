"""The Action's install rows (action_install.py) against issue 26's targets: a markdown section of
its own in docs/benchmarks.md (between its own markers) and benchmarks/results/action-install.json.

The rows use their own small tree, the same at every ``--size``, so they are published whenever a
run measures them (``--only action-install`` included) unless ``--no-publish`` is given; the rest
of docs/benchmarks.md is left as it is.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from cacherbench.action_install import (
    BUNDLE,
    PIP,
    REF_BUNDLE,
    REF_CHECKOUT,
    UV,
    WARM,
    WARM_BUNDLE,
    WORKLOAD,
)
from cacherbench.report import write_json

START, END = "<!-- action-install:start -->", "<!-- action-install:end -->"
HEADING = "## The Action's install"
#: (label, the row, the row it is compared with or None, target seconds or None). With a row to
#: compare with, the figure is the difference of the medians.
TARGETS: list[tuple[str, str, str | None, float | None]] = [
    ("warm tool cache (checkout install): added over `cacher paths download`", WARM, REF_CHECKOUT, 0.3),
    ("warm tool cache (bundle): added over `cacher paths download`", WARM_BUNDLE, REF_BUNDLE, 0.3),
    ("bundle by URL, cold: the whole step", BUNDLE, None, 2.0),
    ("bundle by URL, cold: added over `cacher paths download`", BUNDLE, REF_BUNDLE, None),
    ("pip from the checkout, cold: added over `cacher paths download`", PIP, REF_CHECKOUT, None),
    ("uv from the checkout, cold: added over `cacher paths download`", UV, REF_CHECKOUT, None),
]


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in results["measurements"] if m["workload"] == WORKLOAD]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target whose rows were measured: the figure in seconds, the target, met."""
    index = {m["tool"]: m for m in rows(results)}
    out = []
    for label, ours, base, target in TARGETS:
        if ours not in index or (base is not None and base not in index):
            continue
        a = index[ours]
        figure = a["median_s"] - (index[base]["median_s"] if base else 0.0)
        # The rows take turns in each round: each round's difference, paired, is less exposed to
        # a slow spell of the shared machine than the difference of the medians.
        paired = None
        if base:
            pairs = zip(a["runs"], index[base]["runs"], strict=True)
            paired = statistics.median(x["seconds"] - y["seconds"] for x, y in pairs)
        met = None if target is None else figure <= target
        out.append({"label": label, "seconds": figure, "paired_s": paired, "target_s": target, "met": met})
    return out


def _secs(m: dict[str, Any]) -> str:
    return f"{m['median_s']:.2f} ({m['min_s']:.2f}-{m['max_s']:.2f})"


def markdown(results: dict[str, Any]) -> str:
    measured = rows(results)
    facts = results["facts"].get("action_install", {})
    machine = results["machine"]
    tree, bundle = facts.get("tree", {}), facts.get("bundle", {})
    out = [
        f"Reproduce with `{results['command']}`. Measured {machine['date']} on cacher "
        f"{machine['cacher']} (source: {machine['source']}), {machine['nproc']} CPUs ({machine['cpu']}), "
        f"node {facts.get('node', '?')}; {results['runs']} timed runs after one warm-up, the rows "
        "taking turns in each round.",
        "",
        f"The hit restores {tree.get('files', '?')} files, {tree.get('bytes', 0) / (1 << 20):.1f} MiB "
        f"(the first files of the benchmark's input tree); the bundle is `{bundle.get('name', '?')}`, "
        f"{bundle.get('bytes', 0) / (1 << 20):.1f} MiB. Every run starts with an empty HOME and "
        "workspace; a cold run with an empty tool cache too.",
        "",
        "| row | command | s, median (min-max) | CPU s | peak RSS | others' CPUs |",
        "|---|---|---|---|---|---|",
    ]
    for m in measured:
        out.append(
            f"| {m['tool']} | `{m['command']}` | {_secs(m)} | {m['median_cpu_s']:.2f} "
            f"| {m['max_rss_mib']:.0f} MiB | {m['load'].get('other_cpus', '?')} |"
        )
    out += [
        "",
        "| against issue 26's targets | s (difference of the medians) | median of the rounds' differences "
        "| target | |",
        "|---|---|---|---|---|",
    ]
    for t in targets(results):
        target = "as measured" if t["target_s"] is None else f"≤ {t['target_s']:.1f} s"
        met = "—" if t["met"] is None else ("met" if t["met"] else "**missed**")
        paired = "—" if t["paired_s"] is None else f"{t['paired_s']:+.2f}"
        out.append(f"| {t['label']} | {t['seconds']:+.2f} | {paired} | {target} | {met} |")
    return "\n".join(out) + "\n"


def write_section(docs: Path, body: str) -> None:
    """``body`` between the section's markers in ``docs`` (the section added at the end when
    the file has none); the rest of the file as it was."""
    text = docs.read_text() if docs.exists() else ""
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n{HEADING}\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    docs.parent.mkdir(parents=True, exist_ok=True)
    tmp = docs.with_name(docs.name + ".tmp")
    tmp.write_text(f"{before}{START}\n{body}{END}{after}")
    os.replace(tmp, docs)


def write_outputs(results: dict[str, Any], repo: Path, work: Path, *, publish: bool) -> None:
    """The section and its JSON: published (docs/ and benchmarks/results/), else under ``work``."""
    if not rows(results):
        return
    own = {
        "command": results["command"],
        "size": results["size"],
        "runs": results["runs"],
        "machine": results["machine"],
        "measurements": rows(results),
        "facts": {"action_install": results["facts"].get("action_install", {})},
        "targets": targets(results),
    }
    body = markdown(results)
    if publish:
        json_path = repo / "benchmarks" / "results" / "action-install.json"
        docs = repo / "docs" / "benchmarks.md"
    else:
        json_path, docs = work / "results" / "action-install.json", work / "results" / "action-install.md"
    write_json(json_path, own)
    write_section(docs, body)
    print(body)
    print(f"bench: wrote {json_path} and {docs}", flush=True)
