"""Restore one stored manifest into a kind's target, with every guarantee of the kind.

A kind whose tree is one directory and that gives a staging directory (`Kind.staging`: the
``dir`` kind's, swapped into place atomically) gets the tree written there straight from the
manifest's checked entries (`cacher.cas.place`: the tar extractor's rules, no tar stream, no
second thread). Any other kind gets the plain tar stream `cacher.cas.export.export_tar`
writes, so its own unpack decides what lands; the stream passes through a pipe from a writer
thread, never held whole. Either way every blob is checked against its digest before it is
written (`cacher.engine.cas_fetch`, fetching as the tree reaches them): a damaged pack fails
the restore as a damaged archive would, and the staging leaves the destination untouched.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cacher.cas import names
from cacher.cas.export import export_tar
from cacher.cas.model import Manifest
from cacher.cas.place import place_tree
from cacher.cas.statcache import FileRecord, record_tree
from cacher.engine.cas_fetch import Blobs, FetchCounts, blob_dirs
from cacher.engine.cas_layout import CasLayout, StoredManifest, read_manifest
from cacher.engine.cas_lookup import plain_key
from cacher.errors import ObjectRefused
from cacher.kind import Kind
from cacher.stores.base import ObjectInfo, Store

#: Written after a failure, before the pipe closes: not a tar header (its checksum is wrong),
#: so the kind's reader fails even where the stream broke between two members.
_BROKEN = b"\xff" * 1024

#: The object metadata field naming the kind whose tree a manifest holds.
TREE_KIND = "tree-kind"


@dataclass(frozen=True)
class CountingLayout(CasLayout):
    """A layout that counts the pack bytes read through it (the manifest's parts)."""

    counted: list[int] = field(default_factory=lambda: [0])

    def read(self, ref: str, start: int, end: int) -> bytes:
        data = super().read(ref, start, end)
        self.counted[0] += len(data)
        return data


@dataclass(frozen=True)
class CasRestored:
    """What one manifest restore did: the tree's logical bytes, the bytes read from the store
    (the manifest object, its parts, the packs' ranges) and where the blobs came from."""

    info: ObjectInfo
    raw_bytes: int
    stored_bytes: int
    counts: FetchCounts


def check_manifest_object(kind: Kind, info: ObjectInfo) -> None:
    """Refuse a manifest object this kind does not restore, before a byte of it is read: one
    whose metadata names no manifest, or another kind's tree."""
    stored = info.metadata.get("kind")
    if stored and stored != names.MANIFEST_KIND:
        raise ObjectRefused(f"{info.key} was stored by {stored!r}, not as a tree manifest")
    tree_kind = info.metadata.get(TREE_KIND)
    if tree_kind and not kind.restores(tree_kind):
        raise ObjectRefused(f"{info.key} holds a tree stored by {tree_kind!r}, not {kind.name!r}")


def load_manifest(store: Store, info: ObjectInfo, layout: CasLayout) -> tuple[StoredManifest, int]:
    """The checked manifest ``info`` names in ``store``, and the bytes read for it."""
    counting = CountingLayout(layout.root, layout.own, layout.readable)
    found = read_manifest(store, plain_key(info), counting, info)
    if found is None:  # pragma: no cover - read_manifest with an info never answers None
        raise ObjectRefused(f"{info.key} is not a manifest")
    return found, info.size + counting.counted[0]


def restore_manifest(
    store: Store,
    info: ObjectInfo,
    layout: CasLayout,
    kind: Kind,
    target: str | None,
    options: Mapping[str, Any],
) -> CasRestored:
    """Read the manifest ``info`` names, bring its blobs and restore its tree with ``kind``."""
    check_manifest_object(kind, info)
    kind.check_stored(info.metadata, target, options)
    found, read = load_manifest(store, info, layout)
    manifest = found.stored.manifest
    counts = FetchCounts()

    def unpack(stream: BinaryIO) -> None:
        kind.unpack(stream, target, options)

    directory = Path(target) if target and one_directory(kind) else None
    staging = kind.staging(target, options) if directory is not None else None
    with blob_dirs(layout.root) as (spill, shared):
        blobs = Blobs(manifest, layout, spill, shared, counts)
        # A kind that replaces one directory whole: what is there now may hold unchanged files.
        blobs.plan(directory)
        if staging is not None:  # written straight from the entries: no tar stream, no thread
            with staging as root:
                place_tree(manifest.entries, blobs.get, root)
        else:
            stream_tree(manifest, blobs.get, unpack)  # blobs still to come are fetched as asked for
    if directory is not None and layout.records is not None:  # the next save reads only what changes
        record_tree(FileRecord(layout.records, directory), directory, manifest.entries)
    return CasRestored(found.info, manifest.logical_size, read + counts.fetched_bytes, counts)


def one_directory(kind: Kind) -> bool:
    """Whether the kind's tree is one directory, its target (it gives `Kind.tree`: ``dir``)."""
    return type(kind).tree is not Kind.tree


def stream_tree(
    manifest: Manifest, blob: Callable[[str], bytes], consume: Callable[[BinaryIO], None]
) -> None:
    """Hand ``consume`` the tree of ``manifest`` as a tar stream, written by a thread into a
    pipe. An error on either side ends both (the reader closes the pipe, the writer's error is
    raised first: it says why the stream ended early); no thread or descriptor outlives the call."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    try:
        writer = os.fdopen(write_fd, "wb", buffering=1 << 16)
    except BaseException:
        os.close(write_fd)
        reader.close()
        raise
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            export_tar(manifest, blob, writer)
            writer.flush()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failed.append(exc)
            try:  # a block no tar reader accepts: the stream cannot end as if it were whole
                writer.write(_BROKEN)
                writer.flush()
            except (OSError, ValueError):
                pass
        finally:
            try:
                writer.close()
            except OSError:
                pass  # the reader went away: its own error says why

    thread = threading.Thread(target=produce, name="cacher-cas-export", daemon=True)
    thread.start()
    try:
        consume(reader)
        while reader.read(1 << 16):  # what the kind left unread (the archive's end blocks)
            pass
    except BaseException:
        reader.close()  # the writer, if blocked, fails with a broken pipe and ends
        thread.join()
        if failed and not isinstance(failed[0], BrokenPipeError):
            raise failed[0] from None
        raise
    reader.close()
    thread.join()
    if failed:
        raise failed[0]
