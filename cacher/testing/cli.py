"""The CLI harness of the kit: run the installed ``cacher`` the way a CI job does, isolated.

`cacher.testing.fixtures` turns these into the fixtures ``cacher_home``, ``cacher_env`` and
``cacher_cli``; a plugin's ``conftest.py`` may override ``cacher_env`` (asking for the kit's
own by the same name) to add its variables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CACHER", "CliRun", "assert_one_error_line", "clean_env", "make_runner"]

#: The installed ``cacher`` beside the running interpreter (the venv's).
CACHER = str(Path(sys.executable).parent / "cacher")


@dataclass
class CliRun:
    """One run of the real ``cacher`` command."""

    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def clean_env(home: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without CACHER_*, AWS_*, XDG_* and DOCKER_HOST; HOME and the XDG dirs
    under ``home``; the venv's bin first on PATH, so ``cacher`` and its tools are found; the
    AWS instance metadata service off."""
    source = os.environ if environ is None else environ
    base = {
        k: v
        for k, v in source.items()
        if not k.startswith(("CACHER_", "AWS_", "XDG_")) and k not in ("HOME", "DOCKER_HOST")
    }
    base.update(
        # With no credentials the AWS chain would ask the instance metadata service
        # (169.254.169.254): tests send traffic to loopback only.
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{source.get('PATH', '')}",
    )
    return base


def make_runner(env: Mapping[str, str], cwd: Path) -> Callable[..., CliRun]:
    """``run(*args, extra_env=None, cwd=None, timeout=120)``: the installed ``cacher`` with
    ``env``, no standard input, output captured."""

    def run(
        *args: str, extra_env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
    ) -> CliRun:
        proc = subprocess.run(
            [CACHER, *args],
            env={**env, **(extra_env or {})},
            cwd=cwd or default_cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return CliRun(proc.returncode, proc.stdout, proc.stderr)

    default_cwd = cwd
    return run


def assert_one_error_line(run: CliRun, *needles: str) -> None:
    """An expected error: exit 2, one ``cacher: error:`` line on stderr naming every needle,
    no traceback."""
    assert run.code == 2, str(run)
    lines = [line for line in run.err.splitlines() if not line.startswith("cacher: no configuration")]
    assert len(lines) == 1, str(run)
    assert lines[0].startswith("cacher: error: "), str(run)
    assert "Traceback" not in run.err
    for needle in needles:
        assert needle in lines[0], str(run)
