"""Shared fixtures: an isolated environment, the real `cacher` command, and the real parts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

VENV_BIN = Path(sys.executable).parent
CACHER = str(VENV_BIN / "cacher")
REQUIRE_PARTS = os.environ.get("CACHER_TEST_REQUIRE_PARTS") == "1"


def unavailable(reason: str) -> None:
    """Skip for a missing real part, or fail when CI requires every part."""
    if REQUIRE_PARTS:
        pytest.fail(f"required real part unavailable: {reason}")
    pytest.skip(reason)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / ".config").mkdir(parents=True)
    (h / ".cache").mkdir()
    return h


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """A clean environment: no CACHER_* or AWS_* variables, HOME and XDG dirs in tmp."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CACHER_", "AWS_", "XDG_")) and k not in ("HOME", "DOCKER_HOST")
    }
    base.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return base


@pytest.fixture
def cacher(env: dict[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run the installed `cacher` command; returns a Run with exit code and output."""

    def run(
        *args: str, extra_env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
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


@pytest.fixture
def local_root(home: Path) -> Path:
    """Where the default file backend keeps objects for the isolated HOME."""
    return home / ".cache" / "cacher"


def assert_one_error_line(run: Run, *needles: str) -> None:
    """Expected errors: exit 2, exactly one line on stderr, no traceback, naming the problem."""
    lines = [line for line in run.err.splitlines() if not line.startswith("cacher: no configuration")]
    assert len(lines) == 1, str(run)
    assert lines[0].startswith("cacher: error: "), str(run)
    assert "Traceback" not in run.err
    for needle in needles:
        assert needle in lines[0], str(run)


def tree_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def http(tmp_path: Path) -> Iterator[Any]:
    """A real HTTP server on loopback serving files from a temp dir, counting requests."""
    from tests.realparts.http_server import FileServer

    with FileServer(tmp_path / "www") as server:
        yield server
