"""The manifest object: a small root naming the parts that hold a tree's entries.

A tree's entries, in canonical order, are cut into parts where a path's sha256 starts with a
zero byte (one entry in 256, on average) or a part reaches `PART_ENTRIES`: the cuts depend
on the paths alone, so a lockfile bump changes only the parts around what it changed, and
every other part is the same blob as in the previous save, already stored. Parts are blobs in
packs like file contents; the root, stored at the key's manifest name, is one zstd frame of::

    {"digest": "sha256", "entries": N, "format": "cacher-tree", "pad": "<1024 hex>",
     "parts": [[ref, digest, frame offset, frame length, offset, size], ...], "version": 1}

Reading (`load`) checks the root, fetches every part and checks it against its digest, then
checks the whole tree by every rule of `cacher.cas.rules`: a part cannot hide a ``..`` or a
file under a symlink from the rules by being read alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from cacher.cas import frames
from cacher.cas.manifest import blob_document, blob_location, canonical, decode_part, decode_part_packs
from cacher.cas.model import MAX_BLOB, BlobLocation, Entry, Manifest, PackBlobs
from cacher.cas.names import parse_pack_ref
from cacher.cas.packread import read_blobs
from cacher.cas.rules import check_blobs, check_tree, refuse

FORMAT = "cacher-tree"
VERSION = 1
#: A part is cut after this many entries at the latest.
PART_ENTRIES = 1024
#: The largest root read: about 100,000 parts, 100 million entries.
MAX_ROOT = 32 << 20
#: Hex digits of padding (SHAKE-256 of the rest of the document: deterministic, incompressible),
#: so that the object, compressed or not, is longer than a tar header: an older cacher that
#: reads it as a tar stream meets a bad header (refused), never a truncated archive (corrupt).
PAD = 1024
_HEX = frozenset("0123456789abcdef")

#: ``read(ref, start, end)``: bytes ``start`` to ``end`` of the pack ``ref``.
ReadPack = Callable[[str, int, int], bytes]
Known = dict[str, tuple[str, BlobLocation]]


@dataclass(frozen=True)
class Root:
    """The manifest object's contents: where each part lies, in tree order, and the entry count."""

    parts: tuple[tuple[str, BlobLocation], ...]
    entries: int


@dataclass(frozen=True)
class Stored:
    """A stored tree as read back: its root and the whole manifest its parts make."""

    root: Root
    manifest: Manifest

    def known(self) -> Known:
        """Every blob this tree's objects hold (contents and parts): what a later save of the
        same tree, changed a little, need not send again."""
        return {**self.manifest.locations(), **{loc.digest: (ref, loc) for ref, loc in self.root.parts}}


def is_cut(path: str) -> bool:
    """Whether a part ends after the entry ``path`` (unless `PART_ENTRIES` ends it first)."""
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).digest()[0] == 0


def cut_parts(manifest: Manifest) -> list[Manifest]:
    """The manifest's entries cut into parts, each with the places of the blobs it uses."""
    places = manifest.locations()
    runs: list[list[Entry]] = [[]]
    for entry in manifest.entries:
        runs[-1].append(entry)
        if is_cut(entry.path) or len(runs[-1]) >= PART_ENTRIES:
            runs.append([])
    parts = []
    for run in (r for r in runs if r):
        by_pack: dict[str, list[BlobLocation]] = {}
        for digest in Manifest(tuple(run), ()).digests():
            ref, blob = places[digest]
            by_pack.setdefault(ref, []).append(blob)
        packs = tuple(PackBlobs(r, tuple(b)) for r, b in by_pack.items())
        parts.append(canonical(Manifest(tuple(run), packs)))
    return parts


def encode_root(root: Root) -> bytes:
    """The manifest object's bytes: canonical JSON in one zstd frame."""
    doc: dict[str, object] = {
        "format": FORMAT,
        "version": VERSION,
        "digest": "sha256",
        "entries": root.entries,
        "parts": [[ref, *blob_document(loc)] for ref, loc in root.parts],
    }
    doc["pad"] = hashlib.shake_256(_canonical(doc)).hexdigest(PAD // 2)
    return frames.compress(_canonical(doc))


def _canonical(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode_root(data: bytes) -> Root:
    """The root in ``data``: a damaged frame is an `IntegrityError`; anything this format
    never writes (another zstd stream, such as a tar.zst an older cacher put at this name, a
    document that is not a cacher-tree root, a pack outside the format) is `ObjectRefused`."""
    if not frames.is_own_frame(data):
        raise refuse("not a cacher-tree root (one zstd frame stating its size, with a checksum)")
    try:
        doc = json.loads(frames.decompress(data, MAX_ROOT, "the stored manifest").decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise refuse(f"not a JSON document ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise refuse("not a cacher-tree document")
    if set(doc) != {"format", "version", "digest", "entries", "parts", "pad"}:
        raise refuse(f"unexpected fields {sorted(set(doc))}")
    if not isinstance(doc["pad"], str) or len(doc["pad"]) != PAD or not set(doc["pad"]) <= _HEX:
        raise refuse("the padding is not 1024 hex digits")
    if doc["version"] != VERSION or doc["digest"] != "sha256":
        raise refuse(f"version {doc['version']!r} with digest {doc['digest']!r} is not one this cacher reads")
    if type(doc["entries"]) is not int or doc["entries"] < 0 or not isinstance(doc["parts"], list):
        raise refuse("the entry count or the part list is malformed")
    parts = []
    for item in doc["parts"]:
        if not isinstance(item, list) or len(item) != 6:
            raise refuse("a part is not [ref, digest, frame offset, frame length, offset, size]")
        parse_pack_ref(item[0])
        loc = blob_location(item[1:])
        if not 0 < loc.size <= MAX_BLOB or loc.frame_length <= 0 or min(loc.frame_offset, loc.offset) < 0:
            raise refuse(f"part {loc.digest} has an impossible place")
        parts.append((item[0], loc))
    if len({loc.digest for _, loc in parts}) != len(parts):
        raise refuse("a part is listed twice")
    return Root(tuple(parts), doc["entries"])


def join(root: Root, parts: list[Manifest]) -> Manifest:
    """The whole manifest of a root's parts, checked by every tree rule; a blob two parts
    place differently is refused."""
    entries = tuple(entry for part in parts for entry in part.entries)
    if len(entries) != root.entries:
        raise refuse(f"the parts hold {len(entries)} entries, the root says {root.entries}")
    check_tree(entries)
    places: dict[str, tuple[str, BlobLocation]] = {}
    for part in parts:
        for digest, place in part.locations().items():
            if places.setdefault(digest, place) != place:
                raise refuse(f"blob {digest} is placed in two ways")
    by_pack: dict[str, list[BlobLocation]] = {}
    for ref, blob in places.values():
        by_pack.setdefault(ref, []).append(blob)
    whole = canonical(Manifest(entries, tuple(PackBlobs(r, tuple(b)) for r, b in by_pack.items())))
    check_blobs(whole)
    return whole


def load(data: bytes, read: ReadPack) -> Stored:
    """Read a stored tree: the root in ``data``, then every part through ``read``, checked."""
    root = decode_root(data)
    fetched = _parts(root, read)
    return Stored(root, join(root, [decode_part(fetched[loc.digest]) for _, loc in root.parts]))


def load_known(data: bytes, read: ReadPack) -> Known:
    """The blobs a stored tree's objects hold (contents and parts) and where: `Stored.known`
    of `load`, without reading the entries (what an upload needs of its base)."""
    root = decode_root(data)
    fetched = _parts(root, read)
    known: Known = {loc.digest: (ref, loc) for ref, loc in root.parts}
    for _, loc in root.parts:
        for pack in decode_part_packs(fetched[loc.digest]):
            known.update((blob.digest, (pack.ref, blob)) for blob in pack.blobs)
    return known


def _parts(root: Root, read: ReadPack) -> dict[str, bytes]:
    """Every part's bytes by digest, each checked against it."""
    by_ref: dict[str, list[BlobLocation]] = {}
    for ref, loc in root.parts:
        by_ref.setdefault(ref, []).append(loc)
    fetched: dict[str, bytes] = {}
    for ref, locs in by_ref.items():
        fetched.update(read_blobs(_ranges(read, ref), locs))
    return fetched


def _ranges(read: ReadPack, ref: str) -> Callable[[int, int], bytes]:
    """A ranged reader of one pack."""
    return lambda start, end: read(ref, start, end)
