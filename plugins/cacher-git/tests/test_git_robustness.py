"""What the conformance kit cannot see: git's failures, its child processes, byte-identical
bundles of a repository big enough for threaded delta search, and atomic updates."""

from __future__ import annotations

import io
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cacher.plugin import ArtifactError
from gitrepos import Run, assert_one_error_line, commit, git, make_repo, refs, repo_snapshot, stored_files

from cacher_git import _git
from cacher_git.kind import GitKind

Cacher = Callable[..., Run]


def test_pack_reports_gits_own_message(tmp_path: Path) -> None:
    """Past the checks (a repository removed meanwhile, say), git's stderr becomes the error."""
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ArtifactError, match=r"git bundle create in .* failed: Need a repository"):
        GitKind("git").pack([str(plain)], io.BytesIO(), {})


class _DyingSink:
    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        raise OSError("the store went away")


def test_a_failing_sink_kills_and_reaps_every_git_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    commit(repo, {"big.bin": os.urandom(4 << 20)}, "big")
    started: list[subprocess.Popen[Any]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(_git.subprocess, "Popen", recording_popen)
    sink = _DyingSink()
    with pytest.raises(OSError, match="the store went away"):
        GitKind("git").pack([str(repo)], sink, {})  # type: ignore[arg-type]
    assert sink.writes == 1
    [proc] = started
    assert proc.returncode is not None, "git was not reaped"
    # git ran in its own process group; nothing of it (pack-objects included) survives.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a git process outlived the failed upload")


def test_bundles_are_byte_identical_for_a_repository_with_many_deltas(tmp_path: Path) -> None:
    """Several delta-search threads make ``git bundle`` output vary from run to run; the kind
    pins one thread, so the bytes repeat."""
    repo = tmp_path / "repo"
    git("init", "--quiet", str(repo))
    for c in range(20):
        commit(
            repo,
            {f"f{i}.txt": "".join(f"{n}\n" for n in range(i * 300)) + f"{c}\n" for i in range(30)},
            f"c{c}",
        )
    # With 2 threads this repository gave 4 different bundles in 4 runs.
    kind = GitKind("git")
    digests = set()
    for _ in range(4):
        out = io.BytesIO()
        kind.pack([str(repo)], out, {})
        digests.add(out.getvalue())
    assert len(digests) == 1


def test_failed_update_moves_no_ref(cacher: Cacher, tmp_path: Path) -> None:
    """``git fetch --atomic``: one ref that cannot be written, and none of them move."""
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", "old.bundle.zst", str(repo)).code == 0
    dest = tmp_path / "dest"
    git("init", "--quiet", str(dest))
    commit(dest, {"mine": "mine\n"}, "mine")
    assert cacher("git", "download", "old.bundle.zst", str(dest)).code == 0
    git("-C", str(dest), "update-ref", "refs/bundles/heads/stale", "HEAD")

    commit(repo, {"more": "more\n"}, "four")
    git("-C", str(repo), "branch", "another")
    assert cacher("git", "upload", "new.bundle.zst", str(repo)).code == 0
    lock = dest / ".git" / "refs" / "bundles" / "heads" / "main.lock"
    lock.write_text("")
    before = refs(dest)
    run = cacher("git", "download", "new.bundle.zst", str(dest))
    assert_one_error_line(run, "git fetch from the bundle", "cannot lock ref")
    assert refs(dest) == before
    assert "refs/bundles/heads/stale" in before

    lock.unlink()
    assert cacher("git", "download", "new.bundle.zst", str(dest)).code == 0
    assert (
        refs(dest)["refs/bundles/heads/another"].split()[0]
        == git("-C", str(repo), "rev-parse", "another").strip()
    )
    assert "refs/bundles/heads/stale" not in refs(dest)


def test_missing_git_is_one_clear_error(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    no_git = tmp_path / "bin"
    no_git.mkdir()
    run = cacher("git", "upload", "k.bundle.zst", str(repo), extra_env={"PATH": str(no_git)})
    assert_one_error_line(run, "git is not installed")
    assert stored_files(local_root) == []
    run = cacher("key", "{git-tree:.}", cwd=repo, extra_env={"PATH": str(no_git)})
    assert_one_error_line(run, "git is not installed")
    assert run.out == ""


def test_repository_environment_variables_do_not_redirect_the_kind(cacher: Cacher, tmp_path: Path) -> None:
    """Inside a git hook GIT_DIR names the hook's repository; ``cacher git upload REPO`` must
    still bundle REPO."""
    repo = make_repo(tmp_path / "repo")
    other = tmp_path / "other"
    git("init", "--quiet", str(other))
    commit(other, {"x": "x"}, "other")
    run = cacher("git", "upload", "k.bundle.zst", str(repo), extra_env={"GIT_DIR": str(other / ".git")})
    assert run.code == 0, str(run)
    dest = tmp_path / "dest"
    assert cacher("git", "download", "k.bundle.zst", str(dest)).code == 0
    assert repo_snapshot(dest) == repo_snapshot(repo)
