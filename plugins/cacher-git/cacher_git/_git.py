"""Running the real ``git``: one place that starts it, cleans its environment and words its failures.

Every git call of the plugin goes through here, so that a missing binary, a failing command and
a killed pipeline all surface as one `cacher.errors.CacherError` line instead of a traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from cacher.errors import ArtifactError, CacherError
from cacher.streams import Writable

GIT = "git"
CHUNK = 1 << 20
_STDERR_KEEP = 64 * 1024
_NO_GIT = "git is not installed (or not on PATH)"
_NO_GIT_HINT = "install git 2.31 or newer"

# Variables that would point ``git -C PATH`` at some other repository (set inside git hooks, say).
# Commands that name their repository explicitly must not inherit them.
_REPO_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_SHALLOW_FILE",
    "GIT_GRAFT_FILE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_PREFIX",
)


def clean_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without the variables that override which repository git works on."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k not in _REPO_ENV}


def message(stderr: str, returncode: int) -> str:
    """One line out of git's stderr: its first ``fatal:``/``error:`` line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line[len(prefix) :]
    return lines[-1] if lines else f"exit status {returncode}"


def run(
    args: Sequence[str],
    *,
    what: str,
    error: type[CacherError] = ArtifactError,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``git ARGS`` to completion and return its stdout; raise ``error`` naming ``what`` failed."""
    proc = _call(args, cwd=cwd, env=env, error=error)
    if proc.returncode != 0:
        raise error(f"{what} failed: {message(proc.stderr, proc.returncode)}")
    return proc.stdout


def probe(
    args: Sequence[str], *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[bool, str]:
    """Run ``git ARGS`` as a question: (True, stdout) on success, else (False, git's one-line reason).

    ``env`` None means this process's environment without the repository-selecting variables.
    """
    proc = _call(args, cwd=cwd, env=env, error=ArtifactError)
    if proc.returncode != 0:
        return False, message(proc.stderr, proc.returncode)
    return True, proc.stdout


def _call(
    args: Sequence[str],
    *,
    cwd: str | Path | None,
    env: Mapping[str, str] | None,
    error: type[CacherError],
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [GIT, *args],
            cwd=cwd,
            env=clean_env() if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise error(_NO_GIT, hint=_NO_GIT_HINT) from None


def stream(args: Sequence[str], sink: Writable, *, what: str) -> None:
    """Copy the stdout of ``git ARGS`` into ``sink`` in 1 MiB chunks; raise if git fails.

    stderr is drained by a thread so a chatty git never blocks on a full pipe. git runs in its
    own process group: on any exception (a dying sink, Ctrl-C, SIGTERM) the group is killed and
    reaped, so that no ``git pack-objects`` outlives the upload it was feeding.
    """
    try:
        proc = subprocess.Popen(
            [GIT, *args],
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,
        )
    except FileNotFoundError:
        raise ArtifactError(_NO_GIT, hint=_NO_GIT_HINT) from None
    assert proc.stdout is not None and proc.stderr is not None
    drain = _Drain(proc.stderr)
    try:
        while chunk := proc.stdout.read(CHUNK):
            sink.write(chunk)
        returncode = proc.wait()
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        proc.stdout.close()
        drain.join()
    if returncode != 0:
        raise ArtifactError(f"{what} failed: {message(drain.text(), returncode)}")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class _Drain:
    """Reads a pipe to its end on a thread, keeping the last 64 KiB."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._data = bytearray()
        self._thread = threading.Thread(target=self._run, name="git-stderr", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        fd = self._pipe.fileno()
        while chunk := os.read(fd, 65536):
            self._data += chunk
            del self._data[:-_STDERR_KEEP]

    def join(self) -> None:
        self._thread.join()
        self._pipe.close()

    def text(self) -> str:
        return self._data.decode("utf-8", "replace")


def repository_at(path: Path) -> tuple[bool, str]:
    """Whether ``path`` itself is a repository (a work tree's top or a bare repository), and why not.

    ``git -C SUBDIR`` happily works on the repository above SUBDIR; a cache of "SUBDIR" that
    silently held its parent repository would surprise, so only the top counts.
    """
    ok, out = probe(["-C", str(path), "rev-parse", "--is-bare-repository", "--absolute-git-dir"])
    if not ok:
        return False, out
    real = os.path.realpath(path)
    bare, git_dir = [*out.splitlines(), "", ""][:2]
    if bare == "true":
        return (True, "") if os.path.realpath(git_dir) == real else (False, f"it is inside {git_dir}")
    ok, top = probe(["-C", str(path), "rev-parse", "--show-toplevel"])
    if not ok:
        return False, top
    top = top.strip()
    if os.path.realpath(top) != real:
        return False, f"it is a subdirectory of the repository {top}"
    return True, ""
