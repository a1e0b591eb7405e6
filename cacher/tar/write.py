"""A deterministic tar stream of a directory tree, written without a temporary file.

Entries are sorted, owners are normalised to 0/0 with empty names, mtimes are whole seconds:
the same tree gives the same bytes. Hardlinks inside the tree stay hardlinks; symlinks stay
symlinks; the format is POSIX pax, which GNU tar reads, byte for byte what Python's
``tarfile`` writes for the same members (`cacher.tar.header` builds the headers).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from cacher.errors import ArtifactError
from cacher.streams import Writable
from cacher.tar import header as tarheader

COPY_BUFSIZE = 1 << 20
_SMALL = 256 << 10  # file data below this is gathered with the headers


class _Batcher:
    """Gathers headers and small files into 1 MiB writes: the codec and the store see few calls."""

    def __init__(self, sink: Writable) -> None:
        self.sink = sink
        self.buf = bytearray()
        self.offset = 0

    def write(self, data: bytes) -> None:
        self.buf += data
        self.offset += len(data)
        if len(self.buf) >= COPY_BUFSIZE:
            self.flush()

    def write_through(self, data: bytes) -> None:
        """A large piece goes to the sink as it is, after what was gathered."""
        self.flush()
        self.offset += len(data)
        self.sink.write(data)

    def flush(self) -> None:
        if self.buf:
            # Handed over, not copied: a sink may keep the object, so it is never reused.
            data, self.buf = self.buf, bytearray()
            self.sink.write(cast(bytes, data))  # any writer takes a bytearray


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: os.fsencode(e.name))
    except FileNotFoundError:
        raise ArtifactError(f"{directory} vanished while the tree was archived") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read directory {directory}: {exc.strerror}") from None


def _ordered(root: Path, skip: Callable[[str, bool], bool] | None = None) -> list[str]:
    """Relative paths under root, depth first, each directory followed by its sorted contents.

    ``skip(relative_path, is_dir)`` drops an entry (a directory with everything under it).
    """
    out: list[str] = []
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", iter(_entries(root)))]
    while stack:
        rel, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        path = f"{rel}/{entry.name}" if rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        if skip is not None and skip(path, is_dir):
            continue
        out.append(path)
        if is_dir:
            stack.append((path, iter(_entries(root / path))))
    return out


def write_tree(root: Path, sink: Writable, skip: Callable[[str, bool], bool] | None = None) -> int:
    """Write root's contents as a tar stream to ``sink``; return the number of entries.

    ``skip(relative_path, is_dir)`` leaves an entry out (a directory with all it holds).
    """
    writer = TarWriter(sink)
    writer.add_tree(root, skip=skip)
    return writer.close()


class TarWriter:
    """A tar stream of several trees, files and generated members, each under its own name.

    `write_tree` is one `add_tree` and `close`; kinds that archive several paths (``paths``)
    add each under a name prefix. Only the archive is ended: the sink stays open.
    """

    def __init__(self, sink: Writable) -> None:
        self.out = _Batcher(sink)
        self.count = 0
        self.inodes: dict[tuple[int, int], str] = {}

    def add_bytes(self, name: str, data: bytes, *, mode: int = 0o644, mtime: int = 0) -> None:
        """A regular file member holding ``data`` (a manifest, say)."""
        self.out.write(tarheader.pax_header(name, tarheader.REGTYPE, mode, len(data), mtime, ""))
        if len(data) >= _SMALL:
            self.out.write_through(data)
        else:
            self.out.write(data)
        self.out.write(tarheader.padding(len(data)))
        self.count += 1

    def add_path(self, path: Path, name: str) -> None:
        """One file, directory (the entry alone, not its contents) or symlink, as ``name``."""
        self._add(str(path), name.rstrip("/"))

    def add_tree(
        self, root: Path, prefix: str = "", skip: Callable[[str, bool], bool] | None = None
    ) -> None:
        """Root's contents (not root itself), each named ``prefix/relative path``."""
        if not root.is_dir():
            raise ArtifactError(f"cannot upload {root}: not a directory")
        top = str(root)
        for rel in _ordered(root, skip):
            self._add(f"{top}/{rel}", f"{prefix}/{rel}" if prefix else rel)

    def _add(self, path: str, rel: str) -> None:
        member = _member(path, rel, self.inodes)
        if member is None:  # a socket: nothing to cache
            return
        kind, mode, size, mtime, linkname = member
        name = f"{rel}/" if kind == tarheader.DIRTYPE else rel
        self.out.write(tarheader.pax_header(name, kind, mode, size, mtime, linkname))
        if kind == tarheader.REGTYPE:
            _copy_file(self.out, path, size)
        self.count += 1

    def close(self) -> int:
        """End the archive (the sink stays open); return the number of members."""
        self.out.write(tarheader.end_of_archive(self.out.offset))
        self.out.flush()
        return self.count


def _member(
    path: str, rel: str, inodes: dict[tuple[int, int], str]
) -> tuple[bytes, int, int, int, str] | None:
    """Type, mode, size, mtime and link target of one entry, from one lstat.

    Owners are 0/0 with empty names and times whole seconds, so equal trees give equal bytes;
    no user or group name is looked up. A second link to an inode already archived becomes a
    hardlink member.
    """
    try:
        st = os.lstat(path)
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    except FileNotFoundError:
        raise ArtifactError(f"{path} vanished while the tree was archived") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    mode, mtime = st.st_mode, int(st.st_mtime)
    perms = stat.S_IMODE(mode)
    if stat.S_ISREG(mode):
        first = inodes.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
        if first is not None:
            return tarheader.LNKTYPE, perms, 0, mtime, first
        if st.st_nlink > 1:
            inodes[(st.st_dev, st.st_ino)] = rel
        return tarheader.REGTYPE, perms, st.st_size, mtime, ""
    if stat.S_ISDIR(mode):
        return tarheader.DIRTYPE, perms, 0, mtime, ""
    if stat.S_ISLNK(mode):
        return tarheader.SYMTYPE, perms, 0, mtime, link
    if stat.S_ISSOCK(mode):
        return None
    raise ArtifactError(f"cannot archive {path}: device files and FIFOs are not cached")


def _copy_file(out: _Batcher, path: str, size: int) -> None:
    """Exactly ``size`` bytes of the file and the padding; a file that changed size fails."""
    try:
        with open(path, "rb", buffering=0) as f:
            if os.fstat(f.fileno()).st_size != size:
                raise ArtifactError(f"{path} changed while the tree was archived")
            left = size
            while left:
                data = f.read(min(left, COPY_BUFSIZE))
                if not data:
                    raise ArtifactError(f"{path} shrank while the tree was archived")
                if len(data) >= _SMALL:
                    out.write_through(data)
                else:
                    out.write(data)
                left -= len(data)
    except FileNotFoundError:
        raise ArtifactError(f"{path} vanished while the tree was archived") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    out.write(tarheader.padding(size))
