"""Local files that appear whole or not at all: a temporary sibling, renamed into place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from cacher.errors import UsageError

TEMP_MARK = ".cacher-tmp-"


@contextmanager
def atomic_write(dest: Path, *, fsync: bool = True) -> Iterator[BinaryIO]:
    """Yield a file beside ``dest``; rename it over ``dest`` only if the block succeeds."""
    parent = dest.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {dest}: the directory {parent} does not exist")
    if dest.is_dir():
        raise UsageError(f"cannot write {dest}: it is a directory")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}{TEMP_MARK}", dir=parent)
    try:
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
