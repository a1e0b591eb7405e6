"""Directory restores that replace the target whole or not at all.

A kind builds the new tree in a staging directory beside the target (same filesystem), then
`swap_into_place` renames it over the target. On any failure the staging directory is removed
and the target is exactly as it was.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cacher.errors import ArtifactError

STAGING_MARK = ".cacher-staging-"
OLD_MARK = ".cacher-old-"


def force_rmtree(path: Path) -> None:
    """Remove a tree even where it is read-only (Go's module cache is 0555/0444)."""

    def make_writable_and_retry(func, target, _exc):  # type: ignore[no-untyped-def]
        parent = os.path.dirname(target)
        for p in (parent, target):
            try:
                mode = os.lstat(p).st_mode
                if stat.S_ISDIR(mode):
                    os.chmod(p, stat.S_IMODE(mode) | stat.S_IRWXU)
            except OSError:
                pass
        func(target)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IRWXU)
        shutil.rmtree(path, onerror=make_writable_and_retry)


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``target``; swap it in if the block succeeds."""
    target = Path(os.path.abspath(target))
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"cannot restore into {target}: it exists and is not a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING_MARK}", dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; a restored tree is not private
    except OSError as exc:
        raise ArtifactError(f"cannot create a staging directory beside {target}: {exc.strerror}") from None
    try:
        yield staging
        swap_into_place(staging, target)
    except BaseException:
        force_rmtree(staging)
        raise


def swap_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing target is moved aside, then removed."""
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mktemp(prefix=f".{target.name}{OLD_MARK}", dir=target.parent))
        try:
            os.rename(target, old)
        except OSError as exc:
            why = exc.strerror
            if exc.errno in (errno.EBUSY, errno.EXDEV, errno.EPERM):
                why = f"{why}; it may be a mount point: restore into a directory below it"
            raise ArtifactError(f"cannot replace {target}: {why}") from None
    try:
        os.rename(staging, target)
    except OSError as exc:
        if old is not None:
            os.rename(old, target)
        raise ArtifactError(f"cannot move the restored tree into {target}: {exc.strerror}") from None
    if old is not None:
        force_rmtree(old)
