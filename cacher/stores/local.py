"""The ``file`` backend: a directory tree; a write renames a temporary sibling into place."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cacher.atomicfile import atomic_write
from cacher.errors import StorageError
from cacher.stores.base import META_PREFIX, ObjectInfo, Store, reason


class LocalStore(Store):
    """The ``file`` backend: a directory tree; writes rename a temporary sibling into place."""

    def head(self, key: str) -> ObjectInfo | None:
        path = self.path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot look up {self.url(key)}: {reason(exc)}") from exc
        if not os.path.isfile(path):
            return None
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        return ObjectInfo(key, st.st_size, modified, self._metadata(path))

    @contextmanager
    def writer(self, key: str, metadata: dict[str, str] | None = None) -> Iterator[BinaryIO]:
        dest = Path(self.path(key))
        with self._translate("write", key):
            dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(dest, fsync=True) as f:
            yield f
            for name, value in (metadata or {}).items():
                with _ignore_oserror():
                    os.setxattr(f.fileno(), f"user.{META_PREFIX}{name}", value.encode())

    def _metadata(self, path: str) -> dict[str, str]:
        out: dict[str, str] = {}
        with _ignore_oserror():
            for attr in os.listxattr(path):
                if attr.startswith(f"user.{META_PREFIX}"):
                    name = attr[len(f"user.{META_PREFIX}") :]
                    out[name] = os.getxattr(path, attr).decode(errors="replace")
        return out


@contextmanager
def _ignore_oserror() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass
