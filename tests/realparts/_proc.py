"""Process helpers shared by the parts: stop with a grace period, read a log tail."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import weakref
from pathlib import Path

__all__ = ["kill_at_exit", "log_tail", "stop_process"]

_LIVE: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()


def kill_at_exit(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` when this interpreter exits, if it is still running then.

    Parts start their servers in a new session (so Ctrl-C in pytest does not hit them first);
    this keeps an aborted test run from leaving servers behind.
    """
    _LIVE.add(proc)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 3.0) -> int | None:
    """SIGTERM, wait up to ``grace`` s, then SIGKILL; always reap. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        if grace > 0:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                return proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    return proc.wait()


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])
