"""Running the real ``git``: one place that starts it, cleans its environment and words its failures.

Every git call of the plugin goes through here, so that a missing binary, a failing command and
a killed pipeline all surface as one `cacher.errors.CacherError` line instead of a traceback.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from cacher.plugin import ArtifactError, CacherError, PipedProcess, Writable

GIT = "git"
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

    `PipedProcess` drains stderr on a thread and kills git's process group on any exception,
    so no ``git pack-objects`` outlives the upload it was feeding.
    """
    missing = ArtifactError(_NO_GIT, hint=_NO_GIT_HINT)
    with PipedProcess(
        [GIT, *args], stdout=subprocess.PIPE, env=clean_env(), what=what, missing=missing, describe=message
    ) as git:
        git.copy_to(sink)
        git.finish()


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
