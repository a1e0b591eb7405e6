#!/usr/bin/env python3
"""Start-up time of one or more `cacher` executables, as a CI job sees it.

    python3 packaging/measure-startup.py [--runs N] NAME=COMMAND [NAME=COMMAND ...]

COMMAND is split like a shell word list, e.g. ``pyinstaller=dist/cacher`` or
``venv=.venv/bin/cacher``. Each command runs under ``env -i`` (no PATH, no venv, HOME and
the XDG directories in a fresh temporary directory), first once from cold (the first run
of a new HOME: a zipapp unpacks itself then), then N times each for ``--version`` and for
``key 'deps/{hash}.tar.zst' --hash-from FILE``. Runs alternate between the commands, so a
busy machine slows them alike. Printed: the median wall time and the median CPU time (user +
system, of the process and its children), which a loaded machine disturbs much less.
These numbers go into docs/install.md.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(argv: list[str], home: Path, cwd: Path) -> tuple[float, float]:
    env = {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv], cwd=cwd, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{argv} failed with exit {proc.returncode}:\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("commands", nargs="+", metavar="NAME=COMMAND")
    args = parser.parse_args()
    commands = {}
    for spec in args.commands:
        name, _, command = spec.partition("=")
        argv = shlex.split(command)
        argv[0] = str(Path(argv[0]).resolve())
        commands[name] = argv

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lock = work / "go.sum"
        lock.write_text("example.com/mod v1.0.0 h1:abc=\n")
        cases = {
            "--version": ["--version"],
            "key": ["key", "deps/{hash}.tar.zst", "--hash-from", str(lock)],
        }
        homes = {}
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for name, argv in commands.items():
            home = work / f"home-{name}"
            for sub in (".cache", ".config"):
                (home / sub).mkdir(parents=True)
            homes[name] = home
            results[(name, "cold --version")] = [run_once([*argv, "--version"], home, work)]
        for _ in range(args.runs):
            for case, extra in cases.items():
                for name, argv in commands.items():
                    results.setdefault((name, case), []).append(run_once([*argv, *extra], homes[name], work))

    width = max(len(n) for n in commands) + 2
    print(f"{'command':<{width}}{'case':<16}{'runs':>5}{'wall median':>14}{'cpu median':>13}")
    for (name, case), samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(f"{name:<{width}}{case:<16}{len(samples):>5}{wall:>13.3f}s{cpu:>12.3f}s")
    for name, argv in commands.items():
        path = Path(argv[-1] if argv[0].endswith(("python", "python3", "python3.11")) else argv[0])
        if path.is_file():
            print(f"size of {name}: {path.stat().st_size} bytes ({path.stat().st_size / 1048576:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
