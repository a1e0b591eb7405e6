"""``cacher git upload|download|exists`` through the real command, with the real git."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gitrepos import (
    Run,
    assert_one_error_line,
    commit,
    git,
    make_repo,
    refs,
    repo_snapshot,
    stored_files,
)

Cacher = Callable[..., Run]
KEY = "repo/project.bundle.zst"


def test_help_lists_the_kind(cacher: Cacher) -> None:
    run = cacher("--help")
    assert run.code == 0, str(run)
    assert "git" in run.out
    run = cacher("git", "download", "--help")
    assert run.code == 0, str(run)
    assert "--remote" in run.out


def test_round_trip_into_a_new_clone(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    up = cacher("git", "upload", KEY, str(repo))
    assert up.code == 0, str(up)
    assert stored_files(local_root) == [KEY]
    assert (local_root / KEY).read_bytes()[:4] == b"\x28\xb5\x2f\xfd", "not a zstd frame"
    assert cacher("git", "exists", KEY).code == 0

    dest = tmp_path / "deep" / "clone"
    down = cacher("git", "download", KEY, str(dest))
    assert down.code == 0, str(down)
    assert repo_snapshot(dest) == repo_snapshot(repo)
    assert (
        git("-C", str(dest), "symbolic-ref", "refs/remotes/origin/HEAD").strip() == "refs/remotes/origin/main"
    )
    assert git("-C", str(dest), "fsck", "--strict", "--no-dangling") == ""
    assert sorted(p.name for p in dest.parent.iterdir()) == ["clone"], "temporary files left behind"


def test_the_object_is_a_plain_git_bundle(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    """What cacher stores is readable without cacher: ``zstd -d`` gives a bundle git clones."""
    import zstandard

    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", KEY, str(repo)).code == 0
    bundle = tmp_path / "plain.bundle"
    with (local_root / KEY).open("rb") as f:
        bundle.write_bytes(zstandard.ZstdDecompressor().stream_reader(f).read())
    assert bundle.read_bytes().startswith(b"# v2 git bundle\n")
    git("clone", "--quiet", str(bundle), str(tmp_path / "plain"))
    assert git("-C", str(tmp_path / "plain"), "rev-parse", "HEAD") == git(
        "-C", str(repo), "rev-parse", "HEAD"
    )


def test_existing_key_is_skipped(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", KEY, str(repo)).code == 0
    before = (local_root / KEY).read_bytes()
    commit(repo, {"new": "x"}, "more")
    again = cacher("git", "upload", KEY, str(repo))
    assert again.code == 0, str(again)
    assert "skip" in again.err
    assert (local_root / KEY).read_bytes() == before


def test_update_of_an_existing_clone(cacher: Cacher, tmp_path: Path) -> None:
    """An existing repository keeps its branches, HEAD and work tree; the bundle's refs
    arrive under refs/bundles/, and stale ones there are pruned."""
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", "v1.bundle.zst", str(repo)).code == 0
    dest = tmp_path / "dest"
    assert cacher("git", "download", "v1.bundle.zst", str(dest)).code == 0
    git("-C", str(dest), "update-ref", "refs/bundles/heads/gone", "HEAD")
    (dest / "README").write_text("local edit\n")
    mine = {k: v for k, v in refs(dest).items() if not k.startswith("refs/bundles/")}
    head_before = git("-C", str(dest), "rev-parse", "HEAD")

    new = commit(repo, {"src/new.txt": "new\n"}, "four")
    git("-C", str(repo), "tag", "v2")
    assert cacher("git", "upload", "v2.bundle.zst", str(repo)).code == 0
    down = cacher("git", "download", "v2.bundle.zst", str(dest))
    assert down.code == 0, str(down)

    after = refs(dest)
    assert {k: v for k, v in after.items() if not k.startswith("refs/bundles/")} == mine
    assert git("-C", str(dest), "rev-parse", "HEAD") == head_before
    assert (dest / "README").read_text() == "local edit\n"
    bundled = {
        k.removeprefix("refs/bundles/"): v.split()[0]
        for k, v in after.items()
        if k.startswith("refs/bundles/")
    }
    assert bundled == {
        **{k.removeprefix("refs/"): v.split()[0] for k, v in refs(repo).items()},
        "HEAD": new,
    }
    assert git("-C", str(dest), "cat-file", "-t", f"{new}:src/new.txt").strip() == "blob"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_remote_option_records_origin(cacher: Cacher, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", KEY, str(repo)).code == 0
    dest = tmp_path / "dest"
    run = cacher("git", "download", KEY, str(dest), "--remote", "https://example.invalid/x.git")
    assert run.code == 0, str(run)
    assert git("-C", str(dest), "remote", "get-url", "origin").strip() == "https://example.invalid/x.git"
    assert (
        git("-C", str(dest), "config", "remote.origin.fetch").strip() == "+refs/heads/*:refs/remotes/origin/*"
    )
    # On an existing clone it replaces the URL.
    run = cacher("git", "download", KEY, str(dest), "--remote", "https://example.invalid/y.git")
    assert run.code == 0, str(run)
    assert git("-C", str(dest), "remote", "get-url", "origin").strip() == "https://example.invalid/y.git"


def test_empty_directory_becomes_a_clone(cacher: Cacher, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", KEY, str(repo)).code == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    run = cacher("git", "download", KEY, str(dest))
    assert run.code == 0, str(run)
    assert repo_snapshot(dest) == repo_snapshot(repo)


def test_upload_of_a_directory_that_is_not_a_repository(
    cacher: Cacher, tmp_path: Path, local_root: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "f").write_text("x")
    run = cacher("git", "upload", KEY, str(plain))
    assert_one_error_line(run, "not a git repository", str(plain))
    assert stored_files(local_root) == []


def test_upload_of_a_subdirectory_of_a_repository(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    """``git -C SUB`` would bundle the repository above; cacher refuses instead of surprising."""
    repo = make_repo(tmp_path / "repo")
    run = cacher("git", "upload", KEY, str(repo / "src"))
    assert_one_error_line(run, "subdirectory of the repository")
    assert stored_files(local_root) == []


def test_shallow_clone_is_refused(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    """A shallow clone's bundle lacks the parents of its oldest commits: it could never be
    restored, so it is not published."""
    repo = make_repo(tmp_path / "repo")
    shallow = tmp_path / "shallow"
    git("clone", "--quiet", "--depth", "1", repo.as_uri(), str(shallow))
    run = cacher("git", "upload", KEY, str(shallow))
    assert_one_error_line(run, "shallow clone", "--unshallow")
    assert stored_files(local_root) == []


def test_failing_git_bundle_publishes_nothing(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    """A repository without commits passes the checks, then ``git bundle create`` fails:
    its message is the error and nothing is stored."""
    empty = tmp_path / "empty"
    git("init", "--quiet", str(empty))
    run = cacher("git", "upload", KEY, str(empty))
    assert_one_error_line(run, "git bundle create", "empty bundle")
    assert stored_files(local_root) == []
    assert cacher("git", "exists", KEY).code == 1


def test_missing_repo_is_a_usage_error(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    run = cacher("git", "upload", KEY, str(tmp_path / "nope"))
    assert_one_error_line(run, "no such directory")
    assert stored_files(local_root) == []


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))


def test_corrupt_object_leaves_a_new_dest_absent(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", KEY, str(repo)).code == 0
    _corrupt(local_root / KEY)
    dest = tmp_path / "dest"
    run = cacher("git", "download", KEY, str(dest))
    assert_one_error_line(run, "corrupt")
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "repo"], "temporary files left behind"


def test_corrupt_object_leaves_an_existing_clone_untouched(
    cacher: Cacher, tmp_path: Path, local_root: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", "old.bundle.zst", str(repo)).code == 0
    dest = tmp_path / "dest"
    assert cacher("git", "download", "old.bundle.zst", str(dest)).code == 0
    commit(repo, {"more": "more\n"}, "four")
    assert cacher("git", "upload", KEY, str(repo)).code == 0
    _corrupt(local_root / KEY)
    before = repo_snapshot(dest)
    run = cacher("git", "download", KEY, str(dest))
    assert_one_error_line(run, "corrupt")
    assert repo_snapshot(dest) == before


def test_raw_bundle_damage_is_caught_by_git(cacher: Cacher, tmp_path: Path, local_root: Path) -> None:
    """With ``--codec none`` there is no frame checksum; git's pack checks refuse instead."""
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", "raw.bundle", str(repo), "--codec", "none").code == 0
    assert (local_root / "raw.bundle").read_bytes().startswith(b"# v2 git bundle\n")
    _corrupt(local_root / "raw.bundle")
    dest = tmp_path / "dest"
    run = cacher("git", "download", "raw.bundle", str(dest))
    assert_one_error_line(run, "git fetch from the bundle failed")
    assert not dest.exists()


def test_dest_that_is_not_a_repository_is_refused(cacher: Cacher, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert cacher("git", "upload", KEY, str(repo)).code == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "precious").write_text("keep me")
    run = cacher("git", "download", KEY, str(dest))
    assert_one_error_line(run, "neither empty nor a git repository")
    assert [p.name for p in dest.iterdir()] == ["precious"]
    assert (dest / "precious").read_text() == "keep me"


def test_dest_that_is_a_file_is_refused(cacher: Cacher, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.write_text("keep me")
    run = cacher("git", "download", KEY, str(dest))
    assert_one_error_line(run, "not a directory")
    assert dest.read_text() == "keep me"


def test_miss_exits_3_and_creates_nothing(cacher: Cacher, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    run = cacher("git", "download", KEY, str(dest))
    assert run.code == 3, str(run)
    assert not dest.exists()
