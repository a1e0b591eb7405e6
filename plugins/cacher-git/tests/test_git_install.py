"""Installing the plugin is all it takes: a fresh environment has no ``git`` kind until the
distribution is installed, and then has it, with no change to cacher.

A throwaway virtualenv gets the core, then the plugin, both editable from this checkout, the
way a user installs them (``uv pip install``). Each ``cacher`` run has its own XDG_CACHE_HOME,
so stevedore's entry-point cache cannot answer from a stale listing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from cacher.testing import PartUnavailable, find_tool, require_part

# Captured at import, before the per-test isolation swaps HOME: uv keeps using its own cache.
_ORIGINAL_ENV = dict(os.environ)
PLUGIN = Path(__file__).resolve().parent.parent
_SPEC = importlib.util.find_spec("cacher")
assert _SPEC is not None and _SPEC.origin is not None
CORE = Path(_SPEC.origin).resolve().parent.parent
KIND_ROW = re.compile(r"^│ git\s", re.MULTILINE)


def _uv(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        uv = find_tool("uv")  # the venv's (./dev test installs it there), then PATH
    except PartUnavailable as exc:
        require_part(exc.reason)
    return subprocess.run([uv, *args], env=_ORIGINAL_ENV, capture_output=True, text=True, timeout=300)


def _install(venv: Path, project: Path) -> None:
    """``uv pip install -e``, from uv's cache when it can (offline), else from the registry."""
    proc = _uv("pip", "install", "-q", "-p", str(venv), "--offline", "-e", str(project))
    if proc.returncode != 0:
        proc = _uv("pip", "install", "-q", "-p", str(venv), "-e", str(project))
    assert proc.returncode == 0, proc.stderr


def _help(venv: Path, env: dict[str, str], tmp_path: Path, tag: str) -> str:
    cache = tmp_path / f"xdg-cache-{tag}"
    proc = subprocess.run(
        [str(venv / "bin" / "cacher"), "--help"],
        env={**env, "XDG_CACHE_HOME": str(cache), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cacher_lists_git_only_once_the_plugin_is_installed(tmp_path: Path, env: dict[str, str]) -> None:
    if not (CORE / "pyproject.toml").is_file():
        require_part(f"cacher is not installed from a source checkout ({CORE})")
    venv = tmp_path / "venv"
    made = _uv("venv", "-q", str(venv), "--python", sys.executable)
    assert made.returncode == 0, made.stderr

    _install(venv, CORE)
    before = _help(venv, env, tmp_path, "before")
    assert re.search(r"^│ dir\s", before, re.MULTILINE), before
    assert not KIND_ROW.search(before), before

    _install(venv, PLUGIN)
    after = _help(venv, env, tmp_path, "after")
    assert KIND_ROW.search(after), after
    plugins = subprocess.run(
        [str(venv / "bin" / "cacher"), "plugins"],
        env={**env, "XDG_CACHE_HOME": str(tmp_path / "xdg-cache-plugins")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plugins.returncode == 0, plugins.stderr
    assert re.search(r"git-tree\s+cacher-git\s", plugins.stdout), plugins.stdout
