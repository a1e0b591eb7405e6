"""What ``cacher stats`` prints, given a session: without cyclopts, so the full command line
(`cacher.cli.objects`) and the fast path (`cacher.cli.fastpath`) print it the same way.

Among a thousand keys, building the cyclopts application took about a third of the command's
time (issue 29): a plain ``cacher stats PREFIX`` is run from here without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from cacher.cli.listview import iso as _iso
from cacher.cli.report import human_bytes
from cacher.cli.session import Session
from cacher.engine.listing import cas_split, stored_keys
from cacher.errors import exit_code
from cacher.stores.base import Leftover, ObjectInfo


def leftover_doc(leftovers: Sequence[Leftover]) -> dict[str, int]:
    """Unfinished uploads in a document: how many, how many bytes."""
    return {"count": len(leftovers), "bytes": sum(lo.size for lo in leftovers)}


def _tally(
    objects: Iterable[ObjectInfo],
) -> tuple[int, int, datetime | None, datetime | None, dict[str, tuple[int, int]], bool]:
    """Count, bytes, oldest and newest time, (count, bytes) by first key segment, and whether
    any object is content-addressed, of a listing consumed as it arrives (nothing per object
    is kept)."""
    cas = False
    count = total = 0
    oldest = newest = None
    groups: dict[str, tuple[int, int]] = {}
    for obj in objects:
        count += 1
        total += obj.size
        cas = cas or cas_split(obj.key) is not None
        name = obj.key.split("/", 1)[0] if "/" in obj.key else "(top level)"
        n, size = groups.get(name, (0, 0))
        groups[name] = (n + 1, size + obj.size)
        if obj.modified is not None:
            oldest = obj.modified if oldest is None or obj.modified < oldest else oldest
            newest = obj.modified if newest is None or obj.modified > newest else newest
    return count, total, oldest, newest, groups, cas


def show_stats(session: Session, prefix: str) -> int:
    """Count and size what the store holds under ``prefix``, by first key segment, with the
    content-addressed trees, unfinished uploads and restore scratch; the listing's exit code."""
    count, total, oldest, newest, groups, cas = _tally(session.store.iter_list(prefix))
    by_segment = {name: {"objects": n, "bytes": size} for name, (n, size) in sorted(groups.items())}
    leftovers = session.store.leftovers(prefix)
    from cacher.fs.scratch import scratch_leftovers

    scratch = scratch_leftovers(remove=False)  # this machine's, as staging leftovers are
    summary: dict[str, Any] = {
        "unfinished_uploads": leftover_doc(leftovers),
        "restore_scratch": {"count": len(scratch), "bytes": sum(size for _p, size in scratch)},
        "objects": count,
        "bytes": total,
        "oldest": _iso(oldest),
        "newest": _iso(newest),
        "by_segment": by_segment,
        "cas": _cas_doc(session, prefix, cas),
    }
    if session.report.json_output:
        session.report.emit({"command": "stats", "prefix": prefix, **summary})
        return exit_code("listed")
    print(f"objects: {summary['objects']}")
    print(f"bytes:   {total} ({human_bytes(total)})")
    print(f"oldest:  {summary['oldest'] or '-'}")
    print(f"newest:  {summary['newest'] or '-'}")
    for name, group in by_segment.items():
        print(f"  {name}: {group['objects']} objects, {human_bytes(group['bytes'])}")
    cas = summary["cas"]
    if cas["trees"] or cas["unreadable"]:
        ratio = f"{cas['dedup_ratio']:.2f}x" if cas["dedup_ratio"] is not None else "-"
        print(
            f"content-addressed trees: {cas['trees']}, {human_bytes(cas['logical_bytes'])} as restored, "
            f"{human_bytes(cas['stored_bytes'])} in the packs they reference (deduplication {ratio})"
        )
        if cas["unreadable"]:
            print(f"  manifests that could not be read: {cas['unreadable']}")
    if leftovers:
        doc = summary["unfinished_uploads"]
        print(f"unfinished uploads of killed jobs: {doc['count']}, {human_bytes(doc['bytes'])}")
    if scratch:
        doc = summary["restore_scratch"]
        print(f"scratch of killed restores: {doc['count']}, {human_bytes(doc['bytes'])}")
    return exit_code("listed")



def _cas_doc(session: Session, prefix: str, listed: bool) -> dict[str, Any]:
    """The content-addressed trees under ``prefix`` in the job's own prefix: how many, their
    size as restored, the bytes of the packs they reference, and the ratio of the two. Their
    manifests are looked for only when the listing held a content-addressed object (``listed``)
    or one is stored under ``_cas/manifests/<prefix>``, which it does not reach."""
    from cacher.engine.cas_gc import CasStats, cas_stats, within

    layout = session.cas_layout
    there = listed or next(iter(stored_keys(session.store, prefix, manifests_only=True)), None) is not None
    found = cas_stats(layout, within(layout), prefix) if there else CasStats(0, 0, 0)
    ratio = round(found.ratio, 3) if found.ratio is not None else None
    return {
        "trees": found.manifests,
        "logical_bytes": found.logical,
        "stored_bytes": found.stored,
        "dedup_ratio": ratio,
        "unreadable": len(found.unreadable),
    }
