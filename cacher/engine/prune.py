"""``prune``: which stored objects (or local-tier copies) go, and removing them.

Selection is one rule for the store and the local tier: never the ``keep_last`` most recent,
and of the rest those last written (or used) more than ``older_than`` seconds ago. A store
that is not ``writable`` (the read-only gate) turns a prune into a dry run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cacher.stores.base import Leftover, ObjectInfo, Store

T = TypeVar("T")


def select_old(
    items: Sequence[T], when: Callable[[T], float | None], older_than: float, keep_last: int, now: float
) -> tuple[list[T], list[T]]:
    """``items`` newest first by ``when`` (seconds since the epoch; None: unknown, oldest and
    never selected), and those beyond the ``keep_last`` newest older than ``older_than``."""
    newest = sorted(items, key=lambda i: _or_oldest(when(i)), reverse=True)
    cutoff = now - older_than
    doomed = [i for i in newest[keep_last:] if (t := when(i)) is not None and t < cutoff]
    return newest, doomed


def _or_oldest(t: float | None) -> float:
    return float("-inf") if t is None else t


def _modified(obj: ObjectInfo) -> float | None:
    return obj.modified.timestamp() if obj.modified is not None else None


@dataclass(frozen=True)
class PrunePlan:
    """What a prune of ``prefix`` removes: ``doomed`` of the ``listed`` objects. ``dry_run``
    is True when asked or when ``writes_refused``: the store is not ``writable`` (the gate)."""

    prefix: str
    listed: int
    doomed: tuple[ObjectInfo, ...]
    dry_run: bool
    writes_refused: bool

    @property
    def freed(self) -> int:
        """The bytes the doomed objects hold."""
        return sum(o.size for o in self.doomed)


def plan_prune(store: Store, prefix: str, older_than: float, keep_last: int, dry_run: bool) -> PrunePlan:
    """List ``prefix`` and select what goes (`select_old` on the objects' modification times)."""
    now = time.time()
    objects, doomed = select_old(store.list(prefix), _modified, older_than, keep_last, now)
    refused = not store.writable and not dry_run
    return PrunePlan(prefix, len(objects), tuple(doomed), dry_run or refused, refused)


def carry_out(store: Store, plan: PrunePlan) -> Iterator[ObjectInfo]:
    """Delete the plan's objects one by one (none on a dry run), yielding each when done."""
    for obj in plan.doomed:
        if not plan.dry_run:
            store.delete(obj.key)
        yield obj


def clear_leftovers(store: Store, plan: PrunePlan) -> list[Leftover]:
    """The unfinished uploads of killed jobs under the plan's prefix, removed unless a dry run
    (those that could not be removed are left out)."""
    return [lo for lo in store.leftovers(plan.prefix) if plan.dry_run or store.remove_leftover(lo)]
