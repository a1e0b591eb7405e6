"""Where a job's content-addressed objects live, and the store operations the format needs.

`cacher.cas` works on bytes; this module joins it to a `Store`. A `CasLayout` is built once per
job (`cacher.job.Job.cas_layout`): ``root`` is the store under the *configured* prefix, since a
manifest names packs relative to it (``_cas/packs/...`` or ``_scopes/<segment>/_cas/packs/...``);
``own`` is the job's scope segment, the only place it writes packs; ``readable`` the segments
whose packs an upload may reuse (its own, then its fallback scopes: docs/format.md), and
``fallbacks`` those scopes' stores. Manifests
live beside the keys, in the (kind-bound) store a transfer uses, at ``_cas/manifests/KEY``.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cacher.cas import names
from cacher.cas.root import Known, Stored, load, load_known
from cacher.errors import IntegrityError, StorageError
from cacher.stores.base import LEFTOVER_AGE, ObjectInfo, Store

__all__ = ["CasLayout", "StoredManifest", "read_manifest"]


@dataclass(frozen=True)
class CasLayout:
    """A job's place for content-addressed objects (see the module's text)."""

    root: Store
    own: str | None = None
    readable: tuple[str | None, ...] = (None,)
    #: (scope, store) of the fallback scopes, as `cacher.job.Job.fallback_stores` gives them:
    #: where an upload also looks for its base's manifest.
    fallbacks: tuple[tuple[str, Store], ...] = ()
    #: Where this runner keeps its records of the files it restored or saved
    #: (`cacher.cas.statcache`); None: no records, every file is read.
    records: Path | None = None

    def pack_ref(self, pack_id: str) -> str:
        """The reference of a pack this job writes: under its own prefix."""
        return names.pack_ref(pack_id, self.own)

    def read(self, ref: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of the pack a manifest names by ``ref`` (checked first:
        a reference of any other shape is refused before anything is read). A pack that is not
        stored, or shorter than ``end``, is an `IntegrityError`: the tree is damaged, and is
        made again like a damaged archive (``ensure``), not a store that failed."""
        names.parse_pack_ref(ref)
        try:
            return self.root.read_range(ref, start, end)
        except StorageError:
            there = self.root.head(ref)  # a pack gone or cut short is a damaged tree, not an outage
            if there is None or there.size < end:
                what = "not stored" if there is None else f"{there.size} bytes, shorter than the tree needs"
                raise IntegrityError(f"the tree names the pack {ref}, which is {what}") from None
            raise

    def may_reuse(self, ref: str) -> bool:
        """Whether an upload may reference this pack instead of sending its blobs: only packs
        of scopes the job may read (its own and its fallback scopes)."""
        return names.parse_pack_ref(ref)[0] in self.readable

    def reusable(self, known: Known) -> Known:
        """The blobs of a stored tree (`Stored.known`, `cacher.cas.root.load_known`) an upload
        may reference rather than send."""
        return {digest: place for digest, place in known.items() if self.may_reuse(place[0])}

    def put_pack(self, pack_id: str, source: BinaryIO, size: int, renew: Container[str] = ()) -> int:
        """Store a finished pack of ``size`` bytes (``source`` at its start) under its id, unless
        a pack of that id is there already (same id, same bytes): the bytes sent, 0 when it was
        there. One is stored again when it is not whole (another size), is in ``renew`` (prune
        condemned it, or it is named by a tree being replaced: `cacher.engine.cas_reuse`), or
        is old (prune may have condemned it since; it spares a pack stored again)."""
        ref = self.pack_ref(pack_id)
        there = self.root.head(ref)
        if there is not None and there.size == size and ref not in renew and not _stale(there):
            return 0
        sent = 0
        with self.root.writer(ref, dict(names.PACK_METADATA)) as out:
            while block := source.read(1 << 20):
                out.write(block)
                sent += len(block)
        return sent


#: A pack stored longer ago than this is stored again rather than reused by name: half the
#: prune's default grace period, so a condemned pack an upload needs is refreshed in time.
REFRESH_AFTER = LEFTOVER_AGE / 2


def _stale(info: ObjectInfo) -> bool:
    return info.modified is None or datetime.now(UTC) - info.modified > REFRESH_AFTER


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as read from a store: the object's info and the checked tree."""

    info: ObjectInfo
    stored: Stored


def read_known(store: Store, key: str, layout: CasLayout) -> tuple[ObjectInfo, Known] | None:
    """What an upload needs of its base: the manifest object of ``key`` and the blobs its
    objects hold, by digest (the entries are not read); None when no manifest is stored."""
    name = names.manifest_name(key)
    info = store.head(name)
    if info is None:
        return None
    with store.open_read(name, info) as stream:
        data = stream.read()
    return info, load_known(data, layout.read)


def read_manifest(
    store: Store, key: str, layout: CasLayout, info: ObjectInfo | None = None
) -> StoredManifest | None:
    """The manifest of ``key`` in ``store`` (a kind-bound view of the job's store, or of a
    fallback scope's), read and checked whole (`cacher.cas.root.load`: every part against its
    digest, every tree rule); None when no manifest is stored under ``key``. A manifest that
    breaks the format is `ObjectRefused` or `IntegrityError`, as a damaged archive is."""
    name = names.manifest_name(key)
    if info is None:
        info = store.head(name)
        if info is None:
            return None
    with store.open_read(name, info) as stream:
        data = stream.read()
    return StoredManifest(info, load(data, layout.read))
