"""What to send and what to fetch: the planners of an incremental save and restore.

An upload sends the contents the store lacks (`to_send`); a restore fetches the blobs the
runner lacks, as few ranged reads of the packs as the gaps between wanted frames allow
(`to_fetch`). Both are pure: they see digests and places, never a store.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from cacher.cas.manifest import place
from cacher.cas.model import BlobLocation, Manifest

#: Two wanted frames at most this far apart are fetched in one read (the gap is read and dropped).
GAP = 256 << 10
#: No single read spans more than this.
MAX_READ = 32 << 20


def to_send(wanted: Mapping[str, int], known: Container[str]) -> dict[str, int]:
    """The digests (with sizes) of ``wanted`` that ``known`` lacks, in ``wanted``'s order:
    what an upload packs and sends."""
    return {digest: size for digest, size in wanted.items() if digest not in known}


@dataclass(frozen=True)
class Read:
    """One ranged read of a pack, ``start`` to ``end`` (exclusive), and the blobs it yields."""

    ref: str
    start: int
    end: int
    blobs: tuple[BlobLocation, ...]


def to_fetch(
    manifest: Manifest, have: Container[str], gap: int = GAP, max_read: int = MAX_READ
) -> list[Read]:
    """The reads that bring every blob of ``manifest`` not in ``have``: per pack, the wanted
    frames in order, neighbours merged while the gap between them is at most ``gap`` bytes
    and the read stays within ``max_read``."""
    reads: list[Read] = []
    for pack in manifest.packs:
        wanted = sorted((b for b in pack.blobs if b.digest not in have), key=place)
        start = end = -1
        blobs: list[BlobLocation] = []
        for blob in wanted:
            if blobs and blob.frame_offset - end <= gap and blob.frame_end - start <= max_read:
                end = max(end, blob.frame_end)
                blobs.append(blob)
                continue
            if blobs:
                reads.append(Read(pack.ref, start, end, tuple(blobs)))
            start, end, blobs = blob.frame_offset, blob.frame_end, [blob]
        if blobs:
            reads.append(Read(pack.ref, start, end, tuple(blobs)))
    return reads
