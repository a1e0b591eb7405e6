"""The ``file`` backend: a directory tree; a write renames a temporary sibling into place."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from cacher.fs.atomicfile import TEMP_MARK, atomic_write, remove_if_unheld, stale_temporaries
from cacher.keying.keyrules import validate_list_prefix
from cacher.stores.base import LEFTOVER_AGE, META_PREFIX, Leftover, ObjectInfo, Store


class LocalStore(Store):
    """The ``file`` backend: a directory tree; writes rename a temporary sibling into place."""

    def head(self, key: str) -> ObjectInfo | None:
        path = self.path(key)
        with self._translate("look up", key):
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                return None
        if not os.path.isfile(path):
            return None
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        return ObjectInfo(key, st.st_size, modified, self._metadata(path))

    def iter_list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """`Store.iter_list` in key order, one directory at a time (``os.scandir``), entering
        only the directories whose keys can start with ``prefix``; writers' temporaries are left
        out. What is held is the sorted entries of the directories on the way down."""
        validate_list_prefix(prefix)
        return self._walk(prefix)

    def _walk(self, prefix: str) -> Iterator[ObjectInfo]:
        root = os.path.join(self.bucket, self.prefix) if self.prefix else self.bucket
        with self._translate("list", prefix):
            stack = [_entries(root, prefix.rpartition("/")[0])]
            while stack:
                found = next(stack[-1], None)
                if found is None:
                    stack.pop()
                    continue
                key, is_dir, entry = found
                if is_dir:
                    if f"{key}/".startswith(prefix):
                        stack.append(_entries(root, key))
                elif key.startswith(prefix) and TEMP_MARK not in key and entry.is_file():
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue  # deleted since the directory was read
                    yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    @contextmanager
    def writer(self, key: str, metadata: dict[str, str] | None = None) -> Iterator[BinaryIO]:
        dest = Path(self.path(key))
        with self._translate("write", key):
            dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(dest, fsync=True, restore=False) as f:
            yield f
            for name, value in (metadata or {}).items():
                with _ignore_oserror():
                    os.setxattr(f.fileno(), f"user.{META_PREFIX}{name}", value.encode())

    def leftovers(self, prefix: str = "", *, older_than: timedelta = LEFTOVER_AGE) -> Sequence[Leftover]:
        """Temporaries no writer holds an flock on: their writer was killed, whatever their age
        (the lock, not the age, tells a living upload from a dead one)."""
        validate_list_prefix(prefix)
        base = Path(self.bucket, self.prefix)
        out: list[Leftover] = []
        for path, size in stale_temporaries(base / prefix.rpartition("/")[0]):
            name = path.name[1 : path.name.index(TEMP_MARK)]  # .KEY.cacher-tmp-XXXXXXXX
            key = (path.parent / name).relative_to(base).as_posix()
            if key.startswith(prefix):
                started = datetime.fromtimestamp(path.lstat().st_mtime, UTC) if path.exists() else None
                out.append(Leftover(key, size, started, str(path)))
        return out

    def remove_leftover(self, leftover: Leftover) -> bool:
        return remove_if_unheld(Path(leftover.handle))

    def _metadata(self, path: str) -> dict[str, str]:
        out: dict[str, str] = {}
        with _ignore_oserror():
            for attr in os.listxattr(path):
                if attr.startswith(f"user.{META_PREFIX}"):
                    name = attr[len(f"user.{META_PREFIX}") :]
                    out[name] = os.getxattr(path, attr).decode(errors="replace")
        return out


def _entries(root: str, relative: str) -> Iterator[tuple[str, bool, os.DirEntry[str]]]:
    """The entries of one directory as (key, is a directory, entry), in key order: a directory
    sorts as its name and a slash, so its keys come where they sort. None if it is not there."""
    try:
        with os.scandir(os.path.join(root, relative) if relative else root) as listing:
            found = [(f"{relative}/{e.name}" if relative else e.name, e.is_dir(), e) for e in listing]
    except (FileNotFoundError, NotADirectoryError):
        return iter(())
    found.sort(key=lambda t: f"{t[0]}/" if t[1] else t[0])
    return iter(found)


@contextmanager
def _ignore_oserror() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass
