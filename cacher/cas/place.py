"""Writing a manifest's tree straight into an empty directory, as the ``dir`` kind's tar
extractor (`cacher.tar.extract`) would from the same tree's tar stream, without the stream.

The result is the extractor's, entry for entry: files and links made with ``O_EXCL`` (a name
already there fails, nothing is replaced), modes masked to ``0o1777``, whole-second mtimes,
symlink texts as stored, hardlinks to earlier files, implied parents ``0755``, directory modes
and times applied last (each after everything under it, so read-only trees restore), the
root ``0755``. Nothing is written through a link: every name is created relative to an open
descriptor of its parent, every directory on the way opened from its own parent with
``O_NOFOLLOW | O_DIRECTORY``. The entries must have passed `cacher.cas.rules.check_tree`
(canonical depth-first order, clean paths, parents that are directories): the open
directories are then one stack along the current path, each opened once. ``blob(digest)``
must return checked bytes (`cacher.engine.cas_fetch.Blobs.get` does); a blob of the wrong
size fails here.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from cacher.cas.model import Entry
from cacher.errors import ArtifactError, IntegrityError, ObjectRefused

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse(path: str, why: str) -> ObjectRefused:
    return ObjectRefused(f"refusing to restore {path!r}: {why}")


class _Path:
    """Open descriptors of the directories from the root down to the current one; moving to
    another directory closes what is no longer on the way and opens (or, with ``create``,
    makes ``0700``) what is new, never following a link."""

    def __init__(self, root_fd: int, made: list[str] | None = None) -> None:
        self.stack: list[tuple[str, int]] = [("", root_fd)]
        self.made = made  # directories created on the way, in creation order

    def open(self, rel: str) -> int:
        """The descriptor of directory ``rel`` ("" is the root), valid until the next call."""
        while True:
            top = self.stack[-1][0]
            if top == rel:
                return self.stack[-1][1]
            if not top or rel.startswith(top + "/"):
                break
            os.close(self.stack.pop()[1])
        start = len(top) + 1 if top else 0
        for end in [i for i in range(start, len(rel)) if rel[i] == "/"] + [len(rel)]:
            self._enter(rel[:end])
        return self.stack[-1][1]

    def _enter(self, rel: str) -> None:
        parent_fd, name = self.stack[-1][1], rel.rpartition("/")[2]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if self.made is None:
                raise
            os.mkdir(name, 0o700, dir_fd=parent_fd)
            self.made.append(rel)
            fd = self._open_made(parent_fd, name, rel)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refuse(rel, "it is on the way to an entry and not a directory") from None
            raise
        self.stack.append((rel, fd))

    @staticmethod
    def _open_made(parent_fd: int, name: str, rel: str) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:  # replaced between the mkdir and the open: by whom?
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refuse(rel, "it was replaced while the tree was written") from None
            raise

    def close(self) -> None:
        while len(self.stack) > 1:
            os.close(self.stack.pop()[1])


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _modes_kept_by_umask() -> frozenset[int]:
    """The usual file modes a new file gets whole from ``open`` under this process's umask
    (read from /proc without setting it: another thread may be creating files), so most files
    need no ``fchmod``; none where the umask cannot be read."""
    try:
        with open("/proc/self/status", "rb") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith(b"Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return frozenset()
    return frozenset(m for m in (0o644, 0o755, 0o444, 0o555, 0o600, 0o700, 0o664, 0o775) if not m & umask)


def _place(root_fd: int, entries: Sequence[Entry], blob: Callable[[str], bytes]) -> None:
    made: list[str] = []  # every directory, in creation order: listed or implied
    attrs: dict[str, tuple[int, int]] = {}
    files: dict[str, None] = {}
    walk = _Path(root_fd, made)
    as_created = _modes_kept_by_umask()
    try:
        for entry in entries:
            parent, _, name = entry.path.rpartition("/")
            dir_fd = walk.open(parent)
            mode, mtime = entry.mode & 0o1777, entry.mtime
            if entry.type == "dir":
                os.mkdir(name, 0o700, dir_fd=dir_fd)
                made.append(entry.path)
                attrs[entry.path] = (mode, mtime)
            elif entry.type == "file":
                kept = mode not in as_created  # else made with its mode: the umask keeps it whole
                fd = os.open(name, _FILE_FLAGS, 0o600 if kept else mode, dir_fd=dir_fd)
                try:
                    for chunk in entry.chunks:
                        data = blob(chunk.digest)
                        if len(data) != chunk.size:
                            raise IntegrityError(f"blob {chunk.digest} of {entry.path!r} has the wrong size")
                        _write(fd, data)
                    if kept:
                        os.fchmod(fd, mode)
                    os.utime(fd, (mtime, mtime))
                finally:
                    os.close(fd)
                files[entry.path] = None
            elif entry.type == "symlink":
                os.symlink(entry.target, name, dir_fd=dir_fd)
                os.utime(name, (mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
            elif entry.type == "hardlink":
                _hardlink(root_fd, entry, files, dir_fd, name)
            else:
                raise _refuse(entry.path, f"unknown entry type {entry.type!r}")
        # Deepest last-made first: each directory after everything under it.
        for rel in reversed(made):
            mode, mtime = attrs.get(rel, (0o755, -1))
            fd = walk.open(rel)
            os.fchmod(fd, mode)
            if mtime >= 0:
                os.utime(fd, (mtime, mtime))
        os.fchmod(root_fd, 0o755)
    finally:
        walk.close()


def _hardlink(root_fd: int, entry: Entry, files: dict[str, None], dir_fd: int, name: str) -> None:
    """A hardlink to an earlier file of the tree, reached from the root without links."""
    if entry.target not in files:
        raise _refuse(entry.path, f"hardlink to {entry.target!r}, which is not an earlier file")
    src_parent, _, src_name = entry.target.rpartition("/")
    source = _Path(root_fd)
    try:
        src_fd = source.open(src_parent)
        os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    finally:
        source.close()
    files[entry.path] = None


def place_tree(entries: Sequence[Entry], blob: Callable[[str], bytes], root: Path) -> int:
    """Write the tree of ``entries`` (checked by `cacher.cas.rules.check_tree`) into the empty
    directory ``root``, file bytes from ``blob``; the number of entries."""
    try:
        root_fd = os.open(root, _DIR_FLAGS)
        try:
            if not stat.S_ISDIR(os.fstat(root_fd).st_mode):  # pragma: no cover - O_DIRECTORY
                raise ArtifactError(f"cannot restore into {root}: not a directory")
            _place(root_fd, entries, blob)
        finally:
            os.close(root_fd)
    except OSError as exc:
        raise ArtifactError(f"cannot restore into {root}: {exc.strerror or exc}") from None
    except (ValueError, OverflowError) as exc:  # NUL bytes in a link text, an absurd mtime...
        raise ObjectRefused(f"the stored manifest has an invalid entry: {exc}") from None
    return len(entries)
