"""Byte streams as cacher passes them along: the two protocols every stage speaks, and the
wrappers that count, report progress and verify on the way.

A stage needs only ``write`` (a sink) or ``read`` (a source), so any object with that method
fits; nothing here buffers but the background hash's bounded queue (8 MiB), so memory stays
what the stages themselves hold.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from cacher.errors import IntegrityError

if TYPE_CHECKING:
    from concurrent.futures import Future

#: Called as transfers move: (bytes so far, total bytes or None when unknown).
Progress = Callable[[int, int | None], None]


class Writable(Protocol):
    """The part of a binary file a stage writes to."""

    def write(self, data: bytes, /) -> int: ...  # pragma: no cover


class Readable(Protocol):
    """The part of a binary file a stage reads from."""

    def read(self, size: int = -1, /) -> bytes: ...  # pragma: no cover


class ReaderBase:
    """``readinto``, ``readable`` and a ``close`` that leaves the source open, for a reader
    that defines ``read``: what a decoder needs to pass for a read-only binary file."""

    def read(self, size: int = -1) -> bytes:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def readinto(self, target: bytearray | memoryview) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Closing a decoder does not close its source."""


class BackgroundSha256:
    """A sha256 computed on a thread of its own, in the order the bytes were given.

    hashlib releases the GIL for buffers over 2 KiB, so a restore's digest runs beside the
    thread that writes the files instead of adding to it: on a large file that is most of a
    second per GiB. Small pieces are gathered into 1 MiB before they are handed over; at most
    ``LIMIT`` bytes wait (the one buffer of this module).
    """

    LIMIT = 8 << 20
    GATHER = 1 << 20

    def __init__(self) -> None:
        # Imported here: concurrent.futures brings logging, which a command that restores
        # nothing (``cacher exists``) never needs.
        from concurrent.futures import ThreadPoolExecutor

        self._hash = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cacher-sha256")
        self._pending: collections.deque[tuple[Future[None], int]] = collections.deque()
        self._waiting = 0
        self._small = bytearray()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) < self.GATHER // 4:
            self._small += data
            if len(self._small) >= self.GATHER:
                self._hand_over(bytes(self._small))
                self._small.clear()
            return
        if self._small:
            self._hand_over(bytes(self._small))
            self._small.clear()
        # The caller may reuse a bytearray or memoryview once we return: hash a copy of it.
        self._hand_over(data if isinstance(data, bytes) else bytes(data))

    def _hand_over(self, data: bytes) -> None:
        self._pending.append((self._pool.submit(self._hash.update, data), len(data)))
        self._waiting += len(data)
        while self._waiting > self.LIMIT:
            self._settle_one()

    def _settle_one(self) -> None:
        done, size = self._pending.popleft()
        done.result()
        self._waiting -= size

    def hexdigest(self) -> str:
        """The digest of everything given so far (waits for the thread to catch up)."""
        if self._small:
            self._hand_over(bytes(self._small))
            self._small.clear()
        while self._pending:
            self._settle_one()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Stop the thread; nothing more will be given."""
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


class CountingWriter:
    """Counts the bytes written through it, reporting progress when asked, and hashes them
    (sha256) when ``hashing`` is set."""

    def __init__(self, inner: Any, progress: Progress | None = None, *, hashing: bool = False) -> None:
        self.inner = inner
        self.count = 0
        self.progress = progress
        # Inline, not on a thread: an upload's memory is bounded tightly (the 2 GiB zstd upload
        # sits near 256 MiB) and its pace is the store's, not the hash's.
        self.hash: Any = hashlib.sha256() if hashing else None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.inner.write(data)
        if self.hash is not None:
            self.hash.update(data)
        n = len(data)
        self.count += n
        if self.progress is not None:
            self.progress(self.count, None)
        return n

    def flush(self) -> None:
        """Nothing to flush: the store commits at the end."""


class ProgressReader:
    """Reports how much of the stored object has been read."""

    def __init__(self, inner: Readable, progress: Progress | None, total: int) -> None:
        self.inner, self.progress, self.total, self.count = inner, progress, total, 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        if self.progress is not None:
            self.progress(self.count, self.total)
        return data

    def readable(self) -> bool:
        return True


class VerifyingReader:
    """Counts the plain bytes read and, when a sha256 is expected, checks it at the end."""

    def __init__(self, inner: Readable, sha256: str | None) -> None:
        self.inner = inner
        self.count = 0
        self.expected = sha256.lower() if sha256 else None
        self.hash = BackgroundSha256() if sha256 else None

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        if self.hash is not None:
            if data:
                self.hash.update(data)
            elif size != 0 and self.hash.hexdigest() != self.expected:
                actual = self.hash.hexdigest()
                self.hash.close()
                self.hash = None
                raise IntegrityError(
                    f"sha256 mismatch: expected {self.expected}, the stored object has {actual}"
                )
        return data

    def readable(self) -> bool:
        return True
