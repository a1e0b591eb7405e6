"""Garbage collection of the content-addressed format's packs: mark every manifest, sweep the
job's own unreferenced packs in two phases, and the sizes ``stats`` reports.

Mark: every manifest under the configured prefix (every scope's and kind namespace's: a pack
of one scope may be named by another scope's manifest) is read and checked
(`cacher.engine.cas_layout.read_manifest`), giving the packs still referenced. One manifest that
cannot be read could name any pack, so that run deletes nothing (safety over space).

Sweep, without locks: an upload writes its packs first and its manifest last, and may name packs
an older manifest named. So a pack is only *condemned* when it is unreferenced and older than
the grace period (by its modification time), recorded with the time in a small record at
``<P>/_cas/gc/condemned`` (P: the job's own prefix); a later prune deletes it when it is still
unreferenced, unchanged since, and was condemned at least the grace period before. An upload
that learned of a pack before it was condemned and publishes its manifest more than the grace
period later can still lose it: that race remains (docs/format.md).

Between the two, the job's own mostly-dead packs are repacked (`cacher.engine.cas_repack`):
the manifests naming them are saved again off them, so they become unreferenced and go the
same two-phase way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cacher.cas import names
from cacher.cas.model import BlobLocation
from cacher.engine.cas_layout import CasLayout, read_manifest
from cacher.engine.listing import cas_split, is_key, manifest_key
from cacher.errors import CacherError
from cacher.keying.scopes import RESERVED
from cacher.stores.base import LEFTOVER_AGE, ObjectInfo, Store

if TYPE_CHECKING:
    from cacher.engine.cas_repack import Repack

__all__ = [
    "GRACE", "RECORD", "CasStats", "Census", "Marked", "Sweep",
    "cas_stats", "census", "mark", "sweep", "within",
]

#: Seconds an unreferenced pack waits before it is condemned, and condemned before it goes.
GRACE = LEFTOVER_AGE.total_seconds()
#: The record of condemned packs, under the job's own prefix.
RECORD = f"{names.NAMESPACE}/gc/condemned"
RECORD_FORMAT = "cacher-gc/1"
#: The largest record read: about 100,000 packs.
MAX_RECORD = 16 << 20


@dataclass(frozen=True)
class Census:
    """One listing of the configured prefix: manifests (object names relative to it) and packs
    (by reference), with what the listing said of each."""

    manifests: tuple[ObjectInfo, ...]
    packs: dict[str, ObjectInfo]
    #: By key directory (`directory`): the newest modification time of the other keys there
    #: (archives and anything else that is no manifest, pack or record).
    others: dict[str, float] = field(default_factory=dict)


def census(root: Store) -> Census:
    """List ``root`` (the store under the configured prefix) once, keeping manifests and packs."""
    manifests: list[ObjectInfo] = []
    packs: dict[str, ObjectInfo] = {}
    others: dict[str, float] = {}
    for obj in root.iter_list(""):
        if manifest_key(obj.key) is not None:
            manifests.append(obj)
        elif cas_split(obj.key) is not None and _is_pack(obj.key):
            packs[obj.key] = obj
        elif is_key(obj.key):
            at = directory(obj.key)
            when = obj.modified.timestamp() if obj.modified is not None else float("inf")
            others[at] = max(others.get(at, when), when)
    return Census(tuple(manifests), packs, others)


def directory(name: str) -> str:
    """The directory of a key (a manifest's, its namespace kept): what comes before its last
    ``/``. Restore keys compare the keys of one such family by modification time."""
    return (manifest_key(name) or name).rpartition("/")[0]


def _is_pack(name: str) -> bool:
    try:
        names.parse_pack_ref(name)
    except CacherError:
        return False
    return True


@dataclass(frozen=True)
class Marked:
    """What the manifests reference: pack references, and the sizes of the trees they hold."""

    referenced: frozenset[str]
    manifests: int
    logical: int
    unreadable: tuple[str, ...] = ()
    #: By pack: the blobs some manifest uses, by digest.
    used: dict[str, dict[str, BlobLocation]] = field(default_factory=dict)
    #: By manifest (name relative to the configured prefix): the packs it names.
    naming: dict[str, frozenset[str]] = field(default_factory=dict)


def mark(
    layout: CasLayout,
    found: Census,
    *,
    skip: frozenset[str] = frozenset(),
    only: Callable[[str], bool] | None = None,
) -> Marked:
    """Read every manifest of ``found`` (but those named in ``skip``: deleted, or about to be;
    with ``only``, those it accepts) and gather the packs they name. A manifest that is gone
    by now is passed over; one that cannot be read is named in ``unreadable``. An object at a
    manifest's name that records another kind is no manifest (a key that merely holds the
    segments) and is passed over too."""
    referenced: set[str] = set()
    count = logical = 0
    unreadable: list[str] = []
    used: dict[str, dict[str, BlobLocation]] = {}
    naming: dict[str, frozenset[str]] = {}
    for obj in found.manifests:
        if obj.key in skip or (only is not None and not only(obj.key)):
            continue
        before, rest = cas_split(obj.key) or ("", obj.key)
        key = rest[len(names.MANIFESTS) + 1 :]
        store = layout.root.with_prefix("/".join(p for p in (layout.root.prefix, before.rstrip("/")) if p))
        try:
            info = store.head(names.manifest_name(key))
            if info is not None and info.metadata.get("kind", names.MANIFEST_KIND) != names.MANIFEST_KIND:
                continue
            stored = read_manifest(store, key, layout, info) if info is not None else None
        except (CacherError, OSError):
            unreadable.append(obj.key)
            continue
        if stored is None:
            continue
        count += 1
        logical += stored.stored.manifest.logical_size
        places = stored.stored.known().values()
        naming[obj.key] = frozenset(ref for ref, _ in places)
        referenced.update(naming[obj.key])
        for ref, loc in places:
            used.setdefault(ref, {})[loc.digest] = loc
    return Marked(frozenset(referenced), count, logical, tuple(unreadable), used, naming)


@dataclass(frozen=True)
class Sweep:
    """What a sweep of the job's own packs did (or, on a dry run, would do)."""

    dry_run: bool
    deleted: tuple[ObjectInfo, ...] = ()
    condemned: tuple[str, ...] = ()
    waiting: int = 0
    live: int = 0
    young: int = 0
    unreadable: tuple[str, ...] = ()
    #: The repack of mostly-dead packs before the sweep (`cacher.engine.cas_repack`).
    repacked: Repack | None = None

    @property
    def held(self) -> bool:
        """Whether nothing was deleted because a manifest could not be read."""
        return bool(self.unreadable)

    @property
    def freed(self) -> int:
        """The bytes of the deleted packs."""
        return sum(o.size for o in self.deleted)


def sweep(
    layout: CasLayout,
    *,
    grace: float = GRACE,
    dry_run: bool = False,
    skip: frozenset[str] = frozenset(),
    now: float | None = None,
    repack: bool = True,
) -> Sweep:
    """Mark, repack the job's mostly-dead packs (unless ``repack`` is False), then delete the
    job's own packs condemned by an earlier run at least ``grace`` seconds ago and unreferenced
    still, and condemn those newly unreferenced and older than ``grace`` (see the module's
    text). ``skip``: manifests (names relative to the configured prefix) to count as gone,
    those a dry run would delete. A store that is not ``writable``
    (the read-only gate) or ``dry_run`` deletes and records nothing."""
    now = time.time() if now is None else now
    dry_run = dry_run or not layout.root.writable
    if next(iter(layout.root.iter_list(within(layout) + names.PACKS + "/")), None) is None:
        return Sweep(dry_run)  # no pack of its own: nothing to sweep, the prefix not listed whole
    found = census(layout.root)
    marked = mark(layout, found, skip=skip)
    own = {ref: obj for ref, obj in found.packs.items() if names.parse_pack_ref(ref)[0] == layout.own}
    live = sum(1 for ref in own if ref in marked.referenced)
    if marked.unreadable:
        return Sweep(dry_run, live=live, unreadable=marked.unreadable)
    record = read_record(layout)
    cutoff = now - grace
    repacked = _repack(layout, found, marked, own, cutoff, dry_run, frozenset(record)) if repack else None
    if repacked is not None and repacked.now_naming:  # the repacked manifests name new packs now
        naming = {**marked.naming, **repacked.now_naming}
        marked = replace(marked, referenced=frozenset(ref for refs in naming.values() for ref in refs))
        live = sum(1 for ref in own if ref in marked.referenced)
    doomed: list[ObjectInfo] = []
    kept: dict[str, float] = {}
    young = 0
    for ref, obj in sorted(own.items()):
        if ref in marked.referenced:
            continue
        modified = obj.modified.timestamp() if obj.modified is not None else None
        since = record.get(ref)
        if since is not None and modified is not None and modified <= since:
            if since <= cutoff:
                doomed.append(obj)
            else:
                kept[ref] = since
        elif modified is not None and modified <= cutoff:
            kept[ref] = now  # condemned now (a pack stored again since its record starts over)
        else:
            young += 1
    condemned = tuple(ref for ref, since in kept.items() if since == now)
    if not dry_run:
        doomed = _delete_unchanged(layout.root, doomed, record)
        if kept or record:
            write_record(layout, kept)
    return Sweep(dry_run, tuple(doomed), condemned, len(kept) - len(condemned), live, young, (), repacked)


def _delete_unchanged(root: Store, doomed: list[ObjectInfo], record: dict[str, float]) -> list[ObjectInfo]:
    """Delete each doomed pack still the one condemned, checked right before its own DELETE
    (not all first: an upload storing one again meanwhile would lose it); those deleted."""
    gone: list[ObjectInfo] = []
    for obj in doomed:
        if _unchanged(root, obj, record[obj.key]):
            root.delete(obj.key)
            gone.append(obj)
    return gone


INF = float("inf")


def _repack(
    layout: CasLayout, found: Census, marked: Marked, own: dict[str, ObjectInfo], cutoff: float,
    dry_run: bool, renew: frozenset[str],
) -> Repack:
    """The repack of the job's mostly-dead packs (`cacher.engine.cas_repack`)."""
    from cacher.engine.cas_repack import Order, mostly_dead, repack

    dead = mostly_dead(layout, own, marked.used, marked.naming, cutoff)
    order = Order(found)
    # A tree saved within the grace period is not saved again: an upload or delete of its key
    # landing between the repack's last read and its write would be undone (S3 has no
    # conditional PUT), and a key saved lately is the one likely to be saved again.
    recent = {ref for name, refs in marked.naming.items() if order.when.get(name, INF) > cutoff
              for ref in refs}
    dead = {ref: obj for ref, obj in dead.items() if ref not in recent}
    dead = order.keep_order(dead, marked.naming)
    return repack(layout, dead, marked.naming, order, dry_run=dry_run, renew=renew)


def _unchanged(root: Store, obj: ObjectInfo, since: float) -> bool:
    """Whether a pack about to be deleted is still the one condemned: an upload that stores it
    again (same id, same bytes) since the listing makes it new, and it stays."""
    now = root.head(obj.key)
    return now is not None and now.modified is not None and now.modified.timestamp() <= since


def within(layout: CasLayout) -> str:
    """The job's own prefix relative to the configured one: ``""`` or ``_scopes/<segment>/``."""
    return f"{RESERVED}/{layout.own}/" if layout.own else ""


def record_name(layout: CasLayout) -> str:
    """The job's record of condemned packs, relative to the configured prefix."""
    return within(layout) + RECORD


def read_record(layout: CasLayout) -> dict[str, float]:
    """The job's condemned packs and when each was condemned; empty when there is no record or
    it cannot be read (every pack's wait then starts over: later, never sooner)."""
    name = record_name(layout)
    try:
        info = layout.root.head(name)
        if info is None or info.size > MAX_RECORD:
            return {}
        with layout.root.open_read(name, info) as stream:
            doc = json.loads(stream.read(MAX_RECORD + 1).decode("utf-8"))
    except (CacherError, OSError, ValueError):
        return {}
    packs = doc.get("packs") if isinstance(doc, dict) and doc.get("format") == RECORD_FORMAT else None
    if not isinstance(packs, dict):
        return {}
    own = layout.own
    return {
        ref: float(when)
        for ref, when in packs.items()
        if isinstance(when, int | float) and _is_pack(ref) and names.parse_pack_ref(ref)[0] == own
    }


def write_record(layout: CasLayout, packs: dict[str, float]) -> None:
    """Replace the job's record with ``packs`` (reference: when condemned)."""
    doc = {"format": RECORD_FORMAT, "packs": dict(sorted(packs.items()))}
    with layout.root.writer(record_name(layout), {"kind": "cas-gc", "codec": "none"}) as out:
        out.write(json.dumps(doc, sort_keys=True).encode())


@dataclass(frozen=True)
class CasStats:
    """The content-addressed trees under a prefix: how many, their sizes as restored
    (``logical``) and the bytes of the packs they reference (``stored``)."""

    manifests: int
    logical: int
    stored: int
    unreadable: tuple[str, ...] = field(default=())

    @property
    def ratio(self) -> float | None:
        """The deduplication ratio: logical over stored bytes (None when nothing is stored)."""
        return self.logical / self.stored if self.stored else None


def cas_stats(layout: CasLayout, within: str, prefix: str = "") -> CasStats:
    """`CasStats` of the manifests under ``within`` (the job's own prefix relative to the
    configured one: ``""`` or ``_scopes/<segment>/``) whose key starts with ``prefix``."""

    def only(name: str) -> bool:
        key = manifest_key(name)
        return name.startswith(within) and key is not None and key[len(within) :].startswith(prefix)

    found = census(layout.root)
    marked = mark(layout, found, only=only)
    stored = sum(found.packs[ref].size for ref in marked.referenced if ref in found.packs)
    return CasStats(marked.manifests, marked.logical, stored, marked.unreadable)
