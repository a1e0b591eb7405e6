"""The results: raw JSON, and the markdown table that goes between the markers of docs/benchmarks.md."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cacherbench.incremental import bytes_table
from cacherbench.targets import ABSOLUTE, COMPARISONS, RSS_TARGET_MIB

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _index(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["workload"], m["tool"]): m for m in results["measurements"]}


def comparisons(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every comparison whose two sides were measured: medians, ratio, target, met."""
    index = _index(results)
    rows = []
    for label, ours, theirs, target in COMPARISONS:
        if ours not in index or theirs not in index:
            continue
        a, b = index[ours], index[theirs]
        ratio = a["median_s"] / b["median_s"]
        rows.append(
            {
                "label": label,
                "cacher": a,
                "peer": b,
                "peer_name": theirs[1],
                "ratio": ratio,
                "target": target,
                "met": None if target is None else ratio <= target,
            }
        )
    return rows


def absolute(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row with a target in seconds that was measured: median, target, met, the peer."""
    index = _index(results)
    rows = []
    for label, ours, target, peer in ABSOLUTE:
        if ours not in index:
            continue
        a = index[ours]
        rows.append(
            {
                "label": label,
                "cacher": a,
                "peer": index.get(peer) if peer else None,
                "target_s": target,
                "met": None if target is None else a["median_s"] <= target,
            }
        )
    return rows


def _cell(text: str) -> str:
    """Text for a table cell: its pipes escaped, or they would split the cell."""
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`"


def _secs(m: dict[str, Any]) -> str:
    return f"{m['median_s']:.3f} ({m['min_s']:.3f}-{m['max_s']:.3f})"


def _met(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**missed**")


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def comparison_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| workload | cacher s, median (min-max) | peer | peer s, median (min-max) | cacher/peer | target "
        "| | CPU s, cacher / peer | others' CPUs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["comparisons"]:
        target = "—" if r["target"] is None else f"≤ {r['target']:.2f}x"
        a, b = r["cacher"], r["peer"]
        cpu = f"{a['median_cpu_s']:.2f} / {b['median_cpu_s']:.2f}"
        others = a["load"].get("other_cpus", "?")
        lines.append(
            f"| {r['label']} | {_secs(a)} | {_code(b['command'])} | {_secs(b)} "
            f"| {r['ratio']:.2f}x | {target} | {_met(r['met'])} | {cpu} | {others} |"
        )
    return lines


def absolute_table(results: dict[str, Any]) -> list[str]:
    rows = results.get("absolute") or []
    if not rows:
        return []
    lines = [
        "| row | cacher command | s, median (min-max) | target | | for comparison | its s, median (min-max) "
        "| others' CPUs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["cacher"], r["peer"]
        target = "—" if r["target_s"] is None else f"≤ {r['target_s']:.2f} s"
        peer = ("—", "—") if b is None else (_code(b["command"]), _secs(b))
        lines.append(
            f"| {r['label']} | {_code(a['command'])} | {_secs(a)} | {target} | {_met(r['met'])} "
            f"| {peer[0]} | {peer[1]} | {a['load'].get('other_cpus', '?')} |"
        )
    return lines


def _cacher_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every measured cacher command (its pipeline pieces and the ``rss`` workload's apart)."""
    return [
        m
        for m in results["measurements"]
        if m["tool"].startswith("cacher")
        and not m["workload"].endswith(" parts")
        and not m["workload"].startswith("rss ")
    ]


def rss_table(results: dict[str, Any]) -> list[str]:
    lines = ["| workload | cacher command | peak RSS (max over runs) | target | |", "|---|---|---|---|---|"]
    for m in _cacher_rows(results):
        mib = m["max_rss_mib"]
        lines.append(
            f"| {m['workload']} | {_code(m['command'])} | {mib:.0f} MiB | ≤ {RSS_TARGET_MIB} MiB "
            f"| {_met(mib <= RSS_TARGET_MIB)} |"
        )
    peers = [
        m
        for m in results["measurements"]
        if m["tool"] in ("s5cmd", "aws") and m["workload"].startswith(("dir ", "file ", "restore disk"))
    ]
    if peers:
        lines += [
            "",
            "Peers, for comparison (largest process of the pipeline): "
            + "; ".join(f"{m['workload']} {m['tool']} {m['max_rss_mib']:.0f} MiB" for m in peers)
            + ".",
        ]
    return lines


def big_rss_table(results: dict[str, Any]) -> list[str]:
    """The ``rss`` workload: cacher's own peak RSS moving one large artifact of each kind."""
    rss = results["facts"].get("rss")
    if not rss or not rss["rows"]:
        return []
    lines = [
        f"One artifact of each kind, at least {_gib(rss['target_bytes'])} (size `{results['size']}`), "
        "moved once each way with a zstd key. Peak RSS is the kernel's VmHWM of cacher's own "
        "process, sampled every 10 ms; its child processes (the docker CLI) are listed apart.",
        "",
        "| kind | direction | cacher command | artifact | stored | peak RSS | target | | child processes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rss["rows"]:
        mib = r["peak_rss_mib"]
        kids = ", ".join(f"{p['name']} {p['max_rss_kib'] / 1024:.0f} MiB" for p in r["descendants"]) or "—"
        lines.append(
            f"| {r['kind']} | {r['direction']} | {_code(r['command'])} "
            f"| {r['artifact_bytes'] / (1 << 20):,.0f} MiB | {r['stored_bytes'] / (1 << 20):,.0f} MiB "
            f"| {mib:.0f} MiB | ≤ {RSS_TARGET_MIB} MiB | {_met(mib <= RSS_TARGET_MIB)} | {kids} |"
        )
    skipped = rss.get("skipped") or {}
    if skipped:
        lines += ["", "Not measured: " + "; ".join(f"{kind}, {why}" for kind, why in skipped.items()) + "."]
    return lines


def parts_table(results: dict[str, Any], workload: str) -> list[str]:
    rows = [m for m in results["measurements"] if m["workload"] == workload]
    if not rows:
        return []
    lines = ["| part | command | s, median (min-max) |", "|---|---|---|"]
    lines += [f"| {_cell(m['tool'])} | {_code(m['command'])} | {_secs(m)} |" for m in rows]
    return lines


def profile_lines(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, prof in (results.get("profiles") or {}).items():
        lines.append(f"- **{name}** (`cacher {prof['command']}`):")
        threads = prof["threads"]
        main = max((t["samples"] for t in threads.values()), default=0)
        for thread, t in threads.items():
            busy = t["samples"] * (100 - t["idle_pct"]) / 100
            if busy < 0.05 * main:
                continue  # a thread that mostly waited
            top = ", ".join(f"{f} {p}%" for f, p in t["inclusive"][:8])
            own = ", ".join(f"{f} {p}%" for f, p in t["self"][:6])
            lines.append(
                f"  - thread `{thread}`: {t['samples'] / 100:.1f} s sampled, {t['idle_pct']}% waiting. "
                f"On the stack: {top}. Innermost (busy): {own}"
            )
    return lines


def machine_lines(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    return [
        f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB memory, Linux {m['kernel']}",
        f"- Python {m['python']}, cacher {m['cacher']} (source: {m['source']}), s5cmd {m['s5cmd']}, "
        f"{m['aws']}",
        f"- {m['zstd'].strip('* ')}; {m['tar']}; SeaweedFS {m['seaweedfs']} on loopback, on the same CPUs",
        f"- downloads and restores written to `{results['scratch'].rsplit('/', 1)[0]}`; inputs read from "
        "disk (in the page cache after the warm-up)",
        f"- measured {m['date']}, {results['runs']} timed runs after one warm-up, total run time "
        f"{results['elapsed_s'] / 60:.1f} min",
    ]


def input_lines(results: dict[str, Any]) -> list[str]:
    i = results["inputs"]
    t, k = i["tree_stats"], i["keytree_stats"]
    lines = [
        f"- directory tree: {t['files']:,} files, {t['dirs']:,} directories, {t['symlinks']} symlinks, "
        f"{_gib(t['bytes'])} ({t['bytes']:,} bytes): `uv pip install --target` of "
        f"{', '.join(i['requested'])} ({len(i['packages'])} distributions with dependencies)",
        f"- large file: {_gib(i['large_bytes'])} ({i['large_bytes']:,} bytes), an uncompressed tar of the "
        f"wheels {', '.join(i['wheels'])}",
        f"- `cacher key` tree: {k['files']:,} files, {_gib(k['bytes'])}, "
        "the first files of the directory tree (hardlinks)",
    ]
    facts = results["facts"]
    medium = facts.get("medium_tree")
    if medium:
        m = medium["stats"]
        what = (
            "a stand-in at this size: the directory tree above"
            if medium["stand_in"]
            else f"`uv pip install --target` of {', '.join(medium['requested'])} "
            f"({len(medium['packages'])} distributions with dependencies)"
        )
        lines.append(
            f"- medium tree: {m['files']:,} files, {_gib(m['bytes'])} ({m['bytes']:,} bytes): {what}"
        )
    disk = facts.get("restore_disk")
    if disk:
        lines.append(
            f"- restores onto disk: into `{disk['dir']}` ({disk['fstype']}, mounted "
            f"`{disk.get('options', '?')}`), the previous tree moved aside (deleted at the end of the "
            "run) and `sync` before each run"
        )
    bundle = facts.get("bundle")
    if bundle and "tarball" in bundle:
        built = (
            f"built for this run in {bundle['build_s']} s"
            if bundle["built_now"]
            else "built by an earlier run"
        )
        lines.append(
            f"- the one-directory bundle: `{bundle['tarball']}`, {_gib(bundle['bytes'])} "
            f"(`packaging/build-single-file.sh --onedir`, {built}; source {bundle['source']}); "
            "unpacked on the disk under `benchmarks/.work`"
        )
    rss = facts.get("rss")
    if rss:
        r, t = rss["inputs"], rss["inputs"]["tree"]
        lines.append(
            f"- peak-memory artifacts: a file of {_gib(r['file_bytes'])}, the large file {r['file_copies']} "
            f"times over; a tree of {t['files']:,} files, {_gib(t['bytes'])}, {r['tree_copies']} copies "
            "of the directory tree (real copies); the docker image is that tree, `docker import`ed"
        )
    for suffix, which in (("", "directory"), ("_medium", "medium tree")):
        stored = facts.get(f"dir_stored_bytes{suffix}")
        if stored:
            lines.append(
                f"- compressed {which} objects: "
                + ", ".join(f"{tool} {_gib(n)}" for tool, n in stored.items())
            )
    return lines


def markdown(results: dict[str, Any]) -> str:
    out = [f"Size `{results['size']}`. Reproduce with `{results['command']}`.", ""]
    out += ["### Against the targets", "", *comparison_table(results), ""]
    incremental = bytes_table(results)
    if incremental:
        out += ["### Incremental saves: bytes", "", *incremental, ""]
    absolute = absolute_table(results)
    if absolute:
        out += [
            "### Against targets in seconds",
            "",
            "A first request is timed from just before the spawn to its first bytes at a relay "
            "between the command and the server (CPU time and peak RSS are the whole command's).",
            "",
            *absolute,
            "",
        ]
    out += ["### Peak memory", "", *rss_table(results), ""]
    big = big_rss_table(results)
    if big:
        out += [
            f"### Peak memory of a {_gib(results['facts']['rss']['target_bytes'])} artifact",
            "",
            *big,
            "",
        ]
    for workload in ("dir upload parts", "dir download parts"):
        table = parts_table(results, workload)
        if table:
            out += [f"### Where the time goes: {workload}", "", *table, ""]
    prof = profile_lines(results)
    if prof:
        out += ["### Profiles", "", *prof, ""]
    if results.get("chart"):
        out += [f"![cacher/peer time ratios against the targets]({results['chart']})", ""]
    if prof:
        out[out.index("### Profiles") + 1 : out.index("### Profiles") + 1] = [
            "",
            "py-spy, 100 samples per second and thread, waiting included (`--idle`); shares are of "
            "the thread's samples. Threads that mostly waited are left out; raw stacks in "
            "`benchmarks/.work/profiles/`.",
        ]
    out += ["### Machine", "", *machine_lines(results), ""]
    out += ["### Inputs", "", *input_lines(results), ""]
    notes = results.get("not_measured") or []
    if notes:
        out += ["### Not measured", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(out).rstrip() + "\n"


SKELETON = f"""# Benchmarks

How cacher compares with `s5cmd` and the AWS CLI on the same machine, against a SeaweedFS
server on loopback. Run by `benchmarks/run.py`; see benchmarks/README.md.

## Results

{START}
{END}
"""


def write_docs(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else SKELETON
    if START not in text or END not in text:
        text = text.rstrip() + "\n\n" + SKELETON.split("## Results", 1)[1]
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    _atomic_write(path, f"{before}{START}\n{body}{END}{after}")


def write_json(path: Path, results: dict[str, Any]) -> None:
    _atomic_write(path, json.dumps(results, indent=1, default=str) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
