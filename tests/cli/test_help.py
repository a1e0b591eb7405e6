"""``cacher --help`` teaches: the flags that may come before a command, the exit codes, the
main variables and where the documentation is (issue 27, item 9)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cacher.cli import GLOBAL_FLAGS
from cacher.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def top_help(cacher) -> str:  # type: ignore[no-untyped-def]
    run = cacher("--help", extra_env={"COLUMNS": "100"})
    assert run.code == 0, run
    assert run.err == ""
    return " ".join(run.out.split())  # the console wraps lines: compare words


def test_help_lists_every_flag_that_may_come_before_the_command(top_help: str) -> None:
    assert "may come before the command" in top_help
    for flag in GLOBAL_FLAGS:
        assert re.search(rf"(^|[\s,(]){re.escape(flag)}\b", top_help), flag


def test_help_gives_the_exit_codes(top_help: str) -> None:
    assert f"{ExitCode.OK.value} ok" in top_help
    assert f"{ExitCode.MISS.value} miss for exists and delete" in top_help
    assert f"{ExitCode.ERROR.value} any error" in top_help
    assert f"{ExitCode.DOWNLOAD_MISS.value} download missed with no fallback" in top_help
    assert "ensure passes on its build command's status" in top_help
    assert f"{ExitCode.INTERRUPTED.value}/{ExitCode.TERMINATED.value} interrupted" in top_help


def test_help_names_main_variables_that_exist(top_help: str) -> None:
    """Each variable the help names is documented and read by the code: no name typed wrong."""
    named = set(re.findall(r"CACHER_[A-Z0-9_]+", top_help))
    assert {
        "CACHER_BUCKET",
        "CACHER_ENDPOINT",
        "CACHER_S3_KEY_ID",
        "CACHER_S3_SECRET",
        "CACHER_DEBUG",
    } <= named
    documented = (ROOT / "docs" / "configuration.md").read_text() + (ROOT / "docs" / "cli.md").read_text()
    code = "\n".join(p.read_text() for p in (ROOT / "cacher").rglob("*.py") if p.name != "app.py")
    for name in named:
        assert name in documented, name
        assert name in code or name.removeprefix("CACHER_").lower() in code, name


def test_help_points_to_documentation_that_exists(top_help: str) -> None:
    pages = re.findall(r"docs/[a-z_/]+\.md", top_help)
    assert pages, top_help
    for page in pages:
        assert (ROOT / page).is_file(), page


@pytest.mark.parametrize("command", [["dir"], ["dir", "upload"], ["upload"], ["key"], ["doctor"]])
def test_a_commands_help_has_no_top_level_epilogue(cacher, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    run = cacher(*command, "--help")
    assert run.code == 0, run
    assert "Exit codes" not in run.out
    assert "may come before the command" not in run.out
