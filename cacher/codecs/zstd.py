"""zstd frames with content checksums, sized to the CPUs this process may use."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import BinaryIO

import zstandard

from cacher.codecs.zstdframes import FrameTracker
from cacher.plugin import Codec, IntegrityError, ReaderBase, Writable


def usable_cpus() -> int:
    """CPUs this process may run on (affinity), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ZstdCodec(Codec):
    """zstd at level 3 by default, multithreaded, every frame checksummed."""

    name = "zstd"
    suffixes = (".tar.zst", ".tzst", ".zst")
    levels = (-(1 << 17), zstandard.MAX_COMPRESSION_LEVEL)  # negative: zstd's --fast levels

    def __init__(self, level: int | None = None, threads: int | None = None) -> None:
        super().__init__(3 if level is None else level)
        self.threads = usable_cpus() if threads is None else threads

    def encoder(self, sink: Writable) -> AbstractContextManager[Writable]:
        cctx = zstandard.ZstdCompressor(
            level=self.level or 3,
            threads=self.threads if self.threads > 1 else 0,
            write_checksum=True,
        )
        # closefd=False: the store, not the codec, decides whether the object is committed.
        return cctx.stream_writer(sink, closefd=False, write_size=1 << 20)  # type: ignore[arg-type]

    def decoder(self, source: BinaryIO) -> BinaryIO:
        return _ZstdReader(source)  # type: ignore[return-value]


class _TrackedSource:
    """Passes compressed bytes to the decompressor, showing each to the frame tracker."""

    def __init__(self, source: BinaryIO, tracker: FrameTracker) -> None:
        self.source, self.tracker = source, tracker

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.tracker.feed(data)
        return data

    def readable(self) -> bool:
        return True


class _ZstdReader(ReaderBase):
    """Decodes zstd frames with bounded output per read, and refuses a stream cut short."""

    def __init__(self, source: BinaryIO) -> None:
        self._tracker = FrameTracker()
        self._tracked = _TrackedSource(source, self._tracker)
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            self._tracked,  # type: ignore[arg-type]
            read_size=1 << 20,
            read_across_frames=True,
            closefd=False,
        )

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._reader.read(size) if size >= 0 else self._reader.readall()
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"the stored zstd stream is corrupt: {exc}") from None
        if not data and size != 0:
            if self._tracked.read(1 << 16):
                raise IntegrityError("the stored zstd stream has data after its last frame")
            if not self._tracker.complete:
                raise IntegrityError("the stored zstd stream is truncated (its frame never ended)")
        return data

