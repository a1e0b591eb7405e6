"""Fixtures: an isolated environment and the real ``cacher`` command.

The conformance kit's fixtures (``cacher_store``, ``cacher_registry``, ``cacher_cli``, ...) are
a pytest plugin that loads only when asked for: ``pytest_plugins`` below opts in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepos import GIT_ENV, REPO_ENV, Run

pytest_plugins = ["cacher.testing.fixtures"]


@pytest.fixture
def cacher_env(cacher_env: dict[str, str]) -> dict[str, str]:
    """The kit's clean environment, without the repository-selecting GIT_* variables and with
    git's own configuration isolated, so neither the user's git config nor cacher's leaks in."""
    return {**{k: v for k, v in cacher_env.items() if k not in REPO_ENV}, **GIT_ENV}


@pytest.fixture
def home(cacher_home: Path) -> Path:
    return cacher_home


@pytest.fixture
def env(cacher_env: dict[str, str]) -> dict[str, str]:
    return cacher_env


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
def cacher(cacher_cli: Callable[..., Run]) -> Callable[..., Run]:
    """Run the installed ``cacher`` command (the kit's ``cacher_cli``)."""
    return cacher_cli
