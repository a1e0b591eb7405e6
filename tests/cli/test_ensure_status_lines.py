"""``ensure`` whose build command cannot start: the build's status (127, 126) is passed
through, and the line says so without ``error:``, which docs/cli.md keeps for exit 2
(issue 27, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["plain", "quiet"])
def test_a_missing_build_command_is_127_and_not_an_error_line(
    cacher, tmp_path: Path, quiet: list[str]
) -> None:
    out = tmp_path / "out"
    run = cacher("dir", "ensure", "e.tar.zst", str(out), *quiet, "--", "no-such-build-command-xyz", "arg")
    assert run.code == 127, run
    assert run.err.splitlines()[-1] == (
        "cacher: build command not found: no-such-build-command-xyz (exit 127, passed through); nothing stored"
    ), run
    assert "error:" not in run.err, run
    assert cacher("dir", "exists", "e.tar.zst").code == 1  # nothing published
    assert not out.exists()


def test_a_build_command_that_cannot_run_is_126_and_not_an_error_line(cacher, tmp_path: Path) -> None:
    script = tmp_path / "build.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)  # not executable
    out = tmp_path / "out"
    run = cacher("dir", "ensure", "e.tar.zst", str(out), "--", str(script))
    assert run.code == 126, run
    assert run.err.splitlines()[-1] == (
        f"cacher: cannot run the build command (Permission denied): {script} (exit 126, passed through); "
        "nothing stored"
    ), run
    assert "error:" not in run.err, run
    assert cacher("dir", "exists", "e.tar.zst").code == 1
    assert not out.exists()
