"""Scratch space of restores: private directories in ``$TMPDIR``, cleaned like staging.

A restore that unpacks before anything moves (``paths``) does it in a scratch directory
(``$TMPDIR/.cacher-paths-…``, mode 0700) whose ``flock`` it holds while it runs. One that no
process holds was left by a killed restore: the next scratch directory made removes it, and
``cacher stats`` counts it (`scratch_leftovers`). A short shared lock around making and locking
a new directory keeps a cleaner from taking one that is not locked yet.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cacher.config import runtime_dir
from cacher.errors import ArtifactError
from cacher.fs.ownership import Untrusted, private_dir
from cacher.fs.staging import force_rmtree, lock_dir

#: Scratch directories in ``$TMPDIR`` where a restore unpacks before anything moves.
SCRATCH_MARK = ".cacher-paths-"
#: Seconds a new scratch directory waits for a cleaner's scan of ``$TMPDIR`` to end.
_SCRATCH_GUARD_WAIT = 10.0


@contextmanager
def _scratch_guard(*, exclusive: bool) -> Iterator[bool]:
    """The lock that keeps a cleaner from taking a scratch directory made but not yet locked:
    makers hold it shared for that moment, a cleaner exclusively for its scan (never waiting:
    it yields False when a maker holds it)."""
    path = runtime_dir(os.environ) / "scratch.lock"
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except (OSError, Untrusted) as exc:
        raise ArtifactError(f"cannot use the scratch lock {path}: {exc}") from None
    try:
        if exclusive:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        else:
            deadline = time.monotonic() + _SCRATCH_GUARD_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ArtifactError(
                            f"gave up after {_SCRATCH_GUARD_WAIT:g} s waiting for {path} "
                            "(another cacher is clearing leftovers in the temporary directory)"
                        ) from None
                    time.sleep(0.02)
        yield True
    finally:
        os.close(fd)


def _tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def scratch_leftovers(*, remove: bool) -> list[tuple[Path, int]]:
    """Scratch directories of killed restores (this user's, held by no process) in ``$TMPDIR``,
    with their sizes; removed when ``remove``."""
    base = Path(tempfile.gettempdir())
    held: list[tuple[Path, int]] = []
    with _scratch_guard(exclusive=True) as scanning:
        if not scanning:
            return []
        try:
            entries = [e for e in os.scandir(base) if e.name.startswith(SCRATCH_MARK)]
        except OSError:
            entries = []
        for entry in entries:
            try:
                mine = entry.stat(follow_symlinks=False).st_uid == os.getuid()
                if not mine or not entry.is_dir(follow_symlinks=False):
                    continue
                fd = lock_dir(Path(entry.path))
            except OSError:
                continue
            if fd is not None:  # None: its owner is alive
                held.append((Path(entry.path), fd))
    found: list[tuple[Path, int]] = []
    for path, fd in held:
        try:
            size = _tree_bytes(path)
            if remove:
                force_rmtree(path)
            found.append((path, size))
        except OSError:
            pass
        finally:
            os.close(fd)
    return found


@contextmanager
def scratch_directory() -> Iterator[Path]:
    """A new private directory in ``$TMPDIR``, held (``flock``) while the block runs and removed
    after it; the scratch of killed restores is removed first (`scratch_leftovers`)."""
    scratch_leftovers(remove=True)
    with _scratch_guard(exclusive=False):
        try:
            path = Path(tempfile.mkdtemp(prefix=SCRATCH_MARK))
        except OSError as exc:
            where = tempfile.gettempdir()
            raise ArtifactError(f"cannot create a scratch directory in {where}: {exc.strerror}") from None
        try:
            fd = lock_dir(path)
        except BaseException:
            force_rmtree(path)
            raise
    try:
        yield path
    finally:
        try:
            force_rmtree(path)
        finally:
            if fd is not None:
                os.close(fd)
