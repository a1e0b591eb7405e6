"""Which listed objects are keys, and which a restore key may restore: the newest few, without
holding the listing."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from cacher.cas import names
from cacher.keying.scopes import in_reserved_namespace
from cacher.stores.base import ObjectInfo, Store

#: How many restore-key candidates a lookup holds at once: the newest few. When every one of
#: them is refused (rare: damaged, another kind's), the prefix is listed again for the next few.
CANDIDATES = 16


def newest_first(
    listed: Iterable[ObjectInfo],
    prefix: str,
    fits: Callable[[str, str], bool] | None = None,
    *,
    bound: int = CANDIDATES,
    older_than: tuple[datetime, str] | None = None,
) -> list[ObjectInfo]:
    """The ``bound`` newest candidates under ``prefix``, newest first (by modification time,
    then key): objects with a modification time, outside the reserved namespaces (other
    scopes, bound path lists are never reached through a prefix), accepted by
    ``fits(key, prefix)`` when given, and, with ``older_than``, after that (time, key) in this
    order (the next few, once those before were refused). ``listed`` is consumed as it comes:
    at most ``bound`` objects are held, whatever the listing's length."""
    candidates = (o for o in listed if o.modified is not None and not in_reserved_namespace(o.key))
    if fits is not None:
        candidates = (o for o in candidates if fits(o.key, prefix))
    if older_than is not None:
        candidates = (o for o in candidates if (o.modified, o.key) < older_than)
    return heapq.nlargest(bound, candidates, key=recency)


def recency(obj: ObjectInfo) -> tuple[datetime, str]:
    """Where a candidate stands, newest first: its modification time, then its key."""
    assert obj.modified is not None  # filtered out before
    return obj.modified, obj.key


# Content-addressed objects in a listing (`cacher.cas.names`): a manifest at
# ``[<namespace>/]_cas/manifests/KEY`` counts as the key ``[<namespace>/]KEY`` (a scope's
# ``_scopes/<segment>/`` or a kind's namespace before it); packs and the prune's record under
# ``_cas/packs/`` and ``_cas/gc/`` are never keys.
_CAS = f"{names.NAMESPACE}/"
_MANIFESTS = f"{names.MANIFESTS}/"
_INTERNAL = (f"{names.PACKS}/", f"{names.NAMESPACE}/gc/")


def cas_split(name: str) -> tuple[str, str] | None:
    """(what comes before the ``_cas/`` segment, the rest) of an object name, or None when no
    segment of it is ``_cas``."""
    if name.startswith(_CAS):
        return "", name
    at = name.find("/" + _CAS)
    return (name[: at + 1], name[at + 1 :]) if at >= 0 else None


def manifest_key(name: str) -> str | None:
    """The key an object name is the manifest of (its namespace kept), or None."""
    split = cas_split(name)
    if split is None or not split[1].startswith(_MANIFESTS) or len(split[1]) == len(_MANIFESTS):
        return None
    return split[0] + split[1][len(_MANIFESTS) :]


def is_key(name: str) -> bool:
    """Whether a listed object is a key (an ordinary object or a manifest), not a pack or a
    prune's record."""
    split = cas_split(name)
    return split is None or not split[1].startswith(_INTERNAL)


def shown(obj: ObjectInfo) -> tuple[str, bool]:
    """How a listed key is shown: (its key, whether it is a content-addressed manifest)."""
    key = manifest_key(obj.key)
    return (obj.key, False) if key is None else (key, True)


def stored_keys(store: Store, prefix: str, *, manifests_only: bool = False) -> Iterator[ObjectInfo]:
    """The keys under ``prefix`` as the store lists them, packs and records left out, then the
    manifests of keys starting with ``prefix`` that the first listing does not reach
    (``_cas/manifests/<prefix>``; with ``manifests_only``, those alone). Consumed as it comes,
    like `Store.iter_list`."""
    if not manifests_only:
        yield from (o for o in store.iter_list(prefix) if is_key(o.key))
    if prefix and not _MANIFESTS.startswith(prefix) and not prefix.startswith(_CAS):
        yield from store.iter_list(_MANIFESTS + prefix)
