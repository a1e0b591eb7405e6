"""A directory of checked blobs by digest (``<dir>/<2 hex>/<64 hex>``, one blob per file): the
local tier's ``cas-blobs/``, or a restore's scratch spill (`cacher.engine.cas_fetch`).

Every read is checked against the digest, and a bad file is dropped; writes go to a name of
this process's own and are renamed into place; the trim removes least recently used blobs
and only this format's own files, never through a link.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import stat
import time
from pathlib import Path

from cacher.errors import ArtifactError
from cacher.fs.ownership import Untrusted, private_dir

_SHARD = re.compile(r"[0-9a-f]{2}")
_BLOB = re.compile(r"[0-9a-f]{64}")
#: A temporary blob file nobody finished for this long was left by a killed restore.
STALE_TEMP = 3600.0
#: A blob read is marked used again (its mtime) only when it was last marked this long ago.
TOUCH_AFTER = 3600.0


class UntrustedBlobDir(ArtifactError):
    """The blob directory (or a shard of it) is not a private directory of this user's: a
    planted link or another's directory, which a restore refuses rather than works around."""


class BlobDir:
    """A directory of checked blobs by digest; ``writable`` False: read only (a read-only job's
    view of the tier: nothing written, dropped or touched); ``keeps``: it outlives the restore
    (the tier's), so every fetched blob is written there.

    Each shard directory's trust is checked once per `BlobDir` (the root is private to the
    user, so nobody else can swap a shard after it was checked). A blob read is touched for
    the least-recently-used trim only when its mtime is older than `TOUCH_AFTER`: a restore
    of a tree read an hour ago costs no write per blob, and the trim's order is off by at most
    that hour."""

    def __init__(self, root: Path, *, writable: bool = True, keeps: bool = False) -> None:
        self.root, self.writable, self.keeps = root, writable, keeps
        self._prefix = os.fspath(root) + os.sep
        self._shards: dict[str, bool] = {}
        self._temps = itertools.count()
        #: Whether a blob was written, and the bytes `has` found: a trim is due only when the
        #: directory grew, or the blobs found alone exceed the bound (a lowered bound).
        self.grew, self.found = False, 0
        # Only a directory of the user's own, not a link, not writable by others, is used: a
        # planted link would have cacher write or delete files wherever it points.
        try:
            private_dir(root, create=writable)
            self.trusted = True
        except (Untrusted, OSError):
            self.trusted = False

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def _name(self, digest: str) -> str:
        return f"{self._prefix}{digest[:2]}{os.sep}{digest}"

    def _shard(self, digest: str, *, create: bool) -> str | None:
        """The blob's shard directory when it is a trusted one (made when ``create``),
        checked once: a shard found missing is looked at again when one is to be made."""
        if not self.trusted:
            return None
        name = digest[:2]
        known = self._shards.get(name)
        if known is None or (not known and create):
            try:
                private_dir(self.root / name, create=create)
                known = True
            except (Untrusted, OSError):
                known = False
            self._shards[name] = known
        return f"{self._prefix}{name}" if known else None

    def has(self, digest: str, size: int) -> bool:
        """Whether a regular file of the right size is there (its bytes are checked when read)."""
        if not self.trusted:
            return False
        try:
            st = os.lstat(self._name(digest))
        except OSError:
            return False
        if st.st_size != size or not stat.S_ISREG(st.st_mode):
            return False
        self.found += size
        return True

    def get(self, digest: str, size: int) -> bytes | None:
        """The blob, checked against its digest; None (and a bad file dropped) otherwise."""
        if not self.trusted:
            return None
        path = self._name(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            data = _read(fd, size) if stat.S_ISREG(st.st_mode) and st.st_size == size else b""
            good = len(data) == size and hashlib.sha256(data).hexdigest() == digest
            stale = good and self.writable and time.time() - st.st_mtime > TOUCH_AFTER
            if stale and self._shard(digest, create=False) is not None:
                with contextlib.suppress(OSError):  # least recently used goes first in a trim
                    os.utime(fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        if not good:
            if self.writable and self._shard(digest, create=False) is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Keep a checked blob: written beside its place (mode 0600, a name of this process's
        own, made with ``O_EXCL``) and renamed into it."""
        shard = self._shard(digest, create=True)
        if shard is None:
            raise UntrustedBlobDir(
                f"cannot keep a blob in {self.root}: not a private directory of this user's"
            )
        temp = f"{shard}{os.sep}.tmp-{os.getpid()}-{next(self._temps)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ArtifactError(f"cannot keep a blob in {self.root}: {exc.strerror or exc}") from None
        try:
            try:
                _write(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, self._name(digest))
            self.grew = True
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if isinstance(exc, OSError):
                raise ArtifactError(f"cannot keep a blob in {self.root}: {exc.strerror or exc}") from None
            raise

    def trim(self, max_bytes: int) -> int:
        """Remove least recently used blobs until the directory holds at most ``max_bytes``
        (and temporaries of killed restores); the bytes removed."""
        files: list[tuple[float, int, str]] = []
        now, removed = time.time(), 0
        if not (self.trusted and self.writable):
            return 0
        with contextlib.suppress(OSError):
            for shard in os.scandir(self.root):
                if not _SHARD.fullmatch(shard.name) or self._shard(shard.name, create=False) is None:
                    continue  # only this format's own directories, never through a link
                with contextlib.suppress(OSError):
                    for item in os.scandir(shard.path):
                        st = item.stat(follow_symlinks=False)
                        if not stat.S_ISREG(st.st_mode):
                            continue
                        if not (item.name.startswith(".tmp-") or _BLOB.fullmatch(item.name)):
                            continue  # not a blob: someone else's file, left alone
                        if item.name.startswith(".tmp-"):
                            if now - st.st_mtime > STALE_TEMP:
                                with contextlib.suppress(OSError):
                                    os.unlink(item.path)
                            continue
                        files.append((st.st_mtime, st.st_size, item.path))
        total = sum(size for _, size, _ in files)
        for _mtime, size, path in sorted(files):
            if total <= max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
                total -= size
                removed += size
        return removed


def _read(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes of ``fd``, fewer only at its end."""
    parts, left = [], size
    while left:
        part = os.read(fd, left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _write(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
