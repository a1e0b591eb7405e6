"""Local files that appear whole or not at all: a temporary sibling, renamed into place.

The writer holds an ``flock`` on its temporary file while it lives (process ids mean nothing
across containers that share a volume), so a temporary nobody holds was left by a killed
writer: the next write of the same file removes it, and `stale_temporaries` finds them all.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from cacher.errors import UsageError

TEMP_MARK = ".cacher-tmp-"


@contextmanager
def atomic_write(dest: Path, *, fsync: bool = True, restore: bool = True) -> Iterator[BinaryIO]:
    """Yield a file beside ``dest``; rename it over ``dest`` only if the block succeeds.

    A restore (the default) never lands in cacher's own store or local tier
    (`cacher.fs.staging.check_restore_file`); only a store writing its own objects passes
    ``restore=False``.
    """
    parent = dest.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {dest}: the directory {parent} does not exist")
    if dest.is_dir():
        raise UsageError(f"cannot write {dest}: it is a directory")
    if restore:
        from cacher.fs.staging import check_restore_file

        check_restore_file(dest)
    remove_stale_siblings(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}{TEMP_MARK}", dir=parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours from birth: nobody else has it open
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except BaseException:
        with _quiet():
            os.unlink(tmp)
        raise


def _unheld(path: Path) -> bool:
    """True when no process holds an flock on ``path`` (a regular file, never followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def remove_if_unheld(path: Path) -> bool:
    """Remove ``path`` unless a living writer holds it; True when it was removed."""
    if not _unheld(path):
        return False
    with _quiet():
        os.unlink(path)
        return True
    return False


def remove_stale_siblings(dest: Path) -> list[Path]:
    """Remove temporaries of ``dest`` that killed writers left beside it; return them."""
    mark = f".{dest.name}{TEMP_MARK}"
    try:
        names = [
            e.name
            for e in os.scandir(dest.parent)
            if e.name.startswith(mark) and e.is_file(follow_symlinks=False)
        ]
    except OSError:
        return []
    return [dest.parent / n for n in names if remove_if_unheld(dest.parent / n)]


def stale_temporaries(root: Path) -> Iterator[tuple[Path, int]]:
    """Temporaries under ``root`` that no writer holds, with their sizes."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if TEMP_MARK in name and name.startswith("."):
                path = Path(dirpath) / name
                try:
                    size = path.lstat().st_size
                except OSError:
                    continue
                if _unheld(path):
                    yield path, size


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def _quiet() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass
