"""Running one command and measuring it: wall time, CPU time and peak RSS.

`measure` takes peak RSS from GNU time (a whole pipeline's largest stage); `measure_peaks`
samples the kernel's VmHWM of the command's own process and of each of its descendants.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


def _run_logged(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    log: Path,
    stdout: Path | None,
    cwd: Path | None,
    timeout: float,
    wait: Callable[[int], tuple[int, resource.struct_rusage]],
    shown: Sequence[str] | None = None,
) -> tuple[int, resource.struct_rusage, float]:
    """Run ``argv`` in its own session, stderr appended to ``log``, until ``wait`` reaps it.

    The process group is killed on timeout or interruption. Returns (pid, rusage, wall
    seconds); raises `CommandFailed` unless the command exited 0.
    """
    command = " ".join(shown or argv)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err, open(stdout or os.devnull, "wb") as out:
        err.write(f"\n$ {command}\n".encode())
        err.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
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
            status, usage = wait(proc.pid)
        except BaseException:  # interrupted: take the command down with us
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by `wait`; Popen must not wait again
    if proc.returncode != 0:
        raise CommandFailed(f"exit {proc.returncode}: {command} (log: {log})\n{tail(log)}")
    return proc.pid, usage, seconds


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
    usage_file = log.with_suffix(".usage")
    use_gnu_time = os.access(GNU_TIME, os.X_OK)
    wrapped = [GNU_TIME, "-q", "-f", "%M %U %S", "-o", str(usage_file), *argv] if use_gnu_time else argv

    def wait(pid: int) -> tuple[int, resource.struct_rusage]:
        _, status, usage = os.wait4(pid, 0)
        return status, usage

    _, usage, seconds = _run_logged(
        wrapped, env, log=log, stdout=stdout, cwd=cwd, timeout=timeout, wait=wait, shown=argv
    )
    if use_gnu_time:
        rss, user, system = usage_file.read_text().split()[-3:]
        return Sample(seconds, float(user) + float(system), int(rss))
    return Sample(seconds, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss))


PEAK_INTERVAL = 0.01


@dataclass(frozen=True)
class ProcessPeak:
    """The peak RSS (VmHWM) of one process of a measured command, after its exec."""

    pid: int
    name: str
    argv: str
    max_rss_kib: int


@dataclass(frozen=True)
class PeakSample:
    """One run measured per process: ``sample.max_rss_kib`` is the command's own process only."""

    sample: Sample
    descendants: list[ProcessPeak] = field(default_factory=list)


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def _hwm_kib(pid: int) -> tuple[str, int] | None:
    """(Name, VmHWM) of a live process; None once it is gone or has no memory (a zombie)."""
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return None
    name, hwm = "", None
    for line in status.splitlines():
        if line.startswith("Name:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
            break
    return None if hwm is None else (name, hwm)


def _children(pid: int) -> list[int]:
    """Child processes of pid, from /proc/PID/task/*/children."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            out += [int(p) for p in text.split()]
    return out


def _cmdline(pid: int) -> str | None:
    text = _read(f"/proc/{pid}/cmdline")
    return None if text is None else " ".join(text.rstrip("\0").split("\0"))


def measure_peaks(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    log: Path,
    stdout: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = PEAK_INTERVAL,
) -> PeakSample:
    """Run ``argv`` to its end, sampling the VmHWM of it and its descendants every ``interval`` s.

    VmHWM is the kernel's high-water mark of one process's resident memory, so a sample
    misses nothing that happened before it; only a rise in the last ``interval`` before a
    process exits can be missed. Unlike ``ru_maxrss`` (wait4, GNU time), it does not carry
    the forking parent's memory across exec: ``Popen`` returns only once the exec is done,
    and a descendant is sampled only once its command line differs from its parent's (it
    has exec'd). Raises `CommandFailed` unless the command exits 0. CPU time (user +
    system, descendants included) comes from ``wait4``.
    """
    peaks: dict[tuple[int, str], ProcessPeak] = {}

    def wait(pid: int) -> tuple[int, resource.struct_rusage]:
        while True:
            _sample_tree(pid, peaks)
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                return status, usage
            time.sleep(interval)

    pid, usage, seconds = _run_logged(argv, env, log=log, stdout=stdout, cwd=None, timeout=timeout, wait=wait)
    own = max((p.max_rss_kib for p in peaks.values() if p.pid == pid), default=0)
    rest = sorted((p for p in peaks.values() if p.pid != pid), key=lambda p: -p.max_rss_kib)
    return PeakSample(Sample(seconds, usage.ru_utime + usage.ru_stime, own), rest)


def _sample_tree(root: int, peaks: dict[tuple[int, str], ProcessPeak]) -> None:
    """One VmHWM reading of root and every descendant that has exec'd."""
    todo: list[tuple[int, str | None]] = [(root, None)]
    while todo:
        pid, parent_cmd = todo.pop()
        cmd = _cmdline(pid)
        if cmd is None:
            continue
        found = _hwm_kib(pid) if cmd != parent_cmd else None  # same command line: forked, not exec'd yet
        if found:
            name, kib = found
            old = peaks.get((pid, cmd))
            if old is None or kib > old.max_rss_kib:
                peaks[(pid, cmd)] = ProcessPeak(pid, name, cmd, kib)
        todo += [(child, cmd) for child in _children(pid)]


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
