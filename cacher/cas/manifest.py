"""A manifest part's bytes: canonical JSON, and the strict reading of them.

A stored tree's entries are cut into parts (`cacher.cas.root`); each part is a document::

    {"entries": [...], "format": "cacher-tree-part", "packs": [...], "version": 1}

holding a run of entries and where every blob they use lies. It is written with sorted keys,
no spaces and UTF-8 text, packs sorted by reference and blobs by place, so the same entries
packed the same way give the same bytes, and a part that did not change between two saves is
the same blob, stored once. Reading refuses anything else: an unknown field, type or version,
a wrong-typed value, and the blob rules of `cacher.cas.rules` (`ObjectRefused`); the tree
rules run on the whole tree, once every part is read (`cacher.cas.root.join`).
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

from cacher.cas.model import ENTRY_TYPES, BlobLocation, Chunk, Entry, EntryType, Manifest, PackBlobs
from cacher.cas.names import parse_pack_ref
from cacher.cas.rules import check_blobs, check_entry, check_path, refuse

FORMAT = "cacher-tree-part"
VERSION = 1

_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELDS: dict[str, frozenset[str]] = {
    "dir": frozenset({"path", "type", "mode", "mtime"}),
    "file": frozenset({"path", "type", "mode", "mtime", "size", "chunks"}),
    "symlink": frozenset({"path", "type", "mode", "mtime", "target"}),
    "hardlink": frozenset({"path", "type", "target"}),
}


def entry_document(entry: Entry) -> dict[str, object]:
    """One entry as the manifest writes it: only the fields of its type."""
    doc: dict[str, object] = {"path": entry.path, "type": entry.type}
    if entry.type != "hardlink":
        doc["mode"], doc["mtime"] = entry.mode, entry.mtime
    if entry.type == "file":
        doc["size"] = entry.size
        doc["chunks"] = [[chunk.digest, chunk.size] for chunk in entry.chunks]
    if entry.type in ("symlink", "hardlink"):
        doc["target"] = entry.target
    return doc


def canonical(manifest: Manifest) -> Manifest:
    """The same manifest with packs sorted by reference and each pack's blobs by place."""
    packs = sorted(manifest.packs, key=lambda p: p.ref)
    return Manifest(
        manifest.entries,
        tuple(PackBlobs(p.ref, tuple(sorted(p.blobs, key=place))) for p in packs),
    )


def place(blob: BlobLocation) -> tuple[int, int]:
    """A blob's order in its pack: by frame, then inside it."""
    return blob.frame_offset, blob.offset


def encode_part(part: Manifest) -> bytes:
    """A part's bytes (the frame that stores it compresses them); its blobs are checked first."""
    part = canonical(part)
    for entry in part.entries:
        check_path(entry.path)
        check_entry(entry)
    check_blobs(part)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "entries": [entry_document(e) for e in part.entries],
        "packs": [{"ref": p.ref, "blobs": [blob_document(b) for b in p.blobs]} for p in part.packs],
    }
    text = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def decode_part(data: bytes) -> Manifest:
    """The part in ``data``, its fields and blobs checked; see the module doc for the errors."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise refuse(f"a part is not a JSON document ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise refuse("a part is not a cacher-tree-part document")
    if set(doc) != {"format", "version", "entries", "packs"}:
        raise refuse(f"a part has unexpected fields {sorted(set(doc))}")
    if doc["version"] != VERSION:
        raise refuse(f"a part's version {doc['version']!r} is not one this cacher reads")
    part = Manifest(
        tuple(_entry(item) for item in _list(doc["entries"], "entries")),
        tuple(_pack(item) for item in _list(doc["packs"], "packs")),
    )
    if canonical(part) != part:
        raise refuse("packs or blobs are out of order")
    check_blobs(part)
    return part


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise refuse(f"{what} is not a list")
    return value


def _int(value: object, what: str) -> int:
    if type(value) is not int or not -(1 << 63) <= value < 1 << 63:
        raise refuse(f"{what} is not a 64-bit integer")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise refuse(f"{what} is not a string")
    return value


def _digest(value: object) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise refuse(f"{value!r} is not a sha256 digest in lowercase hex")
    return value


def _entry(item: object) -> Entry:
    if not isinstance(item, dict):
        raise refuse("an entry is not an object")
    path = _str(item.get("path"), "an entry's path")
    kind = item.get("type")
    if kind not in ENTRY_TYPES:
        raise refuse(f"entry {path!r} has unknown type {kind!r}")
    if set(item) != _FIELDS[cast(str, kind)]:
        raise refuse(f"entry {path!r} has fields {sorted(item)}, not those of a {kind}")
    chunks = []
    for pair in _list(item.get("chunks", []), f"the chunks of {path!r}"):
        if not isinstance(pair, list) or len(pair) != 2:
            raise refuse(f"a chunk of {path!r} is not [digest, size]")
        chunks.append(Chunk(_digest(pair[0]), _int(pair[1], "a chunk size")))
    return Entry(
        path,
        cast(EntryType, kind),
        mode=_int(item.get("mode", 0), f"the mode of {path!r}"),
        mtime=_int(item.get("mtime", 0), f"the mtime of {path!r}"),
        size=_int(item.get("size", 0), f"the size of {path!r}"),
        chunks=tuple(chunks),
        target=_str(item.get("target", ""), f"the target of {path!r}"),
    )


def decode_part_packs(data: bytes) -> tuple[PackBlobs, ...]:
    """The blob places a part lists, without reading its entries: all an upload needs of its
    base (which blobs are stored, and where). A place that is wrong costs nothing silent: a
    restore checks every blob against its digest."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise refuse(f"a part is not a JSON document ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise refuse("a part is not a cacher-tree-part document this cacher reads")
    return tuple(_pack(item) for item in _list(doc.get("packs"), "packs"))


def _pack(item: object) -> PackBlobs:
    if not isinstance(item, dict) or set(item) != {"ref", "blobs"}:
        raise refuse("a pack is not {ref, blobs}")
    parse_pack_ref(item["ref"])
    return PackBlobs(item["ref"], tuple(blob_location(b) for b in _list(item["blobs"], "a pack's blobs")))


def blob_document(blob: BlobLocation) -> list[object]:
    """A blob's place as manifests and pack trailers write it."""
    return [blob.digest, blob.frame_offset, blob.frame_length, blob.offset, blob.size]


def blob_location(item: object) -> BlobLocation:
    """``[digest, frame offset, frame length, offset in frame, size]``, as manifests and pack
    trailers write a blob's place."""
    if not isinstance(item, list) or len(item) != 5:
        raise refuse("a blob is not [digest, frame offset, frame length, offset, size]")
    numbers = [_int(v, "a blob's place") for v in item[1:]]
    return BlobLocation(_digest(item[0]), *numbers)
