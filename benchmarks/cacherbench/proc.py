"""Running one command and measuring it: wall time, and peak RSS from ``os.wait4``."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 900.0


GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Sample:
    """One timed run: wall seconds, CPU seconds (user + system) and peak RSS.

    CPU time and RSS cover the process and every descendant it waited for (all stages of a
    shell pipeline), not the S3 server.
    """

    seconds: float
    cpu_seconds: float
    max_rss_kib: int


class CommandFailed(RuntimeError):
    """A measured command exited non-zero or ran past its timeout."""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def measure(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    log: Path,
    stdout: Path | None = None,
    cwd: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Sample:
    """Run ``argv`` to its end; raise `CommandFailed` unless it exits 0.

    The clock covers fork, exec and exit, as a shell's ``time`` would. Peak RSS and CPU time
    come from GNU time, whose own small process forks the command: Linux counts the RSS a
    child had before its exec, so ``wait4`` on a child of this (large) Python process would
    report at least this process's RSS.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    usage_file = log.with_suffix(".usage")
    wrapped = [GNU_TIME, "-q", "-f", "%M %U %S", "-o", str(usage_file), *argv]
    use_gnu_time = os.access(GNU_TIME, os.X_OK)
    with open(log, "ab") as err, open(stdout or os.devnull, "wb") as out:
        err.write(f"\n$ {' '.join(argv)}\n".encode())
        err.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(
            wrapped if use_gnu_time else list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted: take the command down with us
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
    if proc.returncode != 0:
        raise CommandFailed(f"exit {proc.returncode}: {' '.join(argv)} (log: {log})\n{tail(log)}")
    if use_gnu_time:
        rss, user, system = usage_file.read_text().split()[-3:]
        return Sample(seconds, float(user) + float(system), int(rss))
    return Sample(seconds, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss))


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def check_output(argv: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object) -> str:
    """Plain ``subprocess.run`` for set-up steps that are not timed."""
    result = subprocess.run(
        list(argv),
        env=None if env is None else dict(env),
        check=True,
        capture_output=True,
        text=True,
        **kwargs,
    )  # type: ignore[call-overload]
    return str(result.stdout)


def shell(script: str) -> list[str]:
    """A bash pipeline that fails if any stage fails."""
    return ["bash", "-o", "pipefail", "-c", script]
