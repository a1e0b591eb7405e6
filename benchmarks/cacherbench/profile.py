"""Sampling profiles of cacher commands with py-spy, summarised per thread.

``py-spy record --idle --threads`` samples every Python thread at 100 Hz, waiting included,
so a thread's samples add up to its wall time. The summary lists, per thread, the functions
whose frames are on the stack most often (inclusive) and the innermost frames (self).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from cacherbench.bench import Bench
from cacherbench.inputs import Inputs

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?P<line>:\d+)?\)$")
TOP = 12
NO_FRAME = "(no Python frame: start-up or exit)"
# Innermost frames of a thread that waits (on a lock, a queue, epoll): idle, not work.
IDLE = (
    "Condition.wait ",
    "EpollSelector.select ",
    "_worker (futures/thread.py",
    "Event.wait ",
    "Thread._wait_for_tstate_lock ",
    "Thread.join ",
    "BaseSelectorEventLoop.select ",
)
# Frames on (nearly) every sample of their thread: the CLI's and the threads' trunks.
TRUNK = (
    "<module> (cacher)",
    "main (cli/__init__.py)",
    "App.__call__ ",
    "_run_maybe_async_command ",
    "_command.<locals>.command ",
    "Thread._bootstrap",
    "Thread.run ",
    "BaseEventLoop.run_forever ",
    "BaseEventLoop._run_once ",
    "Handle._run ",
    "_WorkItem.run ",
    "_runner (fsspec/asyn.py)",
    "with_current_context.",
    "_worker (futures/thread.py",
)


def _label(frame: str, line: bool = False) -> str:
    """``func (dir/file.py)``, with ``:line`` if asked; all of importlib is one label."""
    if "<frozen importlib" in frame:
        return "(importing modules)"
    m = _FRAME.match(frame)
    if not m:
        return frame
    where = "/".join(m.group("file").split("/")[-2:]) + (m.group("line") or "" if line else "")
    return f"{m.group('func')} ({where})"


def summarise(raw: str) -> dict[str, Any]:
    """Per thread: samples, top inclusive and self functions as shares of that thread's samples.

    A raw line is ``thread (TID)[: NAME];frame;frame COUNT``; py-spy names a thread only once
    ``threading`` knows it, so samples are merged by TID under the name seen.
    """
    threads: dict[str, dict[str, Any]] = {}
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        head, _, rest = stack.partition(";")
        tid, _, name = head.partition(": ")
        raw_frames = [f for f in rest.split(";") if f]
        frames = [_label(f) for f in raw_frames] or [NO_FRAME]
        leaf = _label(raw_frames[-1], line=True) if raw_frames else NO_FRAME
        t = threads.setdefault(tid, {"name": tid, "samples": 0, "inclusive": Counter(), "self": Counter()})
        if name:
            t["name"] = name
        t["samples"] += count
        for label in set(frames):
            t["inclusive"][label] += count
        t["self"][leaf] += count
    out: dict[str, Any] = {}
    for t in sorted(threads.values(), key=lambda t: -t["samples"]):
        total = t["samples"]
        idle = sum(n for f, n in t["self"].items() if f.startswith(IDLE))
        inclusive = Counter({f: n for f, n in t["inclusive"].items() if not f.startswith(TRUNK)})
        own = Counter({f: n for f, n in t["self"].items() if not f.startswith(IDLE)})
        out[t["name"]] = {
            "samples": total,
            "idle_pct": round(100 * idle / total, 1),
            "inclusive": [(f, round(100 * n / total, 1)) for f, n in inclusive.most_common(TOP)],
            "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(TOP)],
        }
    return out


def record(bench: Bench, name: str, argv: list[str], setup: Any = None) -> dict[str, Any]:
    out = bench.work / "profiles" / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    if setup:
        setup()
    cmd = [
        str(bench.peers.py_spy),
        "record",
        "--format",
        "raw",
        "--threads",
        "--idle",
        "--rate",
        "100",
        "--output",
        str(out),
        "--",
        *argv,
    ]
    with open(bench.log("profile"), "ab") as log:
        subprocess.run(cmd, env=bench.cacher_env(), check=True, stdout=log, stderr=log)
    return {"command": " ".join(argv[1:]), "raw": str(out), "threads": summarise(out.read_text())}


def profile_all(bench: Bench, inputs: Inputs) -> dict[str, Any]:
    """Profiles of a dir upload, a dir download and a file upload (objects from earlier workloads)."""
    dest = bench.scratch("profile-dest")

    def clear() -> None:
        subprocess.run(["rm", "-rf", str(dest)], check=True)

    tree, large = str(inputs.tree), str(inputs.large)
    profiles = {
        "dir upload": record(bench, "dir-upload", bench.cacher("dir", "upload", "prof/dir.tar.zst", tree)),
        "dir download": record(
            bench, "dir-download", bench.cacher("dir", "download", "prof/dir.tar.zst", str(dest)), setup=clear
        ),
        "file upload": record(bench, "file-upload", bench.cacher("upload", "prof/file", large)),
        "file download": record(
            bench, "file-download", bench.cacher("download", "prof/file", str(dest) + ".bin")
        ),
    }
    clear()
    Path(str(dest) + ".bin").unlink(missing_ok=True)
    return profiles
