"""One run of an external program that a kind streams through (``docker save``, ``git bundle``).

Kinds that wrap a CLI all need the same care, so it lives here once: the child runs in its own
process group, so a kill also reaches what a wrapper script started; its stderr is drained by
a thread (the last 64 KiB kept for the message), so a chatty child can never block while bytes
stream through its stdout or stdin; on any exception (a dying sink, Ctrl-C, SIGTERM) the group
is killed and reaped, so no child outlives the transfer it was feeding.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import IO

from cacher.errors import ArtifactError, CacherError
from cacher.streams import Writable

__all__ = ["CHUNK", "PipedProcess", "last_line"]

CHUNK = 1 << 20
STDERR_KEEP = 64 << 10


def last_line(stderr: str, returncode: int) -> str:
    """The last non-empty line of ``stderr`` (trimmed to 300 characters), or how it exited."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if lines:
        return lines[-1][:300]
    return f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"


class PipedProcess:
    """``argv`` started with its stdin and/or stdout piped; use it as a context manager.

    ``missing`` is raised when the program does not exist (default: "cannot run ...");
    ``describe`` turns the child's stderr and exit status into the one-line reason of a failure.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stdin: int = subprocess.DEVNULL,
        stdout: int = subprocess.DEVNULL,
        env: Mapping[str, str] | None = None,
        what: str | None = None,
        missing: CacherError | None = None,
        describe: Callable[[str, int], str] = last_line,
    ) -> None:
        self.what = what or " ".join([os.path.basename(argv[0]), *argv[1:]])
        self._describe = describe
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=None if env is None else dict(env),
                process_group=0,
            )
        except FileNotFoundError as exc:
            if missing is not None:
                raise missing from None
            raise ArtifactError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        except OSError as exc:
            raise ArtifactError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        self._stderr = bytearray()
        self._drain = threading.Thread(target=self._read_stderr, name="piped-stderr", daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        fd = self.pipe(self.proc.stderr).fileno()
        while data := os.read(fd, 65536):
            self._stderr += data
            del self._stderr[:-STDERR_KEEP]

    @staticmethod
    def pipe(stream: IO[bytes] | None) -> IO[bytes]:
        """``proc.stdin`` or ``proc.stdout``, asserted to be piped."""
        assert stream is not None, "the pipe was asked for when the child was started"
        return stream

    def copy_to(self, sink: Writable, chunk: int = CHUNK) -> int:
        """Copy the child's stdout into ``sink`` until it ends; the number of bytes copied."""
        out = self.pipe(self.proc.stdout)
        total = 0
        while data := out.read(chunk):
            sink.write(data)
            total += len(data)
        return total

    def stderr_text(self) -> str:
        """What the child wrote on stderr (the last 64 KiB); complete once it was waited for."""
        return self._stderr.decode("utf-8", "replace")

    def message(self, returncode: int) -> str:
        """The one-line reason of a failure, from ``describe``."""
        return self._describe(self.stderr_text(), returncode)

    def finish(self, failure: str | None = None) -> None:
        """Close our end of stdin, wait, and raise with the child's own message if it failed."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass  # the exit status below tells what happened
        code = self.proc.wait()
        self._drain.join(10)
        if code != 0:
            raise ArtifactError(f"{failure or self.what + ' failed'}: {self.message(code)}")

    def __enter__(self) -> PipedProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None or self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group outlives a leader that exited
            except ProcessLookupError:
                pass  # nothing of it left
        self.proc.wait()
        self._drain.join(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass  # a broken stdin pipe cannot be flushed: the child is gone anyway
