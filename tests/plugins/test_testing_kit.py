"""The test kit (`cacher.testing`) as plugin authors meet it: one surface, a plugin they opt into.

Installing cacher must change nobody's test session: its fixtures load only for a suite that
asks (``pytest_plugins`` or ``-p``), and a plugin's suite needs nothing beyond what
``cacher.testing`` exports (tests/plugins/test_architecture.py holds plugin suites to that surface).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import cacher.testing

ROOT = Path(__file__).resolve().parents[2]
#: A test that needs the kit's fixtures: it passes only where the plugin was loaded.
NEEDS_THE_KIT = '''
def test_uses_the_kit(cacher_cli, cacher_home):
    run = cacher_cli("--version")
    assert run.code == 0, run
'''


def test_installing_cacher_registers_no_pytest_plugin() -> None:
    """Neither the installed distribution nor pyproject.toml names a ``pytest11`` entry point."""
    installed = importlib.metadata.distribution("ci-cacher").entry_points
    assert [ep for ep in installed if ep.group == "pytest11"] == []
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert "pytest11" not in declared


@pytest.mark.parametrize(
    ("opt_in", "conftest", "code"),
    [
        ([], "", 1),
        (["-p", "cacher.testing.fixtures"], "", 0),
        ([], 'pytest_plugins = ["cacher.testing.fixtures"]\n', 0),
    ],
    ids=["not-asked", "dash-p", "pytest_plugins"],
)
def test_the_fixtures_load_only_when_asked_for(
    tmp_path: Path, opt_in: list[str], conftest: str, code: int
) -> None:
    """A foreign project's suite has no ``cacher_cli`` unless it opts in, either way."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(conftest)
    (project / "test_foreign.py").write_text(NEEDS_THE_KIT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *opt_in, "test_foreign.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == code, proc.stdout + proc.stderr
    if code:
        assert "fixture 'cacher_cli' not found" in proc.stdout, proc.stdout


def test_the_kit_exports_what_it_names() -> None:
    """``__all__`` is the surface: every public name of the package, each one importable."""
    public = {
        name
        for name, value in vars(cacher.testing).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert sorted(cacher.testing.__all__) == sorted(public)
