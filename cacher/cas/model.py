"""The values the format is made of: a tree's entries, the chunks of a file, where a blob lies.

Plain frozen data, shared by the manifest codec, the pack writer and reader and the planner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EntryType = Literal["dir", "file", "symlink", "hardlink"]
ENTRY_TYPES: tuple[EntryType, ...] = ("dir", "file", "symlink", "hardlink")

#: The largest blob: files above BLOCK are split (cacher.cas.split); a reader refuses bigger.
MAX_BLOB = 16 << 20


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a file's contents: the sha256 (hex) of its bytes and their number."""

    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One member of the tree, in the order a restore creates it.

    ``mode`` is the permission bits (``0o7777`` at most); ``mtime`` whole seconds. A file's
    contents are its ``chunks`` in order; a symlink's ``target`` is its link text, as stored; a
    hardlink's ``target`` is the path of an earlier file entry (it has no mode or time of its own).
    """

    path: str
    type: EntryType
    mode: int = 0
    mtime: int = 0
    size: int = 0
    chunks: tuple[Chunk, ...] = ()
    target: str = ""


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where a blob lies in a pack: its frame (byte offset and length in the pack), and its
    place in that frame's decompressed bytes (``offset``, ``size``). Several small blobs may
    share a frame; a large one has a frame of its own."""

    digest: str
    frame_offset: int
    frame_length: int
    offset: int
    size: int

    @property
    def frame_end(self) -> int:
        return self.frame_offset + self.frame_length


@dataclass(frozen=True, slots=True)
class PackBlobs:
    """The blobs one manifest uses from one pack (``ref``: see `cacher.cas.names.pack_ref`)."""

    ref: str
    blobs: tuple[BlobLocation, ...]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A stored tree: its entries, and where each content blob they name is stored."""

    entries: tuple[Entry, ...]
    packs: tuple[PackBlobs, ...]

    def locations(self) -> dict[str, tuple[str, BlobLocation]]:
        """Every blob's pack reference and place, by digest."""
        return {blob.digest: (pack.ref, blob) for pack in self.packs for blob in pack.blobs}

    def digests(self) -> dict[str, int]:
        """Every content digest the entries name, with its size, in first-use order."""
        out: dict[str, int] = {}
        for entry in self.entries:
            for chunk in entry.chunks:
                out.setdefault(chunk.digest, chunk.size)
        return out

    @property
    def logical_size(self) -> int:
        """The bytes of every file, as restored (hardlinks counted once)."""
        return sum(entry.size for entry in self.entries if entry.type == "file")
