"""The codec contract as tests: subclass `CodecContract` and give it a ``codec`` fixture.

Every built-in codec runs it (tests/archive/test_codecs.py), and so should a third-party codec: the
promises are those of `cacher.codec.Codec` — the plain bytes come back whole, the sink is
never closed (the store decides whether the object is committed), and a verifying codec
refuses a stream that was cut or damaged instead of reading it as a short, valid one.
"""

from __future__ import annotations

import io
import os
from typing import ClassVar

import pytest

from cacher.codec import Codec
from cacher.errors import IntegrityError

__all__ = ["CodecContract"]

#: Incompressible, compressible and incompressible again: every codec path is taken.
SAMPLE = os.urandom(100_000) + b"a" * 1_000_000 + os.urandom(3_000)
DAMAGE = ("half", "minus1", "minus4", "flip", "empty", "trailing-junk", "header-only")


def encode(codec: Codec, data: bytes, piece: int = 65_536) -> tuple[bytes, bool]:
    """The encoded bytes of ``data`` written in pieces, and whether the sink was left open."""
    sink = io.BytesIO()
    with codec.encoder(sink) as writer:
        for i in range(0, len(data), piece):
            writer.write(data[i : i + piece])
    return sink.getvalue(), not sink.closed


def decode(codec: Codec, stored: bytes, size: int = 10_240) -> bytes:
    reader = codec.decoder(io.BytesIO(stored))
    out = bytearray()
    while chunk := reader.read(size):
        out += chunk
    return bytes(out)


def damaged(stored: bytes, how: str) -> bytes:
    return {
        "half": stored[: len(stored) // 2],
        "minus1": stored[:-1],
        "minus4": stored[:-4],
        "flip": stored[:20] + bytes([stored[20] ^ 1]) + stored[21:],
        "empty": b"",
        "trailing-junk": stored + b"junk",
        "header-only": stored[:5],
    }[how]


class CodecContract:
    """Tests every codec must pass. Set ``verifies = False`` for a codec that stores bytes as
    they are (``none``): it cannot tell a damaged stream, and must hand it back unchanged."""

    verifies: ClassVar[bool] = True

    @pytest.fixture
    def codec(self) -> Codec:  # pragma: no cover - each subclass provides it
        raise NotImplementedError("a CodecContract subclass defines a 'codec' fixture")

    def test_it_is_registered_under_its_name(self, codec: Codec) -> None:
        from cacher.registry import Registry

        assert codec.name and type(Registry.from_entry_points().codec(codec.name)) is type(codec)

    @pytest.mark.parametrize("data", [b"", b"x", SAMPLE], ids=["empty", "one-byte", "mixed"])
    def test_round_trip_leaves_the_sink_open(self, codec: Codec, data: bytes) -> None:
        stored, still_open = encode(codec, data)
        assert still_open, "the codec closed its sink: a store would commit a truncated object"
        assert decode(codec, stored) == data

    @pytest.mark.parametrize("size", [1, 4096, 1 << 20, -1])
    def test_any_read_size_gives_the_same_bytes(self, codec: Codec, size: int) -> None:
        stored, _ = encode(codec, SAMPLE)
        if size == -1:
            assert codec.decoder(io.BytesIO(stored)).read() == SAMPLE
        else:
            assert decode(codec, stored, size) == SAMPLE

    def test_decoding_does_not_close_the_source(self, codec: Codec) -> None:
        stored, _ = encode(codec, b"abc" * 1000)
        source = io.BytesIO(stored)
        reader = codec.decoder(source)
        while reader.read(1000):
            pass
        assert not source.closed

    @pytest.mark.parametrize("how", DAMAGE)
    def test_a_damaged_stream_is_refused(self, codec: Codec, how: str) -> None:
        """A verifying codec refuses it; one that stores bytes as they are hands them back
        unchanged (the sha256 the engine records is what verifies those objects)."""
        stored, _ = encode(codec, SAMPLE)
        bad = damaged(stored, how)
        if not self.verifies:
            assert decode(codec, bad) == bad
            return
        with pytest.raises(IntegrityError):
            decode(codec, bad)
