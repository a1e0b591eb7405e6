"""A deterministic tar stream of a directory tree, written without a temporary file.

Entries are sorted, owners are normalised to 0/0 with empty names, mtimes are whole seconds:
the same tree gives the same bytes. Hardlinks inside the tree stay hardlinks; symlinks stay
symlinks; the format is POSIX pax, which GNU tar reads.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cacher.codec import Writable
from cacher.errors import ArtifactError

COPY_BUFSIZE = 1 << 20


class _TellingSink:
    """tarfile's non-stream writer wants ``tell()``; it writes straight through, unbuffered."""

    def __init__(self, sink: Writable) -> None:
        self.sink = sink
        self.pos = 0

    def write(self, data: bytes) -> int:
        self.sink.write(data)
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        """The store commits at the end; nothing to flush."""


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: os.fsencode(e.name))
    except FileNotFoundError:
        raise ArtifactError(f"{directory} vanished while the tree was archived") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read directory {directory}: {exc.strerror}") from None


def _ordered(root: Path) -> list[str]:
    """Relative paths under root, depth first, each directory followed by its sorted contents."""
    out: list[str] = []
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", iter(_entries(root)))]
    while stack:
        rel, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        path = f"{rel}/{entry.name}" if rel else entry.name
        out.append(path)
        if entry.is_dir(follow_symlinks=False):
            stack.append((path, iter(_entries(root / path))))
    return out


def write_tree(root: Path, sink: Writable) -> int:
    """Write root's contents as a tar stream to ``sink``; return the number of entries."""
    if not root.is_dir():
        raise ArtifactError(f"cannot upload {root}: not a directory")
    out = _TellingSink(sink)
    count = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUFSIZE) as tar:  # type: ignore[call-overload]
        inodes: dict[tuple[int, int], str] = {}
        for rel in _ordered(root):
            path = root / rel
            info = _header(path, rel, inodes)
            if info is None:  # a socket: nothing to cache
                continue
            if info.isreg():
                _add_file(tar, info, path)
            else:
                tar.addfile(info)
            count += 1
    # Leaving the block wrote the end-of-archive blocks; the sink stays open.
    return count


def _header(path: Path, rel: str, inodes: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    """The normalised header of one entry, built from one lstat.

    Owners are 0/0 with empty names and times whole seconds, so equal trees give equal bytes;
    tarfile's own gettarinfo would also look up user and group names, which cost a fifth of
    the archiving time only to be blanked. A second link to an inode already archived becomes
    a hardlink member.
    """
    try:
        st = os.lstat(path)
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    except FileNotFoundError:
        raise ArtifactError(f"{path} vanished while the tree was archived") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None
    mode = st.st_mode
    info = tarfile.TarInfo(rel)
    info.mode, info.mtime = stat.S_IMODE(mode), int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISREG(mode):
        first = inodes.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
        if first is not None:
            info.type, info.linkname = tarfile.LNKTYPE, first
        else:
            info.type, info.size = tarfile.REGTYPE, st.st_size
            if st.st_nlink > 1:
                inodes[(st.st_dev, st.st_ino)] = rel
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, link
    elif stat.S_ISSOCK(mode):
        return None
    else:
        raise ArtifactError(f"cannot archive {path}: device files and FIFOs are not cached")
    return info


def _add_file(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> None:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size != info.size:
                raise ArtifactError(f"{path} changed while the tree was archived")
            tar.addfile(info, _ExactReader(f, path, info.size))
    except FileNotFoundError:
        raise ArtifactError(f"{path} vanished while the tree was archived") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}") from None


class _ExactReader:
    """Reads a file, failing if it ends before the size recorded in its header."""

    def __init__(self, f: Any, path: Path, size: int) -> None:
        self.f, self.path, self.left = f, path, size

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.f.read(n)
        self.left -= len(data)
        if not data and self.left > 0:
            raise ArtifactError(f"{self.path} shrank while the tree was archived")
        return data
