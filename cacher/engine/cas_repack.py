"""Repacking the content-addressed format's mostly-dead packs, in prune's sweep (issue 30).

After the mark (`cacher.engine.cas_gc.mark`), a pack of the job's own prefix is *mostly dead*
when the blobs any manifest still uses hold less than `LIVE_SHARE` of its frames' bytes (a
frame counted by the share of its blobs' bytes used, from the pack's index), it is older
than the grace period, every manifest naming it is the job's own (a pack another scope's
tree names stays anyway: copying its blobs would only add bytes), and saving them again keeps
the order restore keys see (`Order`). Each own manifest naming
such a pack is saved again: the blobs of those packs are read (checked against their digests,
as a restore does) into new packs under the job's own prefix, every other blob keeps its
place, the parts are cut and stored as a save stores them (`cacher.cas.root.cut_parts`), and
the new tree is read back and compared with the old before anything is published. Blobs one
manifest moved are reused by the next, so trees sharing a dead pack share its new copy.

Publishing keeps the format's order: new packs first, then the manifest at the same key with
the same metadata, but only when the manifest read again right before is byte-identical to
the one repacked (a concurrent upload of the key wins). The old packs, now unreferenced, go
through the sweep's two phases like any other, so a restore that read the old manifest finds
them for the grace period. A dry run, or a store the gate keeps read-only, writes nothing.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from cacher.cas import names
from cacher.cas.manifest import canonical, encode_part
from cacher.cas.model import MAX_BLOB, BlobLocation, Manifest, PackBlobs
from cacher.cas.pack import PACK_TARGET, Packer, PackInfo
from cacher.cas.packread import read_blobs, read_index
from cacher.cas.plan import to_fetch
from cacher.cas.root import Root, Stored, cut_parts, encode_root, load
from cacher.engine.cas_gc import Census, directory
from cacher.engine.cas_layout import CasLayout
from cacher.engine.listing import cas_split
from cacher.errors import CacherError, IntegrityError, ObjectRefused
from cacher.keying.scopes import RESERVED
from cacher.stores.base import ObjectInfo, Store
from cacher.streams import Writable

__all__ = ["LIVE_SHARE", "Order", "Repack", "mostly_dead", "own_manifest", "repack"]

#: A pack whose used frames hold less than this share of its bytes is repacked.
LIVE_SHARE = 0.5
#: The longest ranged read of a mostly-dead pack.
READ = 8 << 20

Place = tuple[str, BlobLocation]


@dataclass(frozen=True)
class Repack:
    """What a repack did (or, on a dry run, would do): the mostly-dead packs whose blobs were
    moved (``packs``, their bytes ``freed`` once the sweep deletes them), the manifests saved
    again (``manifests``, names relative to the configured prefix), those left alone because
    they changed meanwhile or could not be saved again (``skipped``), the bytes of new packs
    stored (``written``), and, by manifest, the packs each now names (for the sweep's mark)."""

    dry_run: bool
    packs: tuple[str, ...] = ()
    freed: int = 0
    manifests: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    written: int = 0
    now_naming: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Of ``skipped``, the trees found damaged (a blob that does not match its digest, a pack
    #: gone or short, a manifest refused): a restore of them fails, and prune says so.
    damaged: tuple[str, ...] = ()


def own_manifest(name: str, own: str | None) -> bool:
    """Whether a manifest (its name relative to the configured prefix) is under the job's own
    prefix: ``_scopes/<own>/...``, or, unscoped, anything outside ``_scopes/``."""
    if own:
        return name.startswith(f"{RESERVED}/{own}/")
    return not name.startswith(f"{RESERVED}/")


def mostly_dead(
    layout: CasLayout,
    own_packs: Mapping[str, ObjectInfo],
    used: Mapping[str, Mapping[str, BlobLocation]],
    naming: Mapping[str, frozenset[str]],
    cutoff: float,
) -> dict[str, ObjectInfo]:
    """The packs of ``own_packs`` to repack (see the module's text): ``used`` holds each pack's
    blobs some manifest uses, ``naming`` each manifest's packs; ``cutoff`` the time a pack
    must be older than."""
    foreign = {ref for name, refs in naming.items() if not own_manifest(name, layout.own) for ref in refs}
    dead: dict[str, ObjectInfo] = {}
    for ref, obj in own_packs.items():
        blobs = used.get(ref)
        if not blobs or ref in foreign or obj.size <= 0:
            continue  # unreferenced packs are the sweep's; another scope's tree keeps this one
        if obj.modified is None or obj.modified.timestamp() > cutoff:
            continue
        live, total = _live(layout, ref, obj.size, blobs)
        if live < LIVE_SHARE * total:
            dead[ref] = obj
    return dead


def _live(layout: CasLayout, ref: str, size: int, blobs: Mapping[str, BlobLocation]) -> tuple[float, int]:
    """The bytes of a pack's frames that used blobs hold, and of all its frames, from the
    pack's index (one ranged read of its end): each used frame's length times the share of its
    blobs' bytes that are used (a pack of small files shares frames). A pack whose index cannot
    be read counts as wholly used."""
    try:
        index = read_index(lambda start, end: layout.read(ref, start, end), size)
    except (CacherError, OSError):
        return 1.0, 1
    frames: dict[int, tuple[int, int]] = {}
    for loc in index:
        length, raw = frames.get(loc.frame_offset, (loc.frame_length, 0))
        frames[loc.frame_offset] = (length, raw + loc.size)
    share: dict[int, int] = {}
    for loc in blobs.values():
        share[loc.frame_offset] = share.get(loc.frame_offset, 0) + loc.size
    live = 0.0
    for at, used in share.items():
        length, raw = frames.get(at, (0, 0))
        live += length * min(1.0, used / raw) if raw else 0
    return live, sum(length for length, _ in frames.values())


class Order:
    """Keeps the order restore keys see. Saving a manifest again makes it the newest object
    of its key's directory (`cacher.engine.cas_gc.directory`: ``deps/`` of ``deps/<hash>``),
    and restore keys take the newest. So the manifests saved again in a directory must be
    newer already than every other key there, and are saved oldest first, a second apart at
    least (S3 keeps whole seconds): a pack that an older tree names while a newer one does not
    waits instead until the older tree is pruned, then goes whole."""

    def __init__(self, found: Census) -> None:
        self.when = {m.key: _time(m) for m in found.manifests}
        self.others = found.others
        self.by_dir: dict[str, list[str]] = {}
        for name in self.when:
            self.by_dir.setdefault(directory(name), []).append(name)
        self.written: dict[str, float] = {}

    def keep_order(
        self, dead: Mapping[str, ObjectInfo], naming: Mapping[str, frozenset[str]]
    ) -> dict[str, ObjectInfo]:
        """The packs of ``dead`` whose manifests can all be saved again in order."""
        left = dict(dead)
        while True:
            chosen = {n for n, refs in naming.items() if refs & left.keys()}
            blocked: set[str] = set()
            for at in {directory(n) for n in chosen}:
                members = [n for n in self.by_dir.get(at, ()) if n in chosen]
                rest = [self.when[n] for n in self.by_dir.get(at, ()) if n not in chosen]
                if max([*rest, self.others.get(at, float("-inf"))]) >= min(self.when[n] for n in members):
                    blocked.update(members)
            if not blocked:
                return left
            for name in blocked:
                for ref in naming[name]:
                    left.pop(ref, None)

    def oldest_first(self, manifests: list[str]) -> list[str]:
        return sorted(manifests, key=lambda n: (self.when.get(n, 0.0), n))

    def wait_turn(self, name: str) -> None:
        """Before saving ``name`` again: let the second of the last one saved in its
        directory pass."""
        last = self.written.get(directory(name))
        if last is not None and int(time.time()) <= int(last):
            time.sleep(int(last) + 1 - time.time() + 0.01)

    def saved(self, name: str) -> None:
        self.written[directory(name)] = time.time()


def _time(obj: ObjectInfo) -> float:
    return obj.modified.timestamp() if obj.modified is not None else float("inf")


def repack(
    layout: CasLayout,
    dead: Mapping[str, ObjectInfo],
    naming: Mapping[str, frozenset[str]],
    order: Order,
    *,
    dry_run: bool,
    renew: frozenset[str] = frozenset(),
) -> Repack:
    """Save again every own manifest of ``naming`` that names a pack of ``dead`` (see the
    module's text), oldest first (`Order`); ``renew``: packs to store again even if one of
    that id is there (those the sweep condemned)."""
    mine = [n for n, refs in naming.items() if own_manifest(n, layout.own) and refs & dead.keys()]
    chosen = order.oldest_first(mine)
    if not chosen:
        return Repack(dry_run)
    if dry_run:
        would = {ref for name in chosen for ref in naming[name] & dead.keys()}
        return Repack(True, tuple(sorted(would)), sum(dead[ref].size for ref in would), tuple(chosen))
    mover = _Mover(layout, frozenset(dead), renew, order)
    done: list[str] = []
    skipped: list[str] = []
    now_naming: dict[str, frozenset[str]] = {}
    for name in chosen:
        refs = mover.save_again(name)
        if refs is None:
            skipped.append(name)
        else:
            done.append(name)
            now_naming[name] = refs
    held = {ref for name in skipped for ref in naming[name]}
    moved = {ref for name in done for ref in naming[name] & dead.keys()} - held
    return Repack(
        False, tuple(sorted(moved)), sum(dead[ref].size for ref in moved), tuple(done),
        tuple(skipped), mover.written, now_naming, tuple(n for n in skipped if n in mover.damaged),
    )


class _Mover:
    """Saves manifests again off the ``dead`` packs, keeping the blobs it moved for the next."""

    def __init__(self, layout: CasLayout, dead: frozenset[str], renew: frozenset[str], order: Order) -> None:
        self.layout, self.dead, self.renew, self.order = layout, dead, renew, order
        self.moved: dict[str, Place] = {}
        self.written = 0
        self.damaged: set[str] = set()

    def save_again(self, name: str) -> frozenset[str] | None:
        """Repack the manifest ``name``; the packs it now names, or None when it was left alone
        (gone, changed since, or it could not be read or saved again: the sweep keeps its packs)."""
        store, key = _manifest_store(self.layout.root, name)
        try:
            before = _read(store, key)
            if before is None:
                return None
            info, data = before
            old = load(data, self.layout.read)
            root = self._save(old)
            again = load(root, self.layout.read)  # every part read back and checked
            if again.manifest.entries != old.manifest.entries:
                return None
            self.order.wait_turn(name)
            now = _read(store, key)
            if now is None or now[1] != data:
                return None  # an upload replaced it meanwhile: it wins
            with store.writer(names.manifest_name(key), dict(info.metadata)) as out:
                out.write(root)
            self.order.saved(name)
        except (IntegrityError, ObjectRefused):
            self.damaged.add(name)  # its restore fails too: prune names it
            return None
        except (CacherError, OSError):
            return None
        return frozenset(ref for ref, _ in again.known().values())

    def _save(self, old: Stored) -> bytes:
        """The root of ``old``'s tree with the blobs of dead packs in new packs."""
        places = old.manifest.locations()
        packer = Packer(_spool, self._store, PACK_TARGET)
        for digest, data in self._fetch(places):
            packer.add(digest, data)
        contents = len(packer.finish())
        self.moved.update(self._placed(packer.finished))
        kept = {d: p for d, p in places.items() if p[0] not in self.dead}
        new_places = {**kept, **{d: self.moved[d] for d in places if d not in kept}}
        by_pack: dict[str, list[BlobLocation]] = {}
        for ref, blob in new_places.values():
            by_pack.setdefault(ref, []).append(blob)
        packs = tuple(PackBlobs(r, tuple(b)) for r, b in by_pack.items())
        manifest = canonical(Manifest(old.manifest.entries, packs))
        known = {loc.digest: (ref, loc) for ref, loc in old.root.parts if ref not in self.dead}
        known.update(self.moved)
        digests = []
        for part in cut_parts(manifest):
            data = encode_part(part)
            if len(data) > MAX_BLOB:
                raise CacherError(f"a part would hold {len(data)} bytes, more than {MAX_BLOB}")
            digest = hashlib.sha256(data).hexdigest()
            digests.append(digest)
            if digest not in known:
                packer.add(digest, data)
        parts = self._placed(packer.finish()[contents:])
        self.moved.update(parts)
        known.update(parts)
        return encode_root(Root(tuple(known[d] for d in digests), len(manifest.entries)))

    def _fetch(self, places: Mapping[str, Place]) -> Iterator[tuple[str, bytes]]:
        """The blobs of ``places`` in dead packs not moved yet, checked, read by coalesced
        ranged reads."""
        wanted: dict[str, list[BlobLocation]] = {}
        for digest, (ref, loc) in places.items():
            if ref in self.dead and digest not in self.moved:
                wanted.setdefault(ref, []).append(loc)
        plan = Manifest((), tuple(PackBlobs(ref, tuple(locs)) for ref, locs in sorted(wanted.items())))
        for read in to_fetch(canonical(plan), set(), max_read=READ):
            data = self.layout.read(read.ref, read.start, read.end)
            yield from read_blobs(_window(data, read.start), read.blobs)

    def _placed(self, packs: list[PackInfo]) -> dict[str, Place]:
        return {blob.digest: (self.layout.pack_ref(p.pack_id), blob) for p in packs for blob in p.blobs}

    def _store(self, sink: Writable, info: PackInfo) -> None:
        spool: BinaryIO = sink  # type: ignore[assignment]
        with spool:
            spool.seek(0)
            self.written += self.layout.put_pack(info.pack_id, spool, info.size, self.renew)


def _window(data: bytes, base: int) -> Callable[[int, int], bytes]:
    """A ranged reader over the bytes one coalesced read fetched (``data``, from ``base``)."""
    return lambda start, end: data[start - base : end - base]


def _spool() -> Writable:
    return tempfile.SpooledTemporaryFile(max_size=PACK_TARGET * 2)


def _manifest_store(root: Store, name: str) -> tuple[Store, str]:
    """The store (under the manifest's scope and kind namespace) and key of a manifest named
    relative to the configured prefix."""
    before, rest = cas_split(name) or ("", name)
    key = rest[len(names.MANIFESTS) + 1 :]
    return root.with_prefix("/".join(p for p in (root.prefix, before.rstrip("/")) if p)), key


def _read(store: Store, key: str) -> tuple[ObjectInfo, bytes] | None:
    """The manifest object of ``key`` and its bytes, or None when none is stored."""
    name = names.manifest_name(key)
    info = store.head(name)
    if info is None:
        return None
    with store.open_read(name, info) as stream:
        return info, stream.read()
