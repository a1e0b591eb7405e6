"""``{git-tree:PATH}`` through ``cacher key`` and in process."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cacher.plugin import KeyContext, UsageError
from gitrepos import Run, assert_one_error_line, commit, git, make_repo

from cacher_git.keys import GitTreeKey

Cacher = Callable[..., Run]


def rev(repo: Path, spec: str) -> str:
    return git("-C", str(repo), "rev-parse", spec).strip()


def test_key_is_the_tree_id_of_a_directory(cacher: Cacher, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run = cacher("key", "src/{git-tree:src}.tar.zst", cwd=repo)
    assert run.code == 0, str(run)
    assert run.out == f"src/{rev(repo, 'HEAD:src')}.tar.zst\n"


def test_key_of_a_file_is_its_blob_id(cacher: Cacher, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run = cacher("key", "readme-{git-tree:README}", cwd=repo)
    assert run.code == 0, str(run)
    blob = git("hash-object", str(repo / "README")).strip()
    assert run.out.strip() == f"readme-{blob}"


@pytest.mark.parametrize("arg", [".", "./", "../src", "{abs}"])
def test_paths_are_relative_to_the_current_directory(cacher: Cacher, tmp_path: Path, arg: str) -> None:
    repo = make_repo(tmp_path / "repo")
    arg = arg.replace("{abs}", str(repo / "src"))
    run = cacher("key", f"k/{{git-tree:{arg}}}", cwd=repo / "src")
    assert run.code == 0, str(run)
    assert run.out.strip() == f"k/{rev(repo, 'HEAD:src')}"


def test_key_follows_commits_not_the_work_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    key = GitTreeKey()
    ctx = KeyContext(environ=dict(os.environ))
    monkeypatch.chdir(repo)
    first = key.render("src", ctx)
    (repo / "src" / "a.txt").write_text("edited\n")
    assert key.render("src", ctx) == first, "an uncommitted edit changed the key"
    commit(repo, {}, "edit")
    assert key.render("src", ctx) != first
    assert key.render("README", ctx) == rev(repo, "HEAD:README")


def test_untracked_path_is_a_usage_error(cacher: Cacher, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "scratch").write_text("not committed")
    run = cacher("key", "x/{git-tree:scratch}", cwd=repo)
    assert_one_error_line(run, "{git-tree:scratch}", "exists on disk, but not in 'HEAD'", "commit")
    assert run.out == ""


def test_missing_path_is_a_usage_error(cacher: Cacher, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run = cacher("key", "x/{git-tree:nope}", cwd=repo)
    assert_one_error_line(run, "{git-tree:nope}", "does not exist in 'HEAD'")
    assert run.out == ""


def test_outside_a_repository_is_a_usage_error(cacher: Cacher, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    run = cacher("key", "x/{git-tree:.}", cwd=outside, extra_env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert_one_error_line(run, "not a git repository", "inside the repository")
    assert run.out == ""


def test_missing_argument_is_a_usage_error(cacher: Cacher, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run = cacher("key", "x/{git-tree}", cwd=repo)
    assert_one_error_line(run, "needs a path")
    assert run.out == ""


def test_repository_without_commits(cacher: Cacher, tmp_path: Path) -> None:
    repo = tmp_path / "fresh"
    git("init", "--quiet", str(repo))
    run = cacher("key", "x/{git-tree:.}", cwd=repo)
    assert_one_error_line(run, "{git-tree:.}", "no commit yet")
    assert run.out == ""


def test_render_raises_usage_error_in_process(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs a path"):
        GitTreeKey().render(None, KeyContext())
