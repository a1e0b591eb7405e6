"""Fixtures: an isolated environment and the real ``cacher`` command.

The conformance kit's fixtures (``cacher_store``, ``cacher_registry``) need no declaration:
ci-cacher registers ``cacher.testing.fixtures`` as a pytest plugin (``pytest11`` entry point),
so they exist wherever cacher is installed. (Adding ``pytest_plugins = [...]`` for it here
as well would register the module twice, which pytest refuses.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepos import GIT_ENV, REPO_ENV, Run


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
