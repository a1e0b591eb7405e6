#!/usr/bin/env python
"""cacher's benchmark suite: one command builds the inputs, starts SeaweedFS, measures cacher and
its peers (s5cmd, the AWS CLI, GNU tar + zstd, sha256sum) in the same run, and writes the results.

    .venv/bin/python benchmarks/run.py [--size tiny|small|full] [--runs N] [--only NAME...]

``full`` (the default) publishes: docs/benchmarks.md (between the results markers),
docs/benchmarks.png and benchmarks/results/latest.json. Other sizes and partial runs write to
benchmarks/.work/results/ unless --publish is given. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cacherbench import bundle, docker, incremental, listing, memory, parts, report, startup, tier, workloads
from cacherbench.action_install import action_install
from cacherbench.action_report import write_outputs as write_action_install
from cacherbench.bench import BUCKET, Bench, Measurement, Skipped
from cacherbench.inputs import SIZES, Inputs, build_inputs
from cacherbench.machine import describe, source_state
from cacherbench.peers import Peers, ensure_extra, ensure_peers
from cacherbench.profile import profile_all

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
SCRATCH_MIN_FREE = 8 << 30

WORKLOADS: dict[str, Callable[[Bench, Inputs], list[Measurement]]] = {
    "dir-upload": workloads.dir_upload,
    "dir-download": workloads.dir_download,
    "dir-upload-medium": workloads.dir_upload_medium,
    "dir-download-medium": workloads.dir_download_medium,
    "restore-disk": workloads.restore_disk,
    "restore-disk-medium": workloads.restore_disk_medium,
    "file-upload": workloads.file_upload,
    "file-download": workloads.file_download,
    "key": workloads.key_tree,
    "startup": startup.startup,
    "first-request": startup.first_request,
    "upload-parts": parts.upload_parts,
    "download-parts": parts.download_parts,
    "docker": docker.docker,
    "rss": memory.rss,
    "tier-download": tier.tier_download,
    "incremental": incremental.incremental,
    "incremental-medium": incremental.incremental_medium,
    "bundle": bundle.bundle,
    "action-install": action_install,
    "listing-scale": listing.listing_scale,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="full")
    p.add_argument("--runs", type=int, help="timed runs per command after the warm-up (default: by size)")
    p.add_argument(
        "--only",
        nargs="+",
        choices=sorted(WORKLOADS),
        metavar="NAME",
        help=f"run only these workloads: {', '.join(WORKLOADS)}",
    )
    p.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="py-spy profiles of cacher transfers (default: on, except for tiny)",
    )
    p.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md, docs/benchmarks.png and benchmarks/results/latest.json "
        "(default: only for a complete full run)",
    )
    p.add_argument(
        "--render",
        metavar="RESULTS_JSON",
        help="measure nothing: write the markdown (and chart) again from a results file "
        "(default: published, as for a full run)",
    )
    p.add_argument(
        "--scratch",
        metavar="DIR",
        help="where downloads and restores are written (default: /dev/shm if it has 8 GiB free)",
    )
    return p.parse_args(argv)


def scratch_root(choice: str | None) -> Path:
    """Where downloads and restores land: tmpfs when it has room (see README), else benchmarks/.work."""
    if choice:
        base = Path(choice)
    elif Path("/dev/shm").is_dir() and shutil.disk_usage("/dev/shm").free >= SCRATCH_MIN_FREE:
        base = Path("/dev/shm")
    else:
        base = WORK
    root = base / f"cacher-bench-scratch-{os.getpid()}"
    root.mkdir(parents=True)
    return root


def start_s3(work: Path) -> Any:
    from cacher.testing.seaweed import SeaweedS3

    base = work / "seaweed"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    s3 = SeaweedS3(base, volume_size_limit_mb=1024).start()
    s3.make_bucket(BUCKET)
    return s3


def run_workloads(bench: Bench, inputs: Inputs, names: list[str], notes: list[str]) -> list[Measurement]:
    measurements: list[Measurement] = []
    for name in names:
        if name == "docker":
            why = docker.docker_engine()
            if why:
                notes.append(f"docker upload/download: {why}")
                print(f"bench: docker {why}", flush=True)
                continue
        try:
            measurements += WORKLOADS[name](bench, inputs)
        except Skipped as why:
            notes.append(f"{name}: {why}")
            print(f"bench: {name} {why}", flush=True)
        except Exception as exc:
            traceback.print_exc()
            notes.append(f"{name}: failed: {str(exc).splitlines()[0]}")
        if name == "rss":
            for kind, why in bench.facts.get("rss", {}).get("skipped", {}).items():
                notes.append(f"peak RSS of a {kind} artifact: {why}")
    return measurements


def run_profiles(bench: Bench, inputs: Inputs, notes: list[str]) -> dict[str, Any]:
    if not ensure_extra(bench.peers, "profile"):
        notes.append("profiles: py-spy could not be installed in the peers venv")
        return {}
    try:
        return profile_all(bench, inputs)
    except Exception as exc:
        traceback.print_exc()
        notes.append(f"profiles: py-spy failed: {str(exc).splitlines()[0]}")
        return {}


def draw_chart(peers: Peers, results_json: Path, out: Path, notes: list[str]) -> bool:
    if not ensure_extra(peers, "chart"):
        notes.append("chart: matplotlib could not be installed in the peers venv")
        return False
    script = HERE / "cacherbench" / "chart.py"
    done = subprocess.run([str(peers.python), str(script), str(results_json), str(out)], check=False)
    if done.returncode != 0:
        notes.append("chart: matplotlib failed")
    return done.returncode == 0


def measure_all(args: argparse.Namespace, argv: list[str]) -> tuple[dict[str, Any], Peers]:
    """Build the inputs, start the server, run the workloads and profiles; the raw results."""
    started = time.monotonic()
    spec = SIZES[args.size]
    runs = args.runs or spec.runs
    names = args.only or list(WORKLOADS)
    profile = args.profile if args.profile is not None else args.size != "tiny"
    source_at_start = source_state(REPO)
    peers = ensure_peers(WORK / "peers")
    inputs = build_inputs(spec, peers, WORK)
    notes: list[str] = []
    scratch = scratch_root(args.scratch)
    shutil.rmtree(workloads.disk_dir(WORK), ignore_errors=True)  # left by an interrupted run
    s3 = start_s3(WORK)
    try:
        bench = Bench(
            WORK,
            peers,
            s3.endpoint,
            s3.key_id,
            s3.secret,
            runs,
            s3.client(),
            s3.proc.pid,
            warmup_parts=args.size != "tiny",
            # At tiny, the bundle and the Action's install rows only when --only names them.
            build_bundle=args.size != "tiny" or bool({"bundle", "action-install"} & set(args.only or [])),
            scratch_root=scratch,
        )
        measurements = run_workloads(bench, inputs, names, notes)
        profiles = run_profiles(bench, inputs, notes) if profile else {}
        machine = describe(peers, bench.cacher_bin, REPO)
    finally:
        s3.cleanup(grace=0)
        shutil.rmtree(WORK / "seaweed", ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(workloads.disk_dir(WORK), ignore_errors=True)  # the restore-disk rows' trees
    if machine["source"] != source_at_start:
        notes.append(f"cacher's source changed during the run: at the start {source_at_start}")
    results: dict[str, Any] = {
        "size": args.size,
        "runs": runs,
        "command": shlex.join([".venv/bin/python", "benchmarks/run.py", *argv]),
        "machine": machine,
        "scratch": str(scratch),
        "inputs": {**asdict(inputs), "requested": list(spec.packages)},
        "measurements": [m.to_json() for m in measurements],
        "facts": bench.facts,
        "profiles": profiles,
        "not_measured": notes,
        "elapsed_s": time.monotonic() - started,
    }
    return results, peers


def write_outputs(results: dict[str, Any], peers: Peers, publish: bool) -> None:
    """JSON, chart (when publishing) and the markdown table."""
    results["comparisons"] = report.comparisons(results)
    results["absolute"] = report.absolute(results)
    size = results["size"]
    results_json = HERE / "results" / "latest.json" if publish else WORK / "results" / f"{size}.json"
    report.write_json(results_json, results)
    results.pop("chart", None)
    if publish and draw_chart(peers, results_json, REPO / "docs" / "benchmarks.png", results["not_measured"]):
        results["chart"] = "benchmarks.png"
        report.write_json(results_json, results)
    body = report.markdown(results)
    docs = REPO / "docs" / "benchmarks.md" if publish else WORK / "results" / f"{size}.md"
    report.write_docs(docs, body)
    print(body)
    print(f"bench: wrote {results_json} and {docs}", flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.render:
        results = json.loads(Path(args.render).read_text())
        publish = True if args.publish is None else args.publish
        write_outputs(results, ensure_peers(WORK / "peers"), publish)
        return 0
    results, peers = measure_all(args, argv)
    publish = args.publish if args.publish is not None else (args.size == "full" and not args.only)
    write_outputs(results, peers, publish)
    write_action_install(results, REPO, WORK, publish=args.publish is not False)  # a section of its own
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
