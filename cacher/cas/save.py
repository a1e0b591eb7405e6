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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cacher.cas.manifest import canonical, encode_part
from cacher.cas.model import MAX_BLOB, BlobLocation, Chunk, Entry, Manifest, PackBlobs
from cacher.cas.pack import Packer, PackInfo
from cacher.cas.root import Root, cut_parts, encode_root
from cacher.cas.scan import Skip, walk
from cacher.cas.units import pieces
from cacher.errors import ArtifactError

Known = Mapping[str, tuple[str, BlobLocation]]


@dataclass(frozen=True)
class Saved:
    """What a save made: the manifest object's bytes, the whole manifest, the new packs, and
    how many contents were reused rather than sent."""

    root: bytes
    manifest: Manifest
    packs: tuple[PackInfo, ...]
    reused: int


def _places(packs: list[PackInfo], ref_of: Callable[[str], str]) -> dict[str, tuple[str, BlobLocation]]:
    return {blob.digest: (ref_of(info.pack_id), blob) for info in packs for blob in info.blobs}


def save_tree(
    root: Path,
    packer: Packer,
    known: Known,
    ref_of: Callable[[str], str],
    skip: Skip | None = None,
) -> Saved:
    """Walk ``root`` and pack what ``known`` lacks; new packs are referenced as ``ref_of(pack
    id)``, known blobs by their known reference."""
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
                f"cannot store {root} in this format: the entries from {part.entries[0].path!r} "
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
