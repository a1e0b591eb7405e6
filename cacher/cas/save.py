"""Saving a tree: its contents and manifest parts packed, only what is not already stored.

``known`` maps the digests the store already holds (from the base key's manifest, read with
`cacher.cas.root.load`, and pack indexes the job may read) to their pack and place; those are
referenced, not sent. Everything else goes through the `Packer`, once per digest: first the
contents, then the manifest parts that changed (parts name the contents' packs, so they come
after them, in packs of their own). Nothing here publishes: the caller stores each pack as
``done`` receives it, and the root (`Saved.root`) last, when every pack it names is stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from cacher.cas.manifest import canonical, encode_part
from cacher.cas.model import MAX_BLOB, BlobLocation, Chunk, Entry, Manifest, PackBlobs
from cacher.cas.pack import Packer, PackInfo
from cacher.cas.root import Root, cut_parts, encode_root
from cacher.cas.rules import check_tree, order_key
from cacher.cas.scan import Found, Skip, walk
from cacher.cas.statcache import FileRecord, Stat, stat_of
from cacher.cas.units import BLOCK, pieces
from cacher.errors import ArtifactError, ObjectRefused
from cacher.tar.stream import Member, TarStream

Known = Mapping[str, tuple[str, BlobLocation]]


@dataclass(frozen=True)
class Saved:
    """What a save made: the manifest object's bytes, the whole manifest, the new packs, and
    how many contents were reused rather than sent."""

    root: bytes
    manifest: Manifest
    packs: tuple[PackInfo, ...]
    reused: int
    #: The files walked, by path: their stat and chunks (what `cacher.cas.statcache` records).
    files: Mapping[str, tuple[Stat, tuple[Chunk, ...]]] = field(default_factory=dict)


def _places(packs: list[PackInfo], ref_of: Callable[[str], str]) -> dict[str, tuple[str, BlobLocation]]:
    return {blob.digest: (ref_of(info.pack_id), blob) for info in packs for blob in info.blobs}


def save_tree(
    root: Path,
    packer: Packer,
    known: Known,
    ref_of: Callable[[str], str],
    skip: Skip | None = None,
    record: FileRecord | None = None,
) -> Saved:
    """Walk ``root`` and pack what ``known`` lacks; new packs are referenced as ``ref_of(pack
    id)``, known blobs by their known reference. With a ``record`` (`cacher.cas.statcache`), a
    file it vouches for whose chunks are all ``known`` is not read; `Saved.files` is the new
    record's contents."""
    entries: list[Entry] = []
    reused: set[str] = set()
    files: dict[str, tuple[Stat, tuple[Chunk, ...]]] = {}
    for found in walk(root, skip):
        entry = found.entry
        if entry.type == "file":
            chunks = _unchanged(found, record, known)
            if chunks is not None:
                reused.update(c.digest for c in chunks)
            else:
                chunks = _pack_pieces(pieces(found.source, entry.size), packer, known, reused)
            entry = Entry(entry.path, "file", entry.mode, entry.mtime, entry.size, chunks)
            if found.st is not None:
                files[entry.path] = (stat_of(found.st), chunks)
        entries.append(entry)
    saved = _finish(str(root), entries, reused, packer, known, ref_of)
    return replace(saved, files=files)


def _unchanged(found: Found, record: FileRecord | None, known: Known) -> tuple[Chunk, ...] | None:
    """The file's chunks without reading it: the record vouches for its stat, and every chunk is
    stored (else its bytes are needed)."""
    if record is None or found.st is None:
        return None
    chunks = record.chunks_of(found.entry.path, found.st)
    if chunks is None or sum(c.size for c in chunks) != found.entry.size:
        return None
    return chunks if all(c.digest in known for c in chunks) else None


def save_stream(source: BinaryIO, packer: Packer, known: Known, ref_of: Callable[[str], str]) -> Saved:
    """`save_tree` of the tree a tar stream holds (what any archive kind's ``pack`` writes):
    members become entries in the canonical order, regular files' data blobs of `BLOCK` bytes.
    A stream this format cannot hold (a device, a name that is not UTF-8, a member whose parent
    is not a directory of the stream) is an `ArtifactError`; nothing is published by a save."""
    entries: list[Entry] = []
    reused: set[str] = set()
    stream = TarStream(source)
    try:
        for member in stream:
            entry = _entry_of(member)
            if entry is None:
                continue
            if entry.type == "file":
                blocks = ((hashlib.sha256(d).hexdigest(), d) for d in stream.data_blocks(member, BLOCK))
                entry = replace(entry, chunks=_pack_pieces(blocks, packer, known, reused))
            entries.append(entry)
        stream.drain()
    finally:
        stream.close()
    entries.sort(key=lambda e: order_key(e.path))
    try:
        check_tree(tuple(entries))
    except ObjectRefused as exc:
        raise ArtifactError(f"the archive cannot be stored content-addressed: {exc.message}") from None
    return _finish("the archive", entries, reused, packer, known, ref_of)


def _entry_of(member: Member) -> Entry | None:
    """The entry of one tar member (None for the tree's root itself)."""
    path = member.name.rstrip("/")
    while path.startswith("./"):
        path = path[2:]
    if path in ("", "."):
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ArtifactError(f"cannot store {path!r} content-addressed: its name is not UTF-8") from None
    mode, mtime = member.mode & 0o7777, int(member.mtime)
    if member.isdir():
        return Entry(path, "dir", mode, mtime)
    if member.isreg():
        return Entry(path, "file", mode, mtime, member.size)
    if member.issym():
        return Entry(path, "symlink", mode, mtime, target=member.linkname)
    if member.islnk():
        target = member.linkname.rstrip("/")
        return Entry(path, "hardlink", target=target[2:] if target.startswith("./") else target)
    raise ArtifactError(f"cannot store {path!r} content-addressed: devices and FIFOs are not cached")


def _pack_pieces(
    found: Iterable[tuple[str, bytes]], packer: Packer, known: Known, reused: set[str]
) -> tuple[Chunk, ...]:
    """A file's chunks; each piece not ``known`` goes to the packer (which skips repeats)."""
    chunks = []
    for digest, data in found:
        chunks.append(Chunk(digest, len(data)))
        if digest in known:
            reused.add(digest)
        else:
            packer.add(digest, data)
    return tuple(chunks)


def _finish(
    what: str,
    entries: list[Entry],
    reused: set[str],
    packer: Packer,
    known: Known,
    ref_of: Callable[[str], str],
) -> Saved:
    """The manifest of ``entries``: the contents' packs closed, the parts that changed packed
    after them, the root naming the parts."""
    content_packs = list(packer.finish())
    places = _places(content_packs, ref_of)
    for digest in reused:
        places.setdefault(digest, known[digest])
    by_pack: dict[str, list[BlobLocation]] = {}
    for ref, blob in places.values():
        by_pack.setdefault(ref, []).append(blob)
    manifest = canonical(Manifest(tuple(entries), tuple(PackBlobs(r, tuple(b)) for r, b in by_pack.items())))
    part_digests = []
    for part in cut_parts(manifest):
        data = encode_part(part)
        if len(data) > MAX_BLOB:
            raise ArtifactError(
                f"cannot store {what} in this format: the entries from {part.entries[0].path!r} "
                f"describe {len(data)} bytes, more than a part holds ({MAX_BLOB})"
            )
        digest = hashlib.sha256(data).hexdigest()
        part_digests.append(digest)
        if digest not in known:
            packer.add(digest, data)
    packs = list(packer.finish())
    part_places = {**known, **_places(packs[len(content_packs) :], ref_of)}
    stored_root = Root(tuple(part_places[d] for d in part_digests), len(entries))
    return Saved(encode_root(stored_root), manifest, tuple(packs), len(reused))
