"""Which listed objects a restore key may restore, newest first."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cacher.keying.scopes import in_reserved_namespace
from cacher.stores.base import ObjectInfo


def newest_first(
    listed: Sequence[ObjectInfo], prefix: str, fits: Callable[[str, str], bool] | None = None
) -> list[ObjectInfo]:
    """The candidates under ``prefix``, newest first: objects with a modification time, outside
    the reserved namespaces (other scopes, bound path lists are never reached through a
    prefix), and accepted by ``fits(key, prefix)`` when given."""
    candidates = [o for o in listed if o.modified is not None and not in_reserved_namespace(o.key)]
    if fits is not None:
        candidates = [o for o in candidates if fits(o.key, prefix)]
    return sorted(candidates, key=lambda o: (o.modified, o.key), reverse=True)
