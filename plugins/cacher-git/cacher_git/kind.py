"""The ``git`` kind: a repository's refs and objects as one streamed ``git bundle``.

``cacher git upload KEY REPO`` pipes ``git bundle create - --all`` into the store;
``cacher git download KEY DEST`` makes DEST an exact copy of REPO's refs (or, when DEST is
already a repository, adds the bundle's refs under ``refs/bundles/``). Either way a later
``git fetch`` from the real remote only transfers what is new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from cacher.plugin import Kind, Option, Target, UsageError, Writable

from cacher_git import _git
from cacher_git.restore import dest_state, restore


class GitKind(Kind):
    """Git repositories: all refs as a bundle (zstd by default), cloned or fetched on download."""

    summary = "Git repositories as streamed git bundles (all refs); download clones DEST or updates it."
    archive = True
    upload_target = Target("REPO", "The repository to bundle: its top directory or a bare repository.")
    download_target = Target(
        "DEST",
        "A new clone (absent or empty) or an existing repository, which gets the refs under refs/bundles/.",
    )
    options = (
        Option(
            "remote",
            "URL to record as DEST's origin, so that a later `git fetch` asks it for what is new.",
        ),
    )

    def check_upload(self, targets: Sequence[str], options: Mapping[str, Any]) -> None:
        repo = Path(targets[0])
        if not repo.is_dir():
            raise UsageError(f"cannot upload {repo}: no such directory")
        ok, why = _git.repository_at(repo)
        if not ok:
            raise UsageError(f"cannot upload {repo}: not a git repository ({why})")
        # A shallow clone bundles without the parents of its oldest commits (and git records no
        # prerequisite for them): the object would be published, then fail every restore.
        _, shallow = _git.probe(["-C", str(repo), "rev-parse", "--is-shallow-repository"])
        if shallow.strip() == "true":
            raise UsageError(
                f"cannot upload {repo}: it is a shallow clone, whose bundle could not be restored",
                hint="git fetch --unshallow first",
            )

    def check_download(self, target: str | None, options: Mapping[str, Any]) -> None:
        if not target:
            raise UsageError("cacher git download needs DEST")
        if options.get("remote") == "":
            raise UsageError("--remote needs a URL")
        dest_state(Path(target))  # raises UsageError for a DEST it must not touch

    def pack(self, targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
        # One delta-search thread: with several, which deltas win depends on timing, and the
        # same repository would bundle to different bytes on each run (measured: 5 runs gave
        # 5 digests with 2 threads, 1 digest with 1). Equal inputs must give equal bytes.
        repo = targets[0]
        args = ["-c", "pack.threads=1", "-C", repo, "bundle", "create", "--quiet", "-", "--all"]
        _git.stream(args, sink, what=f"git bundle create in {repo}")

    def unpack(self, source: BinaryIO, target: str | None, options: Mapping[str, Any]) -> None:
        restore(source, Path(target or ""), options.get("remote"))
