"""Fixtures: an isolated environment and the real ``cacher`` command.

The conformance kit's fixtures (``cacher_store``, ``cacher_registry``) need no declaration:
ci-cacher registers ``cacher.testing.fixtures`` as a pytest plugin (``pytest11`` entry point),
so they exist wherever cacher is installed. (Adding ``pytest_plugins = [...]`` for it here
as well would register the module twice, which pytest refuses.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepos import GIT_ENV, REPO_ENV, Run

VENV_BIN = Path(sys.executable).parent
CACHER = str(VENV_BIN / "cacher")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / ".config").mkdir(parents=True)
    (h / ".cache").mkdir()
    return h


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """A clean environment: no CACHER_*, AWS_*, XDG_* or repository-selecting GIT_* variables;
    HOME and the XDG dirs in tmp, so neither the user's git config nor cacher's can leak in."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CACHER_", "AWS_", "XDG_")) and k not in ("HOME", *REPO_ENV)
    }
    base.update(
        GIT_ENV,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return base


@pytest.fixture(autouse=True)
def _isolated(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process calls (the conformance kit runs the kind here) get the same isolated env."""
    for name in [*REPO_ENV, "CACHER_DEBUG"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def local_root(home: Path) -> Path:
    """Where the default file backend keeps objects for the isolated HOME."""
    return home / ".cache" / "cacher"


@pytest.fixture
def cacher(env: dict[str, str], tmp_path: Path) -> Callable[..., Run]:
    """Run the installed ``cacher`` command; returns a Run with exit code and output."""

    def run(
        *args: str, cwd: Path | None = None, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> Run:
        proc = subprocess.run(
            [CACHER, *args],
            env={**env, **(extra_env or {})},
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run
