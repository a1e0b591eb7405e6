"""The identity codec: objects are stored as the plain bytes."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import BinaryIO

from cacher.plugin import Codec, Writable


class NoneCodec(Codec):
    """Store bytes as they are (raw files, ``.tar`` archives)."""

    name = "none"
    suffixes = (".tar",)

    def encoder(self, sink: Writable) -> AbstractContextManager[Writable]:
        return nullcontext(sink)

    def decoder(self, source: BinaryIO) -> BinaryIO:
        return source
