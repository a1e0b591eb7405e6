"""Peak memory of cacher's own process moving one large artifact of each kind (the ``rss`` workload)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict
from typing import Any

from cacherbench.bench import Bench, Measurement, remove
from cacherbench.common import check_tree, untimed
from cacherbench.docker import docker_engine
from cacherbench.inputs import Inputs, build_big_inputs
from cacherbench.proc import measure_peaks, shell


def _mib_label(n: int) -> str:
    return f"{n >> 30}g" if n >= 1 << 30 else f"{n >> 20}m"


class _RssRun:
    """One cacher command per kind and direction, each measured alone by VmHWM (proc.measure_peaks)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.measurements: list[Measurement] = []
        self.rows: list[dict[str, Any]] = []

    def run(self, kind: str, direction: str, display: str, argv: list[str], env: dict[str, str]) -> None:
        workload = f"rss {kind} {direction}"
        out = self.bench.out("rss", f"{kind}-{direction}")
        out.parent.mkdir(parents=True, exist_ok=True)
        peak = measure_peaks(argv, env, log=self.bench.log("rss"), stdout=out)
        doc = json.loads(out.read_text())
        sample = peak.sample
        self.measurements.append(Measurement(workload, "cacher", display, samples=[sample]))
        self.rows.append(
            {
                "kind": kind,
                "direction": direction,
                "command": display,
                "artifact_bytes": doc["raw_bytes"],
                "stored_bytes": doc["stored_bytes"],
                "codec": doc["codec"],
                "outcome": doc["outcome"],
                "peak_rss_mib": sample.max_rss_kib / 1024,
                "seconds": sample.seconds,
                "cpu_seconds": sample.cpu_seconds,
                "descendants": [asdict(p) for p in peak.descendants],
            }
        )
        print(
            f"bench: rss {kind} {direction}: {doc['raw_bytes'] / (1 << 20):.0f} MiB, "
            f"peak RSS {sample.max_rss_kib / 1024:.0f} MiB, {sample.seconds:.1f}s",
            flush=True,
        )


def rss(bench: Bench, inputs: Inputs) -> list[Measurement]:
    """Peak RSS of cacher's own process moving one large artifact of each kind, up and down.

    One run each (memory, not time); downloads go to the scratch dir and are removed at once.
    """
    big = build_big_inputs(inputs)
    label = _mib_label(big.target_bytes)
    runs = _RssRun(bench)
    ce = bench.cacher_env()
    skipped: dict[str, str] = {}
    bench.facts["rss"] = {
        "target_bytes": big.target_bytes,
        "inputs": {
            "file_bytes": big.file_bytes,
            "file_copies": big.file_copies,
            "tree": asdict(big.tree_stats),
            "tree_copies": big.tree_copies,
        },
        "rows": runs.rows,
        "skipped": skipped,
    }

    # One file: the codec runs only when asked (a key's suffix picks one for archive kinds only).
    key = f"rss/file-{label}.zst"
    runs.run(
        "file",
        "upload",
        "cacher upload --codec zstd KEY.zst FILE",
        bench.cacher("upload", "--json", "--codec", "zstd", key, str(big.file)),
        ce,
    )
    dest = bench.scratch("rss-file.bin")
    try:
        runs.run(
            "file",
            "download",
            "cacher download KEY.zst DEST",
            bench.cacher("download", "--json", key, str(dest)),
            ce,
        )
        if dest.stat().st_size != big.file_bytes:
            raise AssertionError(f"cacher wrote {dest.stat().st_size} bytes, not {big.file_bytes}")
    finally:
        remove(dest)

    # A directory tree.
    key = f"rss/dir-{label}.tar.zst"
    runs.run(
        "dir",
        "upload",
        "cacher dir upload KEY.tar.zst DIR",
        bench.cacher("dir", "upload", "--json", key, str(big.tree)),
        ce,
    )
    dest = bench.scratch("rss-dir")
    remove(dest)
    try:
        runs.run(
            "dir",
            "download",
            "cacher dir download KEY.tar.zst DEST",
            bench.cacher("dir", "download", "--json", key, str(dest)),
            ce,
        )
        check_tree(dest, big.tree_stats)
    finally:
        remove(dest)

    # A docker image of the tree, when an engine answers.
    why = docker_engine()
    if why:
        skipped["docker"] = why
        print(f"bench: rss docker {why}", flush=True)
        return runs.measurements
    image = f"cacherbench/rss:{label}"
    env_extra = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
    de = {**ce, **env_extra}

    def drop_image() -> None:
        subprocess.run(["docker", "rmi", "-f", image], env=de, capture_output=True, check=False)

    drop_image()
    untimed(bench, shell(f"tar -C {bench.q(big.tree)} -cf - . | docker import - {image}"), de)
    key = f"rss/docker-{label}.tar.zst"
    try:
        runs.run(
            "docker",
            "upload",
            "cacher docker upload KEY.tar.zst IMAGE",
            bench.cacher("docker", "upload", "--json", key, image),
            de,
        )
        drop_image()
        runs.run(
            "docker",
            "download",
            "cacher docker download KEY.tar.zst IMAGE",
            bench.cacher("docker", "download", "--json", key, image),
            de,
        )
        subprocess.run(["docker", "image", "inspect", image], env=de, capture_output=True, check=True)
    finally:
        drop_image()
    return runs.measurements
