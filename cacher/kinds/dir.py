"""The ``dir`` kind: a directory tree as a streamed, deterministic tar archive."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from cacher.plugin import (
    Kind,
    Option,
    Target,
    UsageError,
    Writable,
    check_restore_target,
    check_upload_tree,
    extract_tree,
    glob_regex,
    restore_lock,
    staged_directory,
    write_tree,
)


class DirKind(Kind):
    """Directory trees (dependency caches): tar in zstd by default, restored atomically."""

    summary = "Directory trees as streamed tar archives, restored atomically (DIR is replaced)."
    archive = True
    trees = True
    upload_target = Target("DIR", "The directory whose contents are archived.")
    download_target = Target("DIR", "The directory to replace with the restored tree.")
    options = (
        Option(
            "exclude",
            "Leave out what this glob matches, relative to DIR (** spans directories; several "
            "patterns one per line): '**/*.log', '.cache'. A restore replaces DIR whole.",
            verbs=("upload",),
        ),
    )

    def check_upload(self, targets: Sequence[str], options: Mapping[str, Any]) -> None:
        path = Path(targets[0])
        if not path.exists():
            raise UsageError(f"cannot upload {path}: no such directory")
        if not path.is_dir():
            raise UsageError(f"cannot upload {path}: not a directory")
        check_upload_tree(path)

    def check_download(self, target: str | None, options: Mapping[str, Any]) -> None:
        path = check_restore_target(target or "")  # before any I/O; staged_directory checks again
        if path.exists() and not path.is_dir():
            raise UsageError(f"cannot restore into {path}: it exists and is not a directory")

    def pack(self, targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
        with self._held(Path(targets[0]), options) as (root, skip):
            write_tree(root, sink, skip)

    def tree(
        self, targets: Sequence[str], options: Mapping[str, Any]
    ) -> AbstractContextManager[tuple[Path, Callable[[str, bool], bool] | None]]:
        return self._held(Path(targets[0]), options)

    @contextmanager
    def _held(
        self, root: Path, options: Mapping[str, Any]
    ) -> Iterator[tuple[Path, Callable[[str, bool], bool] | None]]:
        """The tree and its excludes, under the restore lock: a restore of the same directory
        swaps whole subtrees by rename, so reading while one runs would store a tree that never
        existed. Take turns."""
        patterns = [p.strip().strip("/") for p in (options.get("exclude") or "").splitlines() if p.strip()]
        excludes = [glob_regex(p) for p in patterns]
        skip = (lambda rel, _is_dir: any(r.fullmatch(rel) for r in excludes)) if excludes else None
        with restore_lock(Path(os.path.realpath(root))):
            yield root, skip

    def unpack(self, source: BinaryIO, target: str | None, options: Mapping[str, Any]) -> None:
        with staged_directory(target or "") as staging:
            extract_tree(source, staging)

    def staging(self, target: str | None, options: Mapping[str, Any]) -> AbstractContextManager[Path]:
        return staged_directory(target or "")
