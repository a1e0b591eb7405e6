"""Process helpers shared by the parts: stop with a grace period, read a log tail."""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

__all__ = ["cleanup_at_exit", "log_tail", "stop_process"]

_CLEANUPS: dict[int, Callable[[], object]] = {}
_KEYS = itertools.count()


def cleanup_at_exit(fn: Callable[[], object]) -> Callable[[], None]:
    """Call ``fn`` when this interpreter exits; returns a function that cancels that.

    Parts start their servers in a new session (so Ctrl-C in pytest does not hit them first);
    this keeps an aborted test run from leaving servers, sockets and temp dirs behind.
    """
    key = next(_KEYS)
    _CLEANUPS[key] = fn

    def cancel() -> None:
        _CLEANUPS.pop(key, None)

    return cancel


@atexit.register
def _run_cleanups() -> None:
    for fn in list(_CLEANUPS.values()):
        try:
            fn()
        except Exception:
            pass
    _CLEANUPS.clear()


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
