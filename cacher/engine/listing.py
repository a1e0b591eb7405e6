"""Which listed objects a restore key may restore: the newest few, without holding the listing."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from datetime import datetime

from cacher.keying.scopes import in_reserved_namespace
from cacher.stores.base import ObjectInfo

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
