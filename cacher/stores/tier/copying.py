"""The streams of a tiered read and upload: filling a copy while the store is read, reading a
copy with its checks, and teeing an upload into the tier."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from cacher.errors import IntegrityError, ObjectChanged
from cacher.fs.atomicfile import TEMP_MARK
from cacher.stores.tier.disk import _CHUNK, _TAIL, MAGIC, Entry, LocalTier


class _Filler:
    """A copy being written: hashed as it goes, published whole or removed."""

    def __init__(self, tier: LocalTier) -> None:
        self.tier = tier
        self.hash = hashlib.sha256()
        self.count = 0
        self.failed = False
        fd, name = tempfile.mkstemp(prefix=f".entry{TEMP_MARK}", dir=tier.tmp)
        self.path = Path(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours from birth: prune passes it over
            self.file = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.discard()
            raise

    def write(self, data: bytes | memoryview) -> None:
        """Write a block; a local disk that fails only stops the copy, never the transfer."""
        if self.failed or not data:
            return
        try:
            self.file.write(data)
        except OSError:
            self.failed = True
            return
        self.hash.update(data)
        self.count += len(data)

    def too_big(self) -> bool:
        return self.count > self.tier.max_bytes

    def publish(self, entry_id: str, entry: Entry) -> bool:
        """Append the trailer, rename into place (room made first); False when not kept."""
        if self.failed or self.too_big():
            self.discard()
            return False
        entry = Entry(
            entry.path, entry.location, entry.prefix, entry.key, self.count, self.hash.hexdigest(),
            entry.etag, entry.modified, entry.metadata, entry.shared,
        )
        trailer = json.dumps(entry.trailer(), sort_keys=True).encode()
        try:
            # No fsync: whatever a crash leaves fails the trailer or sha256 check, and is no copy.
            self.file.write(trailer + _TAIL.pack(len(trailer)) + MAGIC)
            self.file.flush()
            os.chmod(self.path, 0o600)
        except OSError:
            self.discard()
            return False
        size = self.count + len(trailer) + _TAIL.size + len(MAGIC)
        published = self.tier.publish(self.path, entry_id, size)
        self.file.close()  # after the rename: the flock stays ours until the copy is in place
        return published

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError, AttributeError):
            self.file.close()


# -- the store wrapper --------------------------------------------------------------------


class _CopyReader:
    """Reads a local copy's data, checking the recorded sha256 when it ends; a mismatch drops
    the copy and raises `ObjectChanged` (the engine reads the store instead) or, with no store
    to fall back on, `IntegrityError`."""

    def __init__(self, drop: Callable[[], None], entry: Entry, fd: int, *, fallback: bool) -> None:
        self.drop, self.entry, self.fd, self.fallback = drop, entry, fd, fallback
        self.pos = 0
        self.hash: Any = hashlib.sha256()
        self.checked = False

    def read(self, size: int = -1) -> bytes:
        left = self.entry.size - self.pos
        want = left if size is None or size < 0 else min(size, left)
        data = os.pread(self.fd, want, self.pos) if want > 0 else b""
        if want > 0 and not data:
            self._damaged("it is shorter than recorded")
        self.pos += len(data)
        self.hash.update(data)
        if not data and size != 0:
            self.check()
        return data

    def check(self) -> None:
        if self.checked:
            return
        self.checked = True
        if self.hash.hexdigest() != self.entry.sha256:
            self._damaged("its sha256 differs from the one recorded when it was written")

    def drain(self) -> None:
        """Read what the consumer left (a kind that stops before the end) and check it."""
        while self.read(_CHUNK):
            pass

    def _damaged(self, why: str) -> None:
        self.drop()
        message = f"the local copy of {self.entry.key} is damaged ({why}); dropped"
        if self.fallback:
            raise ObjectChanged(message + ", reading the store instead")
        raise IntegrityError(message)

    def readable(self) -> bool:
        return True


class _FillingReader:
    """Reads the store's object, writing what it reads into a local copy."""

    def __init__(self, inner: BinaryIO, filler: _Filler | None) -> None:
        self.inner, self.filler = inner, filler
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if data:
            if self.filler is not None:
                self.filler.write(data)
                if self.filler.too_big():
                    self.filler.discard()
                    self.filler = None
        elif size != 0:
            self.ended = True
        return data

    def readable(self) -> bool:
        return True


class _TeeWriter:
    """Writes to the store's writer (None offline) and into the local copy."""

    def __init__(self, inner: BinaryIO | None, filler: _Filler | None) -> None:
        self.inner, self.filler = inner, filler

    def write(self, data: bytes) -> int:
        if self.inner is not None:
            self.inner.write(data)
        if self.filler is not None:
            self.filler.write(data)
            if self.filler.too_big() and self.inner is not None:
                self.filler.discard()
                self.filler = None
        return len(data)

    def flush(self) -> None:
        if self.inner is not None:
            self.inner.flush()

    def writable(self) -> bool:
        return True
