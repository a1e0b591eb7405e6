"""Writing packs: blobs in zstd frames, then an index of them as the pack's trailer.

A pack is ``frame* trailer footer``. Blobs below `GROUP` bytes share frames, closed once
they hold `GROUP` bytes (small files compress together, as in one tar.zst: measured in
docs/format.md); a larger blob has a frame of its own. The trailer is one zstd frame of the
index document, and the 16-byte footer is its length (unsigned 64-bit, little-endian) and the
magic ``CACHERP1``, so a reader finds the index with one ranged read of the pack's end.

Memory stays bounded: the writer holds at most one open group (under twice `GROUP`) and the
index; every frame goes to the sink as it is made. A pack is named by the sha256 of all its
bytes (`PackInfo.pack_id`), known when `PackWriter.finish` returns.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cacher.cas import frames
from cacher.cas.manifest import blob_document
from cacher.cas.model import MAX_BLOB, BlobLocation
from cacher.streams import Writable

#: Blobs smaller than this share frames of about this many bytes.
GROUP = 1 << 20
#: A pack is closed once its frames reach this many bytes (restic's default pack size).
PACK_TARGET = 16 << 20
MAGIC = b"CACHERP1"
FOOTER = struct.Struct("<Q8s")
TRAILER_FORMAT = "cacher-pack"
TRAILER_VERSION = 1


@dataclass(frozen=True)
class PackInfo:
    """A finished pack: its id (sha256 of its bytes, hex), its size and its blobs' places."""

    pack_id: str
    size: int
    blobs: tuple[BlobLocation, ...]


def trailer_document(blobs: tuple[BlobLocation, ...]) -> bytes:
    """The trailer's JSON, canonical: sorted keys, no spaces."""
    doc = {
        "format": TRAILER_FORMAT,
        "version": TRAILER_VERSION,
        "digest": "sha256",
        "blobs": [blob_document(b) for b in blobs],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class PackWriter:
    """One pack written to ``sink``: `add` blobs, then `finish`."""

    def __init__(self, sink: Writable) -> None:
        self.sink = sink
        self.offset = 0
        self.hash = hashlib.sha256()
        self.blobs: list[BlobLocation] = []
        self.digests: set[str] = set()
        self.group: list[tuple[str, bytes]] = []
        self.group_size = 0

    def add(self, digest: str, data: bytes) -> None:
        """Store ``data`` (whose sha256 is ``digest``) once; a digest already here is skipped."""
        if digest in self.digests:
            return
        if not 0 < len(data) <= MAX_BLOB:
            raise ValueError(f"a blob holds 1 to {MAX_BLOB} bytes, not {len(data)}")
        self.digests.add(digest)
        if len(data) >= GROUP:
            self._frame([(digest, data)])
            return
        self.group.append((digest, data))
        self.group_size += len(data)
        if self.group_size >= GROUP:
            self._flush()

    @property
    def size(self) -> int:
        """Bytes written so far, plus the open group's raw bytes (what it may yet add)."""
        return self.offset + self.group_size

    def finish(self) -> PackInfo:
        """Write the last group, the trailer and the footer; the pack's id, size and index."""
        self._flush()
        blobs = tuple(self.blobs)
        trailer = frames.compress(trailer_document(blobs))
        self._write(trailer)
        self._write(FOOTER.pack(len(trailer), MAGIC))
        return PackInfo(self.hash.hexdigest(), self.offset, blobs)

    def _flush(self) -> None:
        if self.group:
            self._frame(self.group)
            self.group, self.group_size = [], 0

    def _frame(self, members: list[tuple[str, bytes]]) -> None:
        frame = frames.compress(b"".join(data for _, data in members))
        inside = 0
        for digest, data in members:
            self.blobs.append(BlobLocation(digest, self.offset, len(frame), inside, len(data)))
            inside += len(data)
        self._write(frame)

    def _write(self, data: bytes) -> None:
        self.sink.write(data)
        self.hash.update(data)
        self.offset += len(data)


class Packer:
    """Blobs into a run of packs of about `PACK_TARGET` bytes: ``open_sink`` gives each new
    pack's sink, ``done(sink, info)`` receives it finished (to store it under its id)."""

    def __init__(
        self,
        open_sink: Callable[[], Writable],
        done: Callable[[Writable, PackInfo], None],
        target: int = PACK_TARGET,
    ) -> None:
        self.open_sink, self.done, self.target = open_sink, done, target
        self.current: PackWriter | None = None
        self.packed: set[str] = set()
        self.finished: list[PackInfo] = []

    def add(self, digest: str, data: bytes) -> None:
        """Store a blob in the open pack (opening one first); a digest packed before is skipped."""
        if digest in self.packed:
            return
        self.packed.add(digest)
        if self.current is None:
            self.current = PackWriter(self.open_sink())
        self.current.add(digest, data)
        if self.current.size >= self.target:
            self._close()

    def finish(self) -> list[PackInfo]:
        """Close the open pack; every pack written, in order."""
        self._close()
        return self.finished

    def _close(self) -> None:
        if self.current is not None:
            writer, self.current = self.current, None
            info = writer.finish()
            self.finished.append(info)
            self.done(writer.sink, info)
