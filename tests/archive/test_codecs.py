"""Codecs: round trips, interop with the zstd and gzip binaries, and refusal of damaged streams."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from cacher.codecs.gzip import GzipCodec
from cacher.codecs.none import NoneCodec
from cacher.codecs.zstd import ZstdCodec
from cacher.errors import IntegrityError
from cacher.testing import CodecContract

DATA = os.urandom(300_000) + b"a" * 3_000_000 + os.urandom(7_000)
CODECS = {"zstd": ZstdCodec(), "zstd-1thread": ZstdCodec(threads=0), "gzip": GzipCodec()}


def encode(codec, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with codec.encoder(buf) as w:
        for i in range(0, len(data), 100_000):
            w.write(data[i : i + 100_000])
    assert not buf.closed, "the codec closed its sink"
    return buf.getvalue()


def decode(codec, raw: bytes, size: int = 10240) -> bytes:  # type: ignore[no-untyped-def]
    reader = codec.decoder(io.BytesIO(raw))
    out = bytearray()
    while chunk := reader.read(size):
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_round_trip_and_concatenated_frames(name: str) -> None:
    codec = CODECS[name]
    raw = encode(codec, DATA)
    assert decode(codec, raw) == DATA
    assert decode(codec, raw + raw, size=1 << 20) == DATA + DATA


@pytest.mark.parametrize("name", sorted(CODECS))
@pytest.mark.parametrize("damage", ["half", "minus1", "minus4", "flip", "empty", "trailing-junk", "header-only"])
def test_damaged_stream_is_refused(name: str, damage: str) -> None:
    codec = CODECS[name]
    raw = encode(codec, DATA)
    bad = {
        "half": raw[: len(raw) // 2],
        "minus1": raw[:-1],
        "minus4": raw[:-4],
        "flip": raw[:20] + bytes([raw[20] ^ 1]) + raw[21:],
        "empty": b"",
        "trailing-junk": raw + b"junk",
        "header-only": raw[:5],
    }[damage]
    with pytest.raises(IntegrityError):
        decode(codec, bad)


@pytest.mark.parametrize("args", [["-3"], ["-3", "--no-check"], ["-T2", "-19"], ["--long", "-1"], ["--ultra", "-20"]])
def test_zstd_reads_what_the_zstd_binary_wrote(args: list[str]) -> None:
    raw = subprocess.run(["zstd", "-q", "-c", *args], input=DATA, capture_output=True, check=True).stdout
    assert decode(ZstdCodec(), raw, size=1 << 20) == DATA


def test_zstd_binary_reads_what_cacher_wrote() -> None:
    raw = encode(ZstdCodec(), DATA)
    out = subprocess.run(["zstd", "-d", "-c"], input=raw, capture_output=True, check=True).stdout
    assert out == DATA
    subprocess.run(["zstd", "-t", "-q"], input=raw, check=True)


def test_gzip_binary_round_trip() -> None:
    assert subprocess.run(["gzip", "-dc"], input=encode(GzipCodec(), DATA), capture_output=True, check=True).stdout == DATA
    assert decode(GzipCodec(), subprocess.run(["gzip", "-c"], input=DATA, capture_output=True, check=True).stdout) == DATA


def test_zstd_encoding_is_deterministic() -> None:
    assert encode(ZstdCodec(threads=0), DATA) == encode(ZstdCodec(threads=0), DATA)


def test_none_codec_is_identity() -> None:
    assert encode(NoneCodec(), DATA) == DATA
    assert decode(NoneCodec(), DATA) == DATA


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_decoding_memory_does_not_grow_with_the_output(tmp_path, codec: str) -> None:  # type: ignore[no-untyped-def]
    """512 MiB of zeros compress to a few KiB; decoding must still stream, not inflate in memory."""
    tool = {"zstd": "zstd -q -c", "gzip": "gzip -c"}[codec]
    obj = tmp_path / "zeros"
    subprocess.run(f"head -c {512 << 20} /dev/zero | {tool} > {obj}", shell=True, check=True)
    code = (
        "import sys\n"
        f"from cacher.codecs.{codec} import {'ZstdCodec' if codec == 'zstd' else 'GzipCodec'} as C\n"
        f"r = C().decoder(open({str(obj)!r}, 'rb'))\n"
        "n = 0\n"
        "while x := r.read(1 << 20): n += len(x)\n"
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) peak across exec.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(n, int(hwm) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == 512 << 20
    assert int(out[1]) < 100, f"peak RSS {out[1]} MiB"


class TestZstd(CodecContract):
    @pytest.fixture
    def codec(self) -> ZstdCodec:
        return ZstdCodec()


class TestZstdOneThread(CodecContract):
    @pytest.fixture
    def codec(self) -> ZstdCodec:
        return ZstdCodec(threads=0)


class TestGzip(CodecContract):
    @pytest.fixture
    def codec(self) -> GzipCodec:
        return GzipCodec()


class TestNone(CodecContract):
    verifies = False

    @pytest.fixture
    def codec(self) -> NoneCodec:
        return NoneCodec()
