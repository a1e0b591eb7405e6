"""Test helpers: run the real git in an isolated environment, build repositories, picture them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from cacher.testing import CliRun, path_snapshot
from cacher.testing import assert_one_error_line as assert_one_error_line

#: One run of the installed ``cacher`` (the kit's `CliRun`).
Run = CliRun

# No system or user config can leak in; commits are reproducible.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_TERMINAL_PROMPT": "0",
}
REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")


def git(
    *args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None, check: bool = True
) -> str:
    """Run git (asserting success unless ``check`` is false) and return its stdout."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=dict(env if env is not None else os.environ),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0 or not check, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def commit(repo: Path, files: Mapping[str, bytes | str], message: str) -> str:
    """Write ``files`` into the work tree, commit them all, return the commit id."""
    for name, data in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
    git("-C", str(repo), "add", "-A")
    git("-C", str(repo), "commit", "--quiet", "-m", message)
    return git("-C", str(repo), "rev-parse", "HEAD").strip()


def make_repo(path: Path, *, branch: str = "main") -> Path:
    """A repository with history: three commits, a second branch, both kinds of tag,
    a remote-tracking ref with its symbolic HEAD, a symlink and an executable file."""
    git("init", "--quiet", "-b", branch, str(path))
    commit(path, {"src/a.txt": "a\n" * 2000, "data.bin": os.urandom(150_000)}, "one")
    commit(path, {"src/b.txt": "b\n" * 3000, "README": "hello\n"}, "two")
    git("-C", str(path), "branch", "feature")
    git("-C", str(path), "tag", "-a", "-m", "release", "v1")
    (path / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (path / "run.sh").chmod(0o755)
    (path / "link").symlink_to("src/a.txt")
    commit(path, {"src/a.txt": "a\n" * 2001}, "three")
    git("-C", str(path), "tag", "light")
    git("-C", str(path), "update-ref", "refs/remotes/origin/main", "HEAD~1")
    git("-C", str(path), "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    return path


def refs(repo: Path) -> dict[str, str]:
    """Every ref with its object id (and its target, for symbolic refs)."""
    out = git("-C", str(repo), "for-each-ref", "--format=%(refname) %(objectname) %(symref)")
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1].strip() for line in out.splitlines()}


def head(repo: Path) -> str:
    symbolic = subprocess.run(
        ["git", "-C", str(repo), "symbolic-ref", "-q", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return f"{symbolic} {git('-C', str(repo), 'rev-parse', 'HEAD').strip()}"


def objects(repo: Path) -> list[str]:
    """Every object id in the repository, loose or packed."""
    out = git("-C", str(repo), "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return sorted(out.split())


def object_count(repo: Path) -> int:
    """Objects stored (loose + in packs): the difference across a fetch is what it received."""
    fields = dict(line.split(": ", 1) for line in git("-C", str(repo), "count-objects", "-v").splitlines())
    return int(fields["count"]) + int(fields["in-pack"])


def repo_snapshot(path: Path | str | None) -> object:
    """Refs, HEAD, objects, status and the work tree (without .git): equal means the same repo."""
    if path is None or not Path(path).exists():
        return path_snapshot(path)
    root = Path(path)
    tree = path_snapshot(root)
    assert isinstance(tree, dict)
    files = {k: v for k, v in tree.items() if k != ".git" and not k.startswith(".git/")}
    return {
        "refs": refs(root),
        "head": head(root),
        "objects": objects(root),
        "status": git("-C", str(root), "status", "--porcelain", "--ignored"),
        "files": files,
    }


def stored_files(root: Path) -> list[str]:
    """Every file under the file backend's root (temporary uploads included)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
