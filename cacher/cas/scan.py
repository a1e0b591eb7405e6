"""A directory tree's entries in the manifest's canonical order, from one lstat each.

The same walk as the ``dir`` kind's tar writer: depth first, each directory followed by its
contents sorted by their names' bytes, owners left out, times in whole seconds, a second link
to an inode already seen becomes a hardlink entry, sockets are skipped, devices and FIFOs are
refused. Files are not read here (`cacher.cas.save` reads them). Names that are not UTF-8 are
refused: a manifest is JSON text.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cacher.cas.model import Entry
from cacher.errors import ArtifactError

Skip = Callable[[str, bool], bool]


@dataclass(frozen=True)
class Found:
    """An entry of the tree (a file's without its chunks yet) and the path to read it from."""

    entry: Entry
    source: str
    #: The lstat the entry was made from (a file's size, times and inode: `cacher.cas.statcache`).
    st: os.stat_result | None = None


def _sorted(directory: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: os.fsencode(e.name))
    except FileNotFoundError:
        raise ArtifactError(f"{directory} vanished while the tree was read") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read directory {directory}: {exc.strerror}") from None


def walk(root: Path, skip: Skip | None = None) -> Iterator[Found]:
    """Every entry under ``root`` (not root itself); ``skip(relative path, is_dir)`` leaves one
    out, a directory with all it holds."""
    if not root.is_dir():
        raise ArtifactError(f"cannot upload {root}: not a directory")
    top = str(root)
    inodes: dict[tuple[int, int], str] = {}
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = [("", iter(_sorted(top)))]
    while stack:
        rel, it = stack[-1]
        item = next(it, None)
        if item is None:
            stack.pop()
            continue
        path = f"{rel}/{item.name}" if rel else item.name
        is_dir = item.is_dir(follow_symlinks=False)
        if skip is not None and skip(path, is_dir):
            continue
        found = _found(f"{top}/{path}", path, inodes)
        if found is None:
            continue
        yield found
        if found.entry.type == "dir":
            stack.append((path, iter(_sorted(f"{top}/{path}"))))


def _found(source: str, rel: str, inodes: dict[tuple[int, int], str]) -> Found | None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise ArtifactError(f"cannot store {source!r}: its name is not UTF-8") from None
    try:
        st = os.lstat(source)
        link = os.readlink(source) if stat.S_ISLNK(st.st_mode) else ""
    except FileNotFoundError:
        raise ArtifactError(f"{source} vanished while the tree was read") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {source}: {exc.strerror}") from None
    mode, mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        if st.st_nlink > 1:
            first = inodes.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                return Found(Entry(rel, "hardlink", target=first), source)
        return Found(Entry(rel, "file", mode, mtime, st.st_size), source, st)
    if stat.S_ISDIR(st.st_mode):
        return Found(Entry(rel, "dir", mode, mtime), source)
    if stat.S_ISLNK(st.st_mode):
        return Found(Entry(rel, "symlink", mode, mtime, target=link), source)
    if stat.S_ISSOCK(st.st_mode):
        return None
    raise ArtifactError(f"cannot archive {source}: device files and FIFOs are not cached")
