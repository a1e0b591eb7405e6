"""Bounded ``flock`` waits that say what they wait for and who holds the lock.

A lock file is held by one process at a time; the holder writes its process id into it, so a
process that has to wait can name the holder. A wait is told after `NOTICE_AFTER` seconds (a
line through the notice hook the command sets, `configure`) and ends in `ArtifactError` (exit
2) once the bound passes (`DEFAULT_TIMEOUT`, the ``lock_timeout`` setting). One process never
waits for a lock it holds itself: taking the same lock twice is refused at once.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cacher.errors import ArtifactError, UsageError

#: Seconds a lock is waited for by default (the ``lock_timeout`` setting changes it).
DEFAULT_TIMEOUT = 300.0
#: Seconds into a wait at which it is told.
NOTICE_AFTER = 2.0

_timeout = DEFAULT_TIMEOUT
_notice: Callable[[str], None] | None = None
_held: set[Path] = set()


def configure(timeout: float | None = None, notice: Callable[[str], None] | None = None) -> None:
    """Set the bound of every wait (seconds) and where a wait is told (the command's reporter)."""
    global _timeout, _notice
    if timeout is not None:
        if not math.isfinite(timeout) or timeout <= 0:
            raise UsageError(f"lock_timeout must be a positive number of seconds, not {timeout!r}")
        _timeout = float(timeout)
    _notice = notice


def holder(fd: int) -> str:
    """``process N`` as the lock file open on ``fd`` names its holder, or ``another process``."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"process {text}" if text.isdigit() else "another process"


@contextmanager
def hold(fd: int, path: Path, what: str, *, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on ``fd`` (the open lock file ``path``) for ``what``; with
    ``shared``, a shared one (readers of a file that is not a lock file: no pid is written).

    Waits at most the configured bound; a wait is told after `NOTICE_AFTER` seconds.
    """
    if not shared and path in _held:
        raise ArtifactError(f"cannot take the lock of {what} twice in one command (it would wait forever)")
    started = time.monotonic()
    deadline = started + _timeout
    told = False
    pause = 0.01
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            pass
        now = time.monotonic()
        if now >= deadline:
            raise ArtifactError(
                f"gave up after {_timeout:g} s waiting for the lock of {what}, held by {holder(fd)} ({path})",
                hint="raise lock_timeout (CACHER_LOCK_TIMEOUT), or end the process holding it",
            )
        if not told and now - started >= NOTICE_AFTER:
            told = True
            if _notice is not None:
                _notice(
                    f"waiting for the lock of {what}, held by {holder(fd)} "
                    f"(at most {_timeout:g} s; lock file {path})"
                )
        time.sleep(min(pause, max(deadline - now, 0.0)))
        pause = min(pause * 2, 0.25)
    if shared:
        yield
        return
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the pid only helps a waiter's message
    _held.add(path)
    try:
        yield
    finally:
        _held.discard(path)
