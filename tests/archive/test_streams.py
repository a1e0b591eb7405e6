"""`BackgroundSha256` gives hashlib's digest whatever the pieces, even when the caller reuses
its buffer, and the verifying reader and counting writer that use it still catch a mismatch."""

from __future__ import annotations

import hashlib
import io
import random
import threading

import pytest

from cacher.errors import IntegrityError
from cacher.streams import BackgroundSha256, CountingWriter, VerifyingReader


def test_digest_matches_hashlib_for_any_piece_sizes() -> None:
    rng = random.Random(7)
    data = rng.randbytes(5 << 20)
    for sizes in ([1], [1000, 1], [300_000], [2 << 20], [7, 1 << 20, 64 << 10, 5]):
        background, pos, i = BackgroundSha256(), 0, 0
        while pos < len(data):
            n = sizes[i % len(sizes)]
            background.update(data[pos : pos + n])
            pos, i = pos + n, i + 1
        assert background.hexdigest() == hashlib.sha256(data).hexdigest(), sizes


def test_a_reused_buffer_is_hashed_as_it_was_when_given() -> None:
    """Writers such as the tar writer refill one bytearray: the hash must not see later bytes."""
    background, expected = BackgroundSha256(), hashlib.sha256()
    buffer = bytearray(2 << 20)
    view = memoryview(buffer)
    for fill in range(20):
        buffer[:] = bytes([fill]) * len(buffer)
        background.update(view)
        expected.update(bytes(buffer))
    buffer[:] = b"\xff" * len(buffer)  # overwritten before the thread may have run
    assert background.hexdigest() == expected.hexdigest()


def test_waiting_bytes_are_bounded() -> None:
    background = BackgroundSha256()
    for _ in range(40):
        background.update(b"x" * (4 << 20))
        assert background._waiting <= BackgroundSha256.LIMIT
    background.hexdigest()


def test_verifying_reader_still_refuses_a_wrong_digest() -> None:
    data = random.Random(1).randbytes(3 << 20)
    reader = VerifyingReader(io.BytesIO(data), hashlib.sha256(b"other").hexdigest())
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        while reader.read(1 << 20):
            pass
    good = VerifyingReader(io.BytesIO(data), hashlib.sha256(data).hexdigest())
    while good.read(1 << 20):
        pass
    assert good.count == len(data)


def test_counting_writer_hashes_what_went_through() -> None:
    sink = io.BytesIO()
    writer = CountingWriter(sink, hashing=True)
    data = random.Random(2).randbytes(3 << 20)
    for i in range(0, len(data), 70_000):
        writer.write(memoryview(data)[i : i + 70_000])
    assert writer.hash is not None
    assert writer.hash.hexdigest() == hashlib.sha256(data).hexdigest()
    assert sink.getvalue() == data


def test_no_thread_is_left_after_close() -> None:
    before = {t.name for t in threading.enumerate()}
    background = BackgroundSha256()
    background.update(b"y" * (1 << 20))
    background.close()
    background._pool.shutdown(wait=True)
    assert {t.name for t in threading.enumerate() if t.name.startswith("cacher-sha256")} <= before
