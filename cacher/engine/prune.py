"""``prune``: which stored objects (or local-tier copies) go, and removing them.

Selection is one rule for the store and the local tier: never the ``keep_last`` most recent,
and of the rest those last written (or used) more than ``older_than`` seconds ago. A store
that is not ``writable`` (the read-only gate) turns a prune into a dry run. The keys are those
`cacher.engine.listing.stored_keys` lists: a content-addressed manifest counts as its KEY and
goes like any object; packs are never selected by age but swept after the selection, when no
manifest references them (`sweep_packs`, `cacher.engine.cas_gc`).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from cacher.engine.listing import manifest_key, stored_keys
from cacher.stores.base import LEFTOVER_AGE, Leftover, ObjectInfo, Store

if TYPE_CHECKING:
    from cacher.engine.cas_gc import Sweep
    from cacher.engine.cas_layout import CasLayout

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


def select_old_streaming(
    items: Iterable[T], when: Callable[[T], float | None], older_than: float, keep_last: int, now: float
) -> tuple[int, list[T]]:
    """`select_old` over items as they come, holding only the ``keep_last`` newest so far and
    what is selected: (how many items, the selected newest first). An age-only prune holds
    just what it deletes; ties are broken as `select_old`'s stable sort breaks them."""
    cutoff = now - older_than
    kept: list[tuple[float, int, T]] = []  # a min-heap of the keep_last newest so far
    doomed: list[tuple[float, int, T]] = []
    count = 0
    for index, item in enumerate(items):
        count += 1
        entry = (_or_oldest(when(item)), -index, item)  # an earlier item wins a tie, as in a stable sort
        if len(kept) < keep_last:
            heapq.heappush(kept, entry)
            continue
        if kept and entry[:2] > kept[0][:2]:
            entry = heapq.heapreplace(kept, entry)  # the one it pushes out is beyond keep_last
        if entry[0] != float("-inf") and entry[0] < cutoff:
            doomed.append(entry)
    doomed.sort(key=lambda e: e[:2], reverse=True)
    return count, [e[2] for e in doomed]


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
    """List ``prefix`` and select what goes (`select_old`'s rule on the objects' modification
    times), the listing consumed as it comes: only the ``keep_last`` newest and what goes are held."""
    now = time.time()
    listed, doomed = select_old_streaming(stored_keys(store, prefix), _modified, older_than, keep_last, now)
    refused = not store.writable and not dry_run
    return PrunePlan(prefix, listed, tuple(doomed), dry_run or refused, refused)


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


def sweep_packs(
    layout: CasLayout, plan: PrunePlan, grace: float = LEFTOVER_AGE.total_seconds(), now: float | None = None
) -> Sweep:
    """After the plan's objects went: the sweep of the job's own packs (`cacher.engine.cas_gc`),
    the manifests the plan selects counted as gone (a dry run has not deleted them); a dry
    run, or a store the gate keeps read-only, deletes and records nothing."""
    from cacher.engine.cas_gc import sweep, within

    skip = frozenset(within(layout) + o.key for o in plan.doomed if manifest_key(o.key) is not None)
    return sweep(layout, grace=grace, dry_run=plan.dry_run, skip=skip, now=now)
