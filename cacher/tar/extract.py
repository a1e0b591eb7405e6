"""Extracting a tar stream into a fresh directory, refusing anything that could escape it.

Refused, with `ArtifactError`: absolute names, ``..`` segments, symlinks whose target is
absolute or leaves the tree, hardlinks to anything but an earlier regular file of the archive,
writes through a symlink, device nodes, FIFOs and sparse files. The stream is read by
`cacher.tar.stream`; every file is created by this module, so ``tarfile``'s ``data``
filter CVEs do not apply.
Directory modes and times are applied last, so read-only trees restore.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from pathlib import Path
from typing import BinaryIO

from cacher.errors import ArtifactError
from cacher.tar.stream import Member, TarStream

_CONTROL = re.compile(r"[\x00-\x1f]")


def _refuse(name: str, why: str) -> ArtifactError:
    return ArtifactError(f"refusing to restore archive member {name!r}: {why}")


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


def _inside(rel_dir: str, target: str) -> bool:
    """Whether ``target`` (relative to ``rel_dir``) stays inside the root."""
    joined = posixpath.normpath(posixpath.join(rel_dir, target))
    return not (joined == ".." or joined.startswith("../") or joined.startswith("/"))


class _Extractor:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.safe_dirs: set[str] = {""}
        self.files: set[str] = set()
        self.made: set[str] = set()  # every file and link created, for `_clear`
        self.dir_attrs: dict[str, tuple[int, int]] = {}
        self.root_attrs: tuple[int, int] | None = None
        self.links: list[tuple[str, str]] = []

    def _path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def _ensure_parent(self, raw: str, rel: str) -> None:
        parent = rel.rpartition("/")[0]
        missing = []
        while parent not in self.safe_dirs:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for d in reversed(missing):
            path = self._path(d)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o700)
                self.dir_attrs[d] = (0o755, -1)
            else:
                if not stat.S_ISDIR(st.st_mode):
                    raise _refuse(raw, f"its parent {d!r} is not a directory (a symlink?)")
            self.safe_dirs.add(d)

    def _clear(self, raw: str, rel: str) -> None:
        """A later member replaces an earlier one of the same name (tar semantics).

        The root started empty, so only what this extractor made can be in the way: no lstat
        per member.
        """
        if rel in self.safe_dirs:
            raise _refuse(raw, "it would replace a directory")
        if rel in self.made:
            os.unlink(self._path(rel))
            self.made.discard(rel)
            self.files.discard(rel)

    def member(self, stream: TarStream, info: Member) -> None:
        raw = info.name
        rel = _clean_name(raw)
        if rel is None:
            if info.isdir():
                self.root_attrs = (stat.S_IMODE(info.mode), int(info.mtime))
            return
        self._ensure_parent(raw, rel)
        path = self._path(rel)
        mode, mtime = stat.S_IMODE(info.mode) & 0o1777, int(info.mtime)
        if info.isdir():
            if rel not in self.safe_dirs:
                self._clear(raw, rel)
                os.mkdir(path, 0o700)
                self.safe_dirs.add(rel)
            self.dir_attrs[rel] = (mode, mtime)
        elif info.isreg():
            self._clear(raw, rel)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                stream.copy_data(info, fd)
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
            self.files.add(rel)
            self.made.add(rel)
        elif info.issym():
            target = info.linkname
            if target.startswith("/"):
                raise _refuse(raw, f"symlink to an absolute path {target!r}")
            if not _inside(rel.rpartition("/")[0], target):
                raise _refuse(raw, f"symlink {target!r} points outside the directory")
            self._clear(raw, rel)
            os.symlink(target, path)
            self.made.add(rel)
            self.links.append((raw, rel))
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        elif info.islnk():
            first = _clean_name(info.linkname)
            if first is None or first not in self.files:
                raise _refuse(raw, f"hardlink to {info.linkname!r}, which is not an earlier file")
            self._clear(raw, rel)
            os.link(self._path(first), path, follow_symlinks=False)
            self.files.add(rel)
            self.made.add(rel)
        else:
            raise _refuse(raw, "device nodes, FIFOs and other special files are not restored")

    def finish(self) -> None:
        # Each link target was checked on its own, but ".." after another link in the tree
        # ("s -> x/y/.." with "x/y -> ..") only shows once the tree is complete.
        top = os.path.realpath(self.root)
        for raw, rel in self.links:
            real = os.path.realpath(self._path(rel))
            if real != top and not real.startswith(top + os.sep):
                raise _refuse(raw, "symlink resolves to a path outside the directory")
        for rel, (mode, mtime) in self.dir_attrs.items():
            path = self._path(rel)
            os.chmod(path, mode)
            if mtime >= 0:
                os.utime(path, (mtime, mtime))
        if self.root_attrs is not None:
            mode, mtime = self.root_attrs
            os.chmod(self.root, mode | stat.S_IRWXU)
            os.utime(self.root, (mtime, mtime))
        else:
            os.chmod(self.root, 0o755)


def extract_tree(source: BinaryIO, root: Path) -> int:
    """Extract the tar stream in ``source`` into the empty directory ``root``.

    Reads ``source`` to its very end, so the codec's end-of-stream check has run before the
    caller puts ``root`` in place. Returns the number of members.
    """
    extractor = _Extractor(root)
    stream = TarStream(source)
    count = 0
    try:
        for info in stream:
            extractor.member(stream, info)
            count += 1
        stream.drain()
        extractor.finish()
    except OSError as exc:
        raise ArtifactError(f"cannot restore into {root}: {exc.strerror or exc}") from None
    except (ValueError, OverflowError) as exc:  # NUL bytes in a link name, an absurd mtime...
        raise ArtifactError(f"the stored archive has an invalid member: {exc}") from None
    finally:
        stream.close()
    return count
