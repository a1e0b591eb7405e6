"""``key --hash-from GLOB``: the files a glob matches, in byte order, are the inputs; an
argument that exists stays a path, so no existing key changes (issue 27, item 11)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_one_error_line

# The shell equivalent docs/keys.md gives for a glob (two or more matches), run for real.
DOC_SHELL = (
    "find -L . -type f -name package-lock.json -print0 | LC_ALL=C sort -z"
    " | xargs -0 sha256sum | cut -d' ' -f1 | sha256sum | cut -c1-16"
)


def _sh(cmd: str, cwd: Path) -> str:
    return subprocess.run(
        ["bash", "-c", cmd], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    """Lock files at the top, nested, under a hidden directory, and in names that sort
    differently bytewise (``B`` < ``a`` < ``a-b`` < ``a/``) than in a locale."""
    root = tmp_path / "repo"
    for i, rel in enumerate(
        [
            "package-lock.json",
            "a/package-lock.json",
            "a-b/package-lock.json",
            "B/x/package-lock.json",
            ".hidden/package-lock.json",
            "a/deep/er/package-lock.json",
        ]
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"lock {i}\n")
    (root / "a" / "package.json").write_text("{}")  # not matched
    (root / "dir" / "package-lock.json").mkdir(parents=True)  # a directory: skipped
    return root


def test_a_glob_hashes_its_files_as_the_documented_shell_line(cacher, monorepo: Path) -> None:
    run = cacher("key", "npm/{hash}", "--hash-from", "**/package-lock.json", cwd=monorepo)
    assert run.code == 0, run
    assert run.out.strip() == "npm/" + _sh(DOC_SHELL, monorepo)


def test_the_shell_line_is_the_one_on_docs_keys_md() -> None:
    page = (Path(__file__).parents[2] / "docs" / "keys.md").read_text()
    assert DOC_SHELL in " ".join(line.strip() for line in page.splitlines())


def test_a_glob_is_its_matches_given_one_by_one_in_byte_order(cacher, monorepo: Path) -> None:
    order = [".hidden/", "B/x/", "a-b/", "a/deep/er/", "a/", ""]  # bytewise: '.' < 'B' < 'a', '-' < '/' < 'p'
    by_hand = [f"--hash-from={d}package-lock.json" for d in order]
    globbed = cacher("key", "k-{hash}", "--hash-from", "**/package-lock.json", cwd=monorepo)
    named = cacher("key", "k-{hash}", *by_hand, cwd=monorepo)
    assert globbed.code == named.code == 0, (globbed, named)
    assert globbed.out == named.out


def test_one_match_is_that_file_and_globs_mix_with_paths(cacher, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "go.sum").write_text("sum\n")
    (tmp_path / "go.mod").write_text("mod\n")
    one = cacher("key", "{hash}", "--hash-from", "*/go.sum", cwd=tmp_path)
    assert one.code == 0, one
    assert one.out.strip() == _sh("sha256sum sub/go.sum | cut -c1-16", tmp_path)
    mixed = cacher("key", "{hash}", "--hash-from", "go.mod", "--hash-from", "s*/*.sum", cwd=tmp_path)
    assert mixed.code == 0, mixed
    expected = _sh(
        "{ sha256sum < go.mod | cut -d' ' -f1; sha256sum < sub/go.sum | cut -d' ' -f1; }"
        " | sha256sum | cut -c1-16",
        tmp_path,
    )
    assert mixed.out.strip() == expected


def test_an_existing_name_with_glob_characters_stays_a_path(cacher, tmp_path: Path) -> None:
    """``[id].js`` exists: it is hashed itself, not read as the class ``i``/``d`` (which also exists)."""
    (tmp_path / "[id].js").write_text("route\n")
    (tmp_path / "i.js").write_text("other\n")
    run = cacher("key", "{hash}", "--hash-from", "[id].js", cwd=tmp_path)
    assert run.code == 0, run
    assert run.out.strip() == _sh("sha256sum '[id].js' | cut -c1-16", tmp_path)


@pytest.mark.parametrize("pattern", ["**/package-lock.json", "nope/*.lock", "dir*"])
def test_a_glob_matching_no_file_is_exit_2_one_line(cacher, tmp_path: Path, pattern: str) -> None:
    (tmp_path / "dir").mkdir()  # 'dir*' matches only a directory: no file
    run = cacher("key", "npm/{hash}", "--hash-from", pattern, cwd=tmp_path)
    assert run.code == 2, run
    assert run.out == ""
    assert_one_error_line(run, pattern, "matches no file")
