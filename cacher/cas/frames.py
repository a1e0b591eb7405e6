"""One zstd frame in, one out: how the format compresses manifests, trailers and blob frames.

Every frame is written the same way (level 3, one thread, the content size and a checksum in
the header), so the same bytes always give the same frame. Reading takes exactly one frame
whose header states a size within the caller's bound: a frame that claims more, hides its
size, carries bytes after its end or fails its checksum is refused before it can fill memory.
"""

from __future__ import annotations

import threading

import zstandard

from cacher.errors import IntegrityError

LEVEL = 3
#: Each thread's compressor, kept: a new one per frame allocated and freed its context (a few
#: MiB at level 3) every time. A context is reset by each ``compress``: the frames are the same.
_local = threading.local()


def compress(data: bytes) -> bytes:
    """``data`` as one checksummed zstd frame that records its size (deterministic)."""
    cctx: zstandard.ZstdCompressor | None = getattr(_local, "cctx", None)
    if cctx is None:
        cctx = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True, write_content_size=True, threads=0)
        _local.cctx = cctx
    return cctx.compress(data)


def is_own_frame(data: bytes) -> bool:
    """Whether ``data`` starts with a zstd frame header as `compress` writes one (its size
    stated, a checksum): a stream written otherwise was not written by this format."""
    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError:
        return False
    unknown = (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR)
    return params.content_size not in unknown and bool(params.has_checksum)


def decompress(frame: bytes, limit: int, what: str, *, exact: int | None = None) -> bytes:
    """The bytes of the single frame ``frame``, at most ``limit`` of them (``exact``: just
    that many); `IntegrityError` naming ``what`` when the frame is not one this format wrote."""
    try:
        params = zstandard.get_frame_parameters(frame)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what} is not a zstd frame ({exc})") from None
    size = params.content_size
    if size < 0 or size > limit or (exact is not None and size != exact):
        raise IntegrityError(f"{what} states {size} bytes, not what its index says")
    if not params.has_checksum:
        raise IntegrityError(f"{what} has no checksum")
    try:
        data = zstandard.ZstdDecompressor().decompress(frame, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what} is corrupt ({exc})") from None
    if len(data) != size:  # pragma: no cover - zstd checks the stated size itself
        raise IntegrityError(f"{what} holds {len(data)} bytes, not the {size} it states")
    return data
