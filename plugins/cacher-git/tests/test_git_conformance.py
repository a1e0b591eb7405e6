"""The git kind passes the same conformance kit as cacher's built-in kinds, on every store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cacher.testing import KindContract
from gitrepos import commit, git, make_repo, repo_snapshot


class TestGitKind(KindContract):
    kind_name = "git"
    key = "conformance/repo.bundle.zst"
    codec_name = "zstd"

    def make_artifact(self, tmp_path: Path) -> list[str]:
        return [str(make_repo(tmp_path / "repo"))]

    def snapshot(self, target: str | None) -> object:
        return repo_snapshot(target)

    def prepare_existing_target(self, target: str | None, targets: Sequence[str]) -> None:
        # An existing clone with work of its own: the update path must leave all of it alone.
        assert target is not None
        git("init", "--quiet", "-b", "main", target)
        commit(Path(target), {"precious": "keep me\n"}, "mine")
        (Path(target) / "uncommitted").write_text("also mine\n")


class TestGitKindRaw(TestGitKind):
    """No codec checksum to lean on: git's own pack checksum must refuse a damaged bundle."""

    key = "conformance/repo.bundle"
    codec_name = "none"
