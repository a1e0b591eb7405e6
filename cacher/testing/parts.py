"""The life cycle every real part of the test suite shares, and its errors.

A part is a real server on loopback (SeaweedFS, dockerd, a docker registry, an HTTP server, a
proxy). `Part` gives them one shape: ``start()`` returns the running part, ``stop()`` stops it
and can be called again, ``cleanup()`` stops it and removes what it made, and ``with part:``
starts it and cleans up. `ProcessPart` adds what the parts that are programs share: the
process, its log file, SIGTERM-then-SIGKILL on stop, and clean-up at interpreter exit.
"""

from __future__ import annotations

import abc
import functools
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from cacher.testing._proc import cleanup_at_exit, log_tail, stop_process

__all__ = ["Part", "PartStartError", "PartUnavailable", "ProcessPart"]


class PartUnavailable(Exception):
    """A real part cannot run on this machine (program not installed, not root, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PartStartError(RuntimeError):
    """A real part is installed but did not come up; the message carries its log tail."""


class Part(abc.ABC):
    """A real server for tests: start, stop, clean up, and a context manager doing all three."""

    @abc.abstractmethod
    def start(self) -> Self:
        """Start and wait until the part answers; return it."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop it; stopping a stopped part does nothing."""

    def cleanup(self) -> None:
        """Stop, and remove what the part created (its temp dirs)."""
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the part's log, for failure messages ('' for parts without one)."""
        return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


class ProcessPart(Part):
    """A part that is a program: ``proc`` and ``log_path`` set by ``start()``; ``root`` its
    directory, removed by `cleanup` when the part made it (``own_dir``)."""

    #: Seconds between SIGTERM and SIGKILL when stopping.
    grace: ClassVar[float] = 3.0

    proc: subprocess.Popen[bytes] | None
    root: Path
    log_path: Path

    def _adopt(self, root: Path, own_dir: bool) -> None:
        """Call from ``__init__``: remember the directory and clean up at interpreter exit."""
        self.root, self._own_dir, self.proc = root, own_dir, None
        self._cancel_exit_cleanup = cleanup_at_exit(functools.partial(self.cleanup, grace=0))

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM, wait ``grace`` s (the class's default when None), SIGKILL, reap."""
        proc, self.proc = self.proc, None
        stop_process(proc, self.grace if grace is None else grace)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self, grace: float | None = None) -> None:
        self.stop(grace)
        self._cancel_exit_cleanup()
        self._remove_own_files()
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    def _remove_own_files(self) -> None:
        """What a part leaves outside ``root`` (SeaweedFS's sockets): removed by `cleanup`."""

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()
