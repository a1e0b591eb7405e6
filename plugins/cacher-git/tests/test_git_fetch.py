"""After a download, ``git fetch`` from the real remote transfers only what is new.

The "remote" is a real bare repository served by git's own transport (``file://``, which runs
``git upload-pack`` and negotiates like any server). What a fetch received is the server's own
count (``remote: Total N``), not the growth of the local object store: objects the client
already had are stored only once, so a full re-transfer of a small history would look cheap.
The control case shows that the measure does see a full transfer.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from gitrepos import Run, commit, git, object_count, refs

Cacher = Callable[..., Run]


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare "server" repository with some history (a few hundred objects)."""
    work = tmp_path / "work"
    git("init", "--quiet", "-b", "main", str(work))
    for i in range(20):
        commit(work, {f"dir{i % 4}/file{i}.txt": f"{i}\n" * 500 + "x" * i}, f"c{i}")
    git("-C", str(work), "tag", "v1", "HEAD~15")
    bare = tmp_path / "origin.git"
    git("clone", "--quiet", "--bare", str(work), str(bare))
    return bare


def _push_one_commit(remote: Path, tmp_path: Path) -> str:
    """Add one commit (commit + root tree + blob: three new objects) to the remote."""
    pusher = tmp_path / "pusher"
    git("clone", "--quiet", str(remote), str(pusher))
    new = commit(pusher, {"NEW": "new\n"}, "new on the remote")
    git("-C", str(pusher), "push", "--quiet", "origin", "main")
    return new


def _fetch_counting(repo: Path, *source: str) -> int:
    """Fetch and return how many objects the remote sent (0 when it sent no pack)."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "fetch", "--progress", *source], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    sent = re.findall(r"remote: Total (\d+) ", proc.stderr)
    return int(sent[-1]) if sent else 0


def test_fetch_after_a_new_clone_gets_only_the_new_commit(
    cacher: Cacher, tmp_path: Path, remote: Path
) -> None:
    ci_checkout = tmp_path / "checkout"
    git("clone", "--quiet", remote.as_uri(), str(ci_checkout))
    assert cacher("git", "upload", "r.bundle.zst", str(ci_checkout)).code == 0

    dest = tmp_path / "dest"
    run = cacher("git", "download", "r.bundle.zst", str(dest), "--remote", remote.as_uri())
    assert run.code == 0, str(run)
    new = _push_one_commit(remote, tmp_path)

    assert _fetch_counting(dest, "origin") == 3
    assert git("-C", str(dest), "rev-parse", "origin/main").strip() == new
    assert git("-C", str(dest), "rev-parse", "origin/main") == git("-C", str(remote), "rev-parse", "main")

    # Control: the same fetch into a repository without the bundle receives everything.
    empty = tmp_path / "empty"
    git("init", "--quiet", str(empty))
    assert _fetch_counting(empty, remote.as_uri(), "+refs/heads/*:refs/remotes/origin/*") == object_count(
        remote
    )


def test_fetch_after_a_detached_ci_checkout(cacher: Cacher, tmp_path: Path, remote: Path) -> None:
    """GitLab-style checkouts have a detached HEAD and no local branch: only remote-tracking
    refs. ``git clone`` of such a bundle keeps none of them (measured: the next fetch then
    receives the whole history again); cacher keeps them all."""
    ci_checkout = tmp_path / "checkout"
    git("clone", "--quiet", remote.as_uri(), str(ci_checkout))
    git("-C", str(ci_checkout), "checkout", "--quiet", "--detach", "HEAD~1")
    git("-C", str(ci_checkout), "branch", "--quiet", "-D", "main")
    assert cacher("git", "upload", "r.bundle.zst", str(ci_checkout)).code == 0

    dest = tmp_path / "dest"
    assert cacher("git", "download", "r.bundle.zst", str(dest), "--remote", remote.as_uri()).code == 0
    assert git("-C", str(dest), "rev-parse", "HEAD") == git("-C", str(ci_checkout), "rev-parse", "HEAD")
    assert git("-C", str(dest), "symbolic-ref", "-q", "HEAD", check=False) == ""
    new = _push_one_commit(remote, tmp_path)

    assert _fetch_counting(dest, "origin") == 3
    assert git("-C", str(dest), "rev-parse", "origin/main").strip() == new

    # Control: ``git clone`` of the same bundle keeps only the tag, and the fetch resends
    # everything the tag does not reach, though all of it came in the bundle.
    git("-C", str(ci_checkout), "bundle", "create", "--quiet", str(tmp_path / "plain.bundle"), "--all")
    cloned = tmp_path / "cloned"
    git("-c", "advice.detachedHead=false", "clone", "--quiet", str(tmp_path / "plain.bundle"), str(cloned))
    assert list(refs(cloned)) == ["refs/tags/v1"]
    git("-C", str(cloned), "remote", "set-url", "origin", remote.as_uri())
    newer = git("-C", str(remote), "rev-list", "--objects", "main", "--not", "v1").splitlines()
    assert _fetch_counting(cloned, "origin") == len(newer) > 40


def test_fetch_after_updating_an_existing_repository(cacher: Cacher, tmp_path: Path, remote: Path) -> None:
    """refs/bundles/* count as "have"s in the negotiation, though they are not origin's refs."""
    ci_checkout = tmp_path / "checkout"
    git("clone", "--quiet", remote.as_uri(), str(ci_checkout))
    assert cacher("git", "upload", "r.bundle.zst", str(ci_checkout)).code == 0

    dest = tmp_path / "dest"
    git("init", "--quiet", str(dest))
    commit(dest, {"mine": "mine\n"}, "unrelated local work")
    assert cacher("git", "download", "r.bundle.zst", str(dest)).code == 0
    new = _push_one_commit(remote, tmp_path)

    assert _fetch_counting(dest, remote.as_uri(), "+refs/heads/*:refs/remotes/origin/*") == 3
    assert git("-C", str(dest), "rev-parse", "origin/main").strip() == new
