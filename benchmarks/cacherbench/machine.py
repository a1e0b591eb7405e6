"""What the numbers were measured on: the machine and every tool's version."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cacherbench.peers import Peers


def _first(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _proc_field(path: str, name: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def source_state(repo: Path) -> str:
    """The commit cacher was measured at, and its uncommitted changes under cacher/."""
    commit = _first(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "cacher"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    if not status:
        return f"commit {commit}"
    changed = ", ".join(line[3:] for line in status)
    return f"commit {commit} with uncommitted changes to {changed}"


def describe(peers: Peers, cacher_bin: Path, repo: Path) -> dict[str, Any]:
    mem_kib = _proc_field("/proc/meminfo", "MemTotal").split()[0]
    weed = Path(sys.executable).parent / "weed"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(int(mem_kib) / (1 << 20), 1) if mem_kib.isdigit() else None,
        "cpu": _proc_field("/proc/cpuinfo", "model name"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cacher": _first([str(cacher_bin), "--version"]).removeprefix("cacher "),
        "source": source_state(repo),
        "s5cmd": _first([str(peers.s5cmd), "version"]),
        "aws": _first([str(peers.aws), "--version"]),
        "zstd": _first(["zstd", "--version"]),
        "tar": _first(["tar", "--version"]),
        "seaweedfs": _first([str(weed), "version"]),
    }
