"""``cacher list`` and ``cacher delete``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from cyclopts import Parameter

from cacher.cli import report
from cacher.cli.options import Session, StoreOptions
from cacher.registry import Registry


def list_command(registry: Registry) -> Callable[..., int]:
    def list_(
        prefix: Annotated[str, Parameter(help="Only keys that start with this.")] = "",
        /,
        *,
        long: Annotated[bool, Parameter(help="Also show size and modification time.")] = False,
        store: StoreOptions | None = None,
    ) -> int:
        """List stored keys under a prefix, one per line."""
        session = Session(store, registry)
        for obj in session.store.list(prefix):
            if long:
                when = obj.modified.strftime("%Y-%m-%dT%H:%M:%SZ") if obj.modified else "-"
                print(f"{obj.size:>14}  {when}  {obj.key}")
            else:
                print(obj.key)
        return 0

    list_.__name__ = "list"
    return list_


def delete_command(registry: Registry) -> Callable[..., int]:
    def delete(
        key: Annotated[str, Parameter(help="The key to remove.")],
        /,
        *,
        store: StoreOptions | None = None,
    ) -> int:
        """Remove KEY from the store; exit 1 if it was not there."""
        session = Session(store, registry)
        stored_key = session.key(key)
        if session.store.delete(stored_key):
            report.say(f"deleted {stored_key}")
            return 0
        session.store.check_bucket()
        report.say(f"{stored_key} was not stored")
        return 1

    return delete
