"""Saving a tree: its manifest, with only the contents not already stored packed anew.

``known`` maps the digests the store already holds (from the base key's manifest and the
pack indexes the job may read) to their pack and place; those are referenced, not sent.
Everything else goes through the `Packer`, once per digest. Nothing here publishes: the
caller stores each pack as ``done`` receives it, and the manifest last, when every pack it
names is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cacher.cas.model import BlobLocation, Chunk, Entry, Manifest, PackBlobs
from cacher.cas.pack import Packer, PackInfo
from cacher.cas.scan import Skip, walk
from cacher.cas.units import pieces

Known = Mapping[str, tuple[str, BlobLocation]]


@dataclass(frozen=True)
class Saved:
    """What a save made: the manifest, the new packs, and how many blobs were reused."""

    manifest: Manifest
    packs: tuple[PackInfo, ...]
    reused: int


def save_tree(
    root: Path,
    packer: Packer,
    known: Known,
    ref_of: Callable[[str], str],
    skip: Skip | None = None,
) -> Saved:
    """Walk ``root``, pack what ``known`` lacks, and return the manifest naming every blob's
    pack by ``ref_of(pack id)`` for new packs, by its known reference otherwise."""
    entries: list[Entry] = []
    reused: set[str] = set()
    for found in walk(root, skip):
        entry = found.entry
        if entry.type == "file":
            chunks = []
            for digest, data in pieces(found.source, entry.size):
                chunks.append(Chunk(digest, len(data)))
                if digest in known:
                    reused.add(digest)
                else:
                    packer.add(digest, data)
            entry = replace(entry, chunks=tuple(chunks))
        entries.append(entry)
    packs = packer.finish()
    places: dict[str, tuple[str, BlobLocation]] = {}
    for info in packs:
        ref = ref_of(info.pack_id)
        for blob in info.blobs:
            places[blob.digest] = (ref, blob)
    for digest in reused:
        places.setdefault(digest, known[digest])
    by_pack: dict[str, list[BlobLocation]] = {}
    for ref, blob in places.values():
        by_pack.setdefault(ref, []).append(blob)
    manifest = Manifest(tuple(entries), tuple(PackBlobs(ref, tuple(blobs)) for ref, blobs in by_pack.items()))
    return Saved(manifest, tuple(packs), len(reused))
