"""gzip members, for archives that other tools expect as ``.tar.gz``."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

from cacher.plugin import Codec, DecodingReader, IntegrityError, Writable


class GzipCodec(Codec):
    """gzip at level 6 with a zero mtime, so equal input gives equal bytes."""

    name = "gzip"
    suffixes = (".tar.gz", ".tgz", ".gz")
    levels = (-1, 9)  # zlib's own range; -1 and 0 mean the default

    def __init__(self, level: int | None = None) -> None:
        super().__init__(6 if level is None else level)

    def encoder(self, sink: Writable) -> AbstractContextManager[Writable]:
        # GzipFile never closes a fileobj it was handed.
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=self.level or 6, mtime=0)  # type: ignore[call-overload,no-any-return]

    def decoder(self, source: BinaryIO) -> BinaryIO:
        return _GzipReader(source)  # type: ignore[return-value]


class _GzipReader(DecodingReader):
    """Decodes gzip members, checking each CRC and that the last member ended."""

    def chunks(self) -> Iterator[bytes]:
        dobj = zlib.decompressobj(wbits=31)
        started = False
        members = 0
        try:
            while True:
                data = self._source.read(self._chunk_size)
                if not data:
                    break
                while data:
                    started = True
                    out = dobj.decompress(data, self._chunk_size)  # bounded output per step
                    if out:
                        yield out
                    if dobj.eof:
                        members += 1
                        data = dobj.unused_data
                        dobj = zlib.decompressobj(wbits=31)
                        started = False
                    else:
                        data = dobj.unconsumed_tail
        except zlib.error as exc:
            raise IntegrityError(f"the stored gzip stream is corrupt: {exc}") from None
        if started or not members:
            raise IntegrityError("the stored gzip stream is truncated (its member never ended)")
