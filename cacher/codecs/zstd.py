"""zstd frames with content checksums, sized to the CPUs this process may use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

import zstandard

from cacher.codec import Codec, DecodingReader, Writable
from cacher.errors import IntegrityError


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


class _ZstdReader(DecodingReader):
    """Decodes one or more zstd frames and refuses a stream that stops inside a frame."""

    def chunks(self) -> Iterator[bytes]:
        dctx = zstandard.ZstdDecompressor()
        dobj = dctx.decompressobj(write_size=1 << 20)
        started = False
        frames = 0
        try:
            while True:
                data = self._source.read(self._chunk_size)
                if not data:
                    break
                while data:
                    started = True
                    out = dobj.decompress(data)
                    if out:
                        yield out
                    if dobj.eof:
                        frames += 1
                        data = dobj.unused_data
                        dobj = dctx.decompressobj(write_size=1 << 20)
                        started = False
                    else:
                        data = b""
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"the stored zstd stream is corrupt: {exc}") from None
        if started or not frames:
            raise IntegrityError("the stored zstd stream is truncated (its frame never ended)")
