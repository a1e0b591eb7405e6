"""Removing a tree cacher put aside or staged, whatever its depth and modes.

`shutil.rmtree` recurses once per level (a tree deeper than Python's recursion limit, about
1,000 directories, cannot be removed) and its error hook cannot retry the descriptor-based
calls it makes, so a directory of mode 0000 stops it for any user but root. Here the walk is
a loop: one open descriptor at a time (a child is opened from its parent, the parent again
through the child's ``..``, never by path), every directory opened with ``O_NOFOLLOW`` (a
link in the tree is removed, never followed), and a directory that cannot be read or changed
is given its owner's ``rwx`` first (Go's module cache is 0555/0444).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(name: str, parent_fd: int) -> int:
    """Open directory ``name`` of ``parent_fd`` for listing and removing its entries, making
    it the owner's to read, enter and change when it was not."""
    try:
        fd = os.open(name, _DIR, dir_fd=parent_fd)
    except PermissionError:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
        if not stat.S_ISDIR(mode):
            raise
        os.chmod(name, stat.S_IMODE(mode) | stat.S_IRWXU, dir_fd=parent_fd)
        fd = os.open(name, _DIR, dir_fd=parent_fd)
    mode = os.fstat(fd).st_mode
    if mode & stat.S_IRWXU != stat.S_IRWXU:
        os.fchmod(fd, stat.S_IMODE(mode) | stat.S_IRWXU)
    return fd


def _is_dir(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything under it (a link or a file: that alone); gone already
    is fine."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        os.unlink(path)
        return
    parent_fd = os.open(path.parent, _DIR & ~os.O_NOFOLLOW)
    try:
        fd = _open_dir(path.name, parent_fd)
    except BaseException:
        os.close(parent_fd)
        raise
    os.close(parent_fd)
    pending: list[tuple[str, list[str]]] = [(path.name, os.listdir(fd))]  # per level: name, entries left
    try:
        while pending:
            name, entries = pending[-1]
            if entries:
                entry = entries.pop()
                try:
                    os.unlink(entry, dir_fd=fd)
                    continue
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.EISDIR, errno.EPERM) or not _is_dir(entry, fd):
                        raise
                child = _open_dir(entry, fd)
                os.close(fd)
                fd = child
                pending.append((entry, os.listdir(fd)))
                continue
            up = os.open("..", _DIR & ~os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = up
            pending.pop()
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
