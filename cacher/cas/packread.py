"""Reading packs: the trailer index, and blobs checked against their digests.

Reads go through ``read_range(start, end)`` (a ranged GET, a slice of bytes in memory, a file
read), so only the frames wanted are fetched. Every blob handed out has been checked: its
frame decompressed within its stated size and checksum, its bytes' sha256 equal to the digest
it was asked for. A mismatch is an `IntegrityError` (the bytes are not what the manifest
says); an index that breaks the pack layout is `ObjectRefused`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator

from cacher.cas import frames
from cacher.cas.manifest import blob_location
from cacher.cas.model import MAX_BLOB, BlobLocation
from cacher.cas.pack import FOOTER, MAGIC, TRAILER_FORMAT, TRAILER_VERSION
from cacher.errors import IntegrityError, ObjectRefused

#: Bytes fetched from a pack's end at first: the footer, and most trailers with it.
TAIL = 64 << 10
#: The largest trailer read, and what it may decompress to (a 16 MiB pack of tiny blobs
#: indexes about 2 MB).
MAX_TRAILER = 16 << 20
MAX_INDEX = 64 << 20
#: The most a frame decompresses to: a group closes under 2 MiB, a lone blob is MAX_BLOB.
MAX_FRAME = MAX_BLOB

ReadRange = Callable[[int, int], bytes]


def read_index(read_range: ReadRange, size: int) -> tuple[BlobLocation, ...]:
    """The blobs of a pack of ``size`` bytes, from its trailer (one or two ranged reads)."""
    if size < FOOTER.size:
        raise ObjectRefused(f"a pack of {size} bytes has no footer")
    start = max(0, size - TAIL)
    tail = read_range(start, size)
    length, magic = FOOTER.unpack(tail[-FOOTER.size :])
    if magic != MAGIC or not 0 < length <= min(MAX_TRAILER, size - FOOTER.size):
        raise ObjectRefused("the pack's footer is not a cacher pack footer")
    trailer_start = size - FOOTER.size - length
    if trailer_start >= start:
        trailer = tail[trailer_start - start : -FOOTER.size]
    else:
        trailer = read_range(trailer_start, size - FOOTER.size)
    return parse_trailer(trailer, trailer_start)


def parse_trailer(frame: bytes, trailer_start: int) -> tuple[BlobLocation, ...]:
    """The index in a trailer frame, checked against the layout: frames follow each other from
    the pack's first byte to the trailer, and the blobs of a frame fill it from its start."""
    try:
        doc = json.loads(frames.decompress(frame, MAX_INDEX, "the pack's trailer"))
    except ValueError:
        raise ObjectRefused("the pack's trailer is not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"format", "version", "digest", "blobs"}:
        raise ObjectRefused("the pack's trailer is not a cacher-pack index")
    if (doc["format"], doc["version"], doc["digest"]) != (TRAILER_FORMAT, TRAILER_VERSION, "sha256"):
        raise ObjectRefused(f"the pack's index is {doc['format']!r} version {doc['version']!r}")
    if not isinstance(doc["blobs"], list):
        raise ObjectRefused("the pack's index holds no blob list")
    blobs = tuple(blob_location(item) for item in doc["blobs"])
    current: tuple[int, int] | None = None
    end = inside = 0
    for blob in blobs:
        if (blob.frame_offset, blob.frame_length) != current:  # a new frame starts where the last ended
            if blob.frame_offset != end:
                raise ObjectRefused(f"the pack's index places blob {blob.digest} where no frame starts")
            current, inside = (blob.frame_offset, blob.frame_length), 0
        if blob.offset != inside or not 0 < blob.size <= MAX_BLOB or blob.frame_length <= 0:
            raise ObjectRefused(f"the pack's index places blob {blob.digest} impossibly")
        inside += blob.size
        end = blob.frame_end
    if end != trailer_start:
        raise ObjectRefused("the pack's frames do not end where its trailer starts")
    return blobs


def frame_blobs(frame: bytes, blobs: Iterable[BlobLocation]) -> Iterator[tuple[str, bytes]]:
    """The ``blobs`` of one frame's bytes, each checked against its digest."""
    wanted = list(blobs)
    data = frames.decompress(frame, MAX_FRAME, f"the frame at {wanted[0].frame_offset}")
    for blob in wanted:
        piece = data[blob.offset : blob.offset + blob.size]
        if len(piece) != blob.size or hashlib.sha256(piece).hexdigest() != blob.digest:
            raise IntegrityError(f"blob {blob.digest} does not match its digest: the pack is damaged")
        yield blob.digest, piece


def read_blobs(read_range: ReadRange, wanted: Iterable[BlobLocation]) -> Iterator[tuple[str, bytes]]:
    """Each wanted blob of one pack, checked, frame by frame in pack order: one read per frame
    (callers that coalesce frames pass a ``read_range`` over what they fetched)."""
    by_frame: dict[tuple[int, int], list[BlobLocation]] = {}
    for blob in wanted:
        by_frame.setdefault((blob.frame_offset, blob.frame_length), []).append(blob)
    for (offset, length), blobs in sorted(by_frame.items()):
        yield from frame_blobs(read_range(offset, offset + length), blobs)
