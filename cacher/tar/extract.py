"""Extracting a tar stream into a fresh directory, never writing outside it.

Symlinks are data: they are restored with whatever target the archive gives them, absolute or
pointing out of the tree, as GNU tar restores them (every Python venv and pnpm store has such
links). Safety comes from never *writing through* a link instead: every member is created
relative to an open descriptor of its parent directory, and every directory on the way is
opened from its own parent with ``O_NOFOLLOW | O_DIRECTORY``. A symlink in the way, made by
the archive or there before, makes that open fail, so no file, directory, hardlink or mode
change ever lands behind a link. Nothing resolves a path from the root by name, so this holds
whatever else creates files in the tree meanwhile.

Refused, with `ArtifactError`: absolute names, ``..`` segments, a member whose path goes
through a symlink or a file, hardlinks to anything but an earlier regular file of the archive,
a member replacing a directory, device nodes, FIFOs and sparse files. The stream is read by
`cacher.tar.stream`; every file is created by this module, so ``tarfile``'s ``data`` filter
CVEs do not apply. Directory modes and times are applied last, deepest first, so read-only
trees restore.

Directory descriptors are cached (a bounded LRU), so a file costs one ``openat`` in its
parent's descriptor, not one per path component.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

from cacher.errors import ArtifactError, ObjectRefused
from cacher.tar.stream import Member, TarStream

_CONTROL = re.compile(r"[\x00-\x1f]")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse(name: str, why: str) -> ObjectRefused:
    return ObjectRefused(f"refusing to restore archive member {name!r}: {why}")


def _clean_name(raw: str) -> str | None:
    """The member's path relative to the root, or None for the root itself."""
    name = raw
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refuse(raw, "absolute path")
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if name in ("", "."):
        return None
    parts = name.split("/")
    if ".." in parts:
        raise _refuse(raw, "'..' in its path")
    if _CONTROL.search(name):
        raise _refuse(raw, "control character in its path")
    if "" in parts or "." in parts:
        return "/".join(p for p in parts if p not in ("", "."))
    return name


class _Dirs:
    """Descriptors of directories under the root, each opened from its parent's descriptor
    without following a link; the most recently used ones stay open."""

    MAX_OPEN = 256

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.fds: OrderedDict[str, int] = OrderedDict()
        self.made: list[str] = []  # directories created on the way, in creation order

    def get(self, raw: str, rel: str) -> int:
        """The descriptor of directory ``rel`` ("" is the root), made 0700 where missing.

        A component that is a symlink or not a directory refuses member ``raw``. The
        descriptor is valid until the next call.
        """
        if not rel:
            return self.root_fd
        fd = self.fds.get(rel)
        if fd is not None:
            self.fds.move_to_end(rel)
            return fd
        missing = [rel]  # the uncached directories, deepest first
        parent = rel.rpartition("/")[0]
        while parent and parent not in self.fds:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        fd = self.fds[parent] if parent else self.root_fd
        if parent:
            self.fds.move_to_end(parent)
        for d in reversed(missing):
            fd = self._open(raw, fd, d)
            self.fds[d] = fd
            if len(self.fds) > self.MAX_OPEN:  # the oldest is never the one just opened
                os.close(self.fds.popitem(last=False)[1])
        return fd

    def _open(self, raw: str, parent_fd: int, rel: str) -> int:
        name = rel.rpartition("/")[2]
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise self._not_a_dir(raw, parent_fd, rel) from None
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        self.made.append(rel)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:  # replaced between the mkdir and the open: by whom?
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise self._not_a_dir(raw, parent_fd, rel) from None

    @staticmethod
    def _not_a_dir(raw: str, parent_fd: int, rel: str) -> ObjectRefused:
        try:
            st = os.stat(rel.rpartition("/")[2], dir_fd=parent_fd, follow_symlinks=False)
        except OSError:
            return _refuse(raw, f"its parent {rel!r} is not a directory")
        if stat.S_ISLNK(st.st_mode):
            return _refuse(raw, f"it would be written through the symlink {rel!r}")
        return _refuse(raw, f"its parent {rel!r} is not a directory")

    def close(self) -> None:
        while self.fds:
            os.close(self.fds.popitem()[1])


class _Extractor:
    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.dirs = _Dirs(root_fd)
        self.safe_dirs: set[str] = {""}  # real directories: never replaced by another member
        self.files: set[str] = set()  # regular files, the only valid hardlink targets
        self.made: set[str] = set()  # every file and link created, for `_clear`
        self.dir_attrs: dict[str, tuple[int, int]] = {}
        self.root_attrs: tuple[int, int] | None = None

    def _parent(self, raw: str, rel: str) -> tuple[int, str]:
        """The open parent directory of ``rel`` and the last component of its name."""
        parent, _, name = rel.rpartition("/")
        if parent not in self.safe_dirs:
            fd = self.dirs.get(raw, parent)
            for made in self.dirs.made:
                self.dir_attrs[made] = (0o755, -1)
            self.dirs.made.clear()
            while parent not in self.safe_dirs:
                self.safe_dirs.add(parent)
                parent = parent.rpartition("/")[0]
            return fd, name
        return self.dirs.get(raw, parent), name

    def _clear(self, raw: str, rel: str, dir_fd: int, name: str) -> None:
        """A later member replaces an earlier one of the same name (tar semantics).

        The root started empty, so only what this extractor made can be in the way: no lstat
        per member. Unlinking a name removes a link, never what it points to.
        """
        if rel in self.safe_dirs:
            raise _refuse(raw, "it would replace a directory")
        if rel in self.made:
            os.unlink(name, dir_fd=dir_fd)
            self.made.discard(rel)
            self.files.discard(rel)

    def member(self, stream: TarStream, info: Member) -> None:
        raw = info.name
        rel = _clean_name(raw)
        if rel is None:
            if info.isdir():
                self.root_attrs = (stat.S_IMODE(info.mode), int(info.mtime))
            return
        mode, mtime = stat.S_IMODE(info.mode) & 0o1777, int(info.mtime)
        if info.islnk():
            self._hardlink(raw, rel, info.linkname)
            return
        dir_fd, name = self._parent(raw, rel)
        if info.isdir():
            if rel not in self.safe_dirs:
                self._clear(raw, rel, dir_fd, name)
                os.mkdir(name, 0o700, dir_fd=dir_fd)
                self.safe_dirs.add(rel)
            self.dir_attrs[rel] = (mode, mtime)
        elif info.isreg():
            self._clear(raw, rel, dir_fd, name)
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                stream.copy_data(info, fd)
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
            self.files.add(rel)
            self.made.add(rel)
        elif info.issym():
            if not info.linkname:
                raise _refuse(raw, "symlink with an empty target")
            self._clear(raw, rel, dir_fd, name)
            os.symlink(info.linkname, name, dir_fd=dir_fd)
            self.made.add(rel)
            os.utime(name, (mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
        else:
            raise _refuse(raw, "device nodes, FIFOs and other special files are not restored")

    def _hardlink(self, raw: str, rel: str, linkname: str) -> None:
        first = _clean_name(linkname)
        if first is None or first not in self.files:
            raise _refuse(raw, f"hardlink to {linkname!r}, which is not an earlier file")
        src_fd, src_name = self._parent(raw, first)
        src_fd = os.dup(src_fd)  # looking up the link's own parent may close the cached one
        try:
            dir_fd, name = self._parent(raw, rel)
            self._clear(raw, rel, dir_fd, name)
            os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(src_fd)
        self.files.add(rel)
        self.made.add(rel)

    def finish(self) -> None:
        # Deepest first: a parent keeps its 0700 until every directory under it is done.
        for rel in sorted(self.dir_attrs, key=lambda r: r.count("/"), reverse=True):
            mode, mtime = self.dir_attrs[rel]
            fd = self.dirs.get(rel, rel)
            os.fchmod(fd, mode)
            if mtime >= 0:
                os.utime(fd, (mtime, mtime))
        if self.root_attrs is not None:
            mode, mtime = self.root_attrs
            os.fchmod(self.root_fd, mode | stat.S_IRWXU)
            os.utime(self.root_fd, (mtime, mtime))
        else:
            os.fchmod(self.root_fd, 0o755)

    def close(self) -> None:
        self.dirs.close()


def extract_tree(source: BinaryIO, root: Path) -> int:
    """Extract the tar stream in ``source`` into the empty directory ``root``.

    Reads ``source`` to its very end, so the codec's end-of-stream check has run before the
    caller puts ``root`` in place. Returns the number of members.
    """
    stream = TarStream(source)
    count = 0
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            extractor = _Extractor(root_fd)
            try:
                for info in stream:
                    extractor.member(stream, info)
                    count += 1
                stream.drain()
                extractor.finish()
            finally:
                extractor.close()
        finally:
            os.close(root_fd)
    except OSError as exc:
        raise ArtifactError(f"cannot restore into {root}: {exc.strerror or exc}") from None
    except (ValueError, OverflowError) as exc:  # NUL bytes in a link name, an absurd mtime...
        raise ObjectRefused(f"the stored archive has an invalid member: {exc}") from None
    finally:
        stream.close()
    return count
