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
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
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
#: Frames compressing at once per pack writer with a pool: bounds memory to a few frames.
IN_FLIGHT = 4


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


def _made(frame: bytes) -> Future[bytes]:
    """A future that is already done (a frame compressed without a pool)."""
    done: Future[bytes] = Future()
    done.set_result(frame)
    return done


class PackWriter:
    """One pack written to ``sink``: `add` blobs, then `finish`.

    With a ``pool``, frames are compressed on its threads (zstd releases the GIL), up to
    `IN_FLIGHT` at once, and written in the order they were made: the pack's bytes are the same
    as without one. `size` counts the raw bytes of frames still compressing, so where a
    `Packer` closes a pack depends on the blobs alone, never on the threads' timing.
    """

    def __init__(self, sink: Writable, pool: Executor | None = None) -> None:
        self.sink = sink
        self.pool = pool
        self.offset = 0
        self.hash = hashlib.sha256()
        self.blobs: list[BlobLocation] = []
        self.digests: set[str] = set()
        self.group: list[tuple[str, bytes]] = []
        self.group_size = 0
        self.pending: deque[tuple[list[tuple[str, int]], Future[bytes]]] = deque()
        self.pending_size = 0

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
        """Bytes written so far, plus the raw bytes of the frames still being compressed and of
        the open group (what they may yet add)."""
        return self.offset + self.pending_size + self.group_size

    def finish(self) -> PackInfo:
        """Write the last group, the trailer and the footer; the pack's id, size and index."""
        self._flush()
        while self.pending:
            self._write_next()
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
        raw = members[0][1] if len(members) == 1 else b"".join(data for _, data in members)
        sizes = [(digest, len(data)) for digest, data in members]
        # With no pool, compressed here, but queued the same: `size`, hence where packs
        # close, is the same with a pool or without.
        pool = self.pool
        made = pool.submit(frames.compress, raw) if pool is not None else _made(frames.compress(raw))
        self.pending.append((sizes, made))
        self.pending_size += len(raw)
        while len(self.pending) > IN_FLIGHT:
            self._write_next()

    def _write_next(self) -> None:
        sizes, future = self.pending.popleft()
        self.pending_size -= sum(size for _, size in sizes)
        self._place(sizes, future.result())

    def _place(self, sizes: list[tuple[str, int]], frame: bytes) -> None:
        inside = 0
        for digest, size in sizes:
            self.blobs.append(BlobLocation(digest, self.offset, len(frame), inside, size))
            inside += size
        self._write(frame)

    def _write(self, data: bytes) -> None:
        self.sink.write(data)
        self.hash.update(data)
        self.offset += len(data)


class Packer:
    """Blobs into a run of packs of about `PACK_TARGET` bytes: ``open_sink`` gives each new
    pack's sink, ``done(sink, info)`` receives it finished (to store it under its id). With a
    ``pool``, frames compress on its threads (`PackWriter`); the packs' bytes are the same."""

    def __init__(
        self,
        open_sink: Callable[[], Writable],
        done: Callable[[Writable, PackInfo], None],
        target: int = PACK_TARGET,
        pool: Executor | None = None,
    ) -> None:
        self.open_sink, self.done, self.target, self.pool = open_sink, done, target, pool
        self.current: PackWriter | None = None
        self.packed: set[str] = set()
        self.finished: list[PackInfo] = []

    def add(self, digest: str, data: bytes) -> None:
        """Store a blob in the open pack (opening one first); a digest packed before is skipped."""
        if digest in self.packed:
            return
        self.packed.add(digest)
        if self.current is None:
            self.current = PackWriter(self.open_sink(), self.pool)
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
