"""The codec contract: how a byte stream is compressed into the store and back.

Codecs register under the ``cacher.codecs`` entry-point namespace. The built-ins are
``zstd``, ``gzip`` and ``none``; they load through the same door as a third-party codec.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO, ClassVar

from cacher.errors import ConfigError
from cacher.streams import ReaderBase, Writable


class Codec(abc.ABC):
    """Turns plain bytes into stored bytes and back.

    A codec never closes the stream it is given: the store decides whether the object is
    committed or discarded, and a codec that closed its sink would commit a truncated object.
    """

    #: Entry-point name; also recorded in object metadata.
    name: ClassVar[str] = ""
    #: Key suffixes that select this codec for archive kinds, longest first (``.tar.zst``).
    suffixes: ClassVar[tuple[str, ...]] = ()

    #: The compression levels this codec accepts (inclusive), or None when it takes any.
    levels: ClassVar[tuple[int, int] | None] = None

    def __init__(self, level: int | None = None) -> None:
        """``level`` is the codec's own compression level; None means its default.

        A level outside `levels` raises `cacher.errors.ConfigError` here, before any I/O.
        """
        if level is not None and self.levels is not None:
            low, high = self.levels
            if not low <= level <= high:
                raise ConfigError(
                    f"compression_level {level} is not a level of the {self.name} codec "
                    f"(it accepts {low} to {high})"
                )
        self.level = level

    @abc.abstractmethod
    def encoder(self, sink: Writable) -> AbstractContextManager[Writable]:
        """Return a writer whose plain input reaches ``sink`` encoded.

        The frame is finished when the context exits normally; on an exception the caller
        discards ``sink``, so what the codec wrote then does not matter.
        """

    @abc.abstractmethod
    def decoder(self, source: BinaryIO) -> BinaryIO:
        """Return a reader of the plain bytes in ``source``.

        At the end of ``source`` the reader must raise `cacher.errors.IntegrityError` unless
        the encoded stream ended where it should and its checksums matched: a truncated
        object must never read as a short, valid one.
        """


class DecodingReader(ReaderBase, abc.ABC):
    """Helper base for decoders: a read-only binary stream fed by `chunks()`."""

    def __init__(self, source: BinaryIO, chunk_size: int = 1 << 20) -> None:
        self._source = source
        self._chunk_size = chunk_size
        self._chunks: Iterator[bytes] | None = None
        self._current = b""
        self._pos = 0

    @abc.abstractmethod
    def chunks(self) -> Iterator[bytes]:
        """Yield decoded bytes until the source ends, then verify the end."""

    def _next_chunk(self) -> bytes:
        if self._chunks is None:
            self._chunks = self.chunks()
        for chunk in self._chunks:
            if chunk:
                return chunk
        return b""

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        need = size if size >= 0 else -1
        while need != 0:
            if self._pos >= len(self._current):
                self._current, self._pos = self._next_chunk(), 0
                if not self._current:
                    break
            end = len(self._current) if need < 0 else self._pos + need
            piece = self._current[self._pos : end]
            self._pos += len(piece)
            if need > 0:
                need -= len(piece)
            parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def __enter__(self) -> DecodingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
