"""What a content-addressed upload may reference instead of sending: its base's blobs, minus
any that a reader could not get back.

The base is ``--base``, else the key itself (not for ``--force``: it replaces that tree), else
the newest manifest under each restore-key prefix, in the job's scope, then its fallback
scopes. Its blobs are reused only from packs that are there and long enough (one HEAD per
pack, on a few threads), of scopes the job may read, not condemned by a prune (the scopes'
records, `cacher.engine.cas_gc`), and, for ``--force``, not named by the tree being replaced:
a pack that failed verification would otherwise be named again by every upload, and the key
would never heal. Packs of the same id made again are stored again in those last two cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from cacher.cas import names
from cacher.cas.root import Known
from cacher.engine.cas_gc import read_record
from cacher.engine.cas_layout import CasLayout, read_known
from cacher.engine.listing import newest_first
from cacher.engine.requests import UploadRequest, bound_store
from cacher.errors import IntegrityError, ObjectRefused, StorageError
from cacher.stores.base import ObjectInfo, Store

__all__ = ["HEADS", "Reuse", "find_base", "plan_reuse"]

#: HEADs of the base's packs at once.
HEADS = 8


@dataclass(frozen=True)
class Reuse:
    """What an upload may reference (``known``), the refs of packs it must store again even if
    a pack of that id is there (``renew``), and the base's manifest (None: none found)."""

    known: Known
    renew: frozenset[str]
    base: ObjectInfo | None


def plan_reuse(store: Store, request: UploadRequest, layout: CasLayout) -> Reuse:
    """The blobs this upload need not send (see the module's text)."""
    renew: set[str] = set()
    if request.force:  # the tree being replaced may be the damaged one
        replaced = _readable(store, request.key, layout)
        if replaced is not None:
            renew.update(ref for ref, _ in replaced[1].values())
    for segment in layout.readable:
        renew.update(read_record(replace(layout, own=segment)))
    base = find_base(store, request, layout)
    if base is None:
        return Reuse({}, frozenset(renew), None)
    candidates = {d: place for d, place in layout.reusable(base[1]).items() if place[0] not in renew}
    whole = set(_whole_packs(layout, candidates))
    known = {digest: place for digest, place in candidates.items() if place[0] in whole}
    return Reuse(known, frozenset(renew), base[0])


def _whole_packs(layout: CasLayout, known: Known) -> Iterator[str]:
    """The refs of ``known`` whose pack is stored and reaches the end of every frame used."""
    needed: dict[str, int] = {}
    for ref, loc in known.values():
        needed[ref] = max(needed.get(ref, 0), loc.frame_end)

    def there(ref: str) -> bool:
        try:
            info = layout.root.head(ref)
        except StorageError:
            return False  # not known to be there: its blobs are sent again
        return info is not None and info.size >= needed[ref]

    with ThreadPoolExecutor(HEADS, "cacher-cas-head") as pool:
        for ref, ok in zip(needed, pool.map(there, needed), strict=True):
            if ok:
                yield ref


def find_base(store: Store, request: UploadRequest, layout: CasLayout) -> tuple[ObjectInfo, Known] | None:
    """The manifest whose contents this upload need not send, and the blobs its objects hold:
    ``--base`` (or the key itself, unless ``--force``), else the newest manifest under each
    restore-key prefix, in the job's own store, then each fallback scope's. A base that cannot
    be read is passed over: it only saves bytes."""
    kind, targets, options = request.kind, request.targets, request.options
    stores = [store, *(bound_store(other, kind, targets, options) for _, other in layout.fallbacks)]
    exact = [request.base] if request.base else [] if request.force else [request.key]
    for where in stores:
        for key in exact:
            found = _readable(where, key, layout)
            if found is not None:
                return found
    for prefix in request.restore_keys:
        for where in stores:
            listed = where.iter_list(f"{names.MANIFESTS}/{prefix}")
            for candidate in newest_first(_as_keys(listed), prefix):
                if request.force and candidate.key == request.key and where is store:
                    continue  # the tree being replaced
                found = _readable(where, candidate.key, layout)
                if found is not None:
                    return found
    return None


def _as_keys(listed: Iterable[ObjectInfo]) -> Iterator[ObjectInfo]:
    """Listed manifests as their keys (``_cas/manifests/KEY`` -> ``KEY``)."""
    for info in listed:
        yield replace(info, key=info.key.removeprefix(names.MANIFESTS + "/"))


def _readable(store: Store, key: str, layout: CasLayout) -> tuple[ObjectInfo, Known] | None:
    try:
        return read_known(store, key, layout)
    except (IntegrityError, ObjectRefused, StorageError):
        return None
