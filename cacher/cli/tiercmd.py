"""``cacher stats --local`` and ``cacher prune --local``: looking after the runner-local tier.

Neither asks the store: they read and trim the tier directory that ``local_tier`` names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cacher.cli.report import human_bytes
from cacher.cli.session import Session
from cacher.engine.prune import select_old
from cacher.errors import exit_code
from cacher.stores.readonly import allows_writes
from cacher.stores.tier import Entry, tier_of


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _doc(entry: Entry) -> dict[str, Any]:
    return {"key": entry.key, "size": entry.size, "last_used": _iso(entry.used), "shared": entry.shared}


def local_stats(session: Session, prefix: str) -> int:
    tier = tier_of(session.settings, writable=allows_writes(session.settings))
    entries = [e for e in tier.describe() if e.key.startswith(prefix)]
    on_disk = tier.used_bytes()  # the whole tier, trailers included: what the bound counts
    unfinished = tier.stale_temporaries()
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.key.split("/", 1)[0] if "/" in entry.key else "(top level)", []).append(entry)
    used = [e.used for e in entries]
    summary: dict[str, Any] = {
        "root": str(tier.root),
        "copies": len(entries),
        "bytes": sum(e.size for e in entries),
        "bytes_on_disk": on_disk,
        "max_bytes": tier.max_bytes,
        "not_shared": sum(1 for e in entries if not e.shared),
        "least_recently_used": _iso(min(used)) if used else None,
        "most_recently_used": _iso(max(used)) if used else None,
        "by_segment": {
            name: {"copies": len(group), "bytes": sum(e.size for e in group)}
            for name, group in sorted(groups.items())
        },
        "unfinished_copies": {"count": len(unfinished), "bytes": sum(size for _p, size in unfinished)},
    }
    if session.report.json_output:
        session.report.emit({"command": "stats", "local": True, "prefix": prefix, **summary})
        return exit_code("listed")
    print(f"local tier: {tier.root}")
    offline = f" ({summary['not_shared']} kept offline, not shared)" if summary["not_shared"] else ""
    print(f"copies:  {summary['copies']}{offline}")
    print(f"bytes:   {on_disk} ({human_bytes(on_disk)}) of at most {human_bytes(tier.max_bytes)}")
    print(f"least recently used: {summary['least_recently_used'] or '-'}")
    print(f"most recently used:  {summary['most_recently_used'] or '-'}")
    for name, group in summary["by_segment"].items():
        print(f"  {name}: {group['copies']} copies, {human_bytes(group['bytes'])}")
    if unfinished:
        doc = summary["unfinished_copies"]
        print(f"unfinished copies of killed jobs: {doc['count']}, {human_bytes(doc['bytes'])}")
    return exit_code("listed")


def local_prune(session: Session, prefix: str, age: float, keep_last: int, dry_run: bool) -> int:
    """Remove copies not used for ``age`` seconds (keeping the ``keep_last`` most recently
    used), passing over copies being read, and the leftovers of killed writers."""
    writable = allows_writes(session.settings)
    tier = tier_of(session.settings, writable=writable)
    entries = [e for e in tier.describe() if e.key.startswith(prefix)]
    # The store's rule (cacher.engine.prune), on when each copy was last used.
    _newest, doomed = select_old(entries, lambda e: e.used, age, keep_last, datetime.now(UTC).timestamp())
    if not writable and not dry_run:
        session.report.say(
            f"read-only: nothing removed from the local tier ({len(doomed)} copies would have been)"
        )
        dry_run = True
    if dry_run:
        removed = doomed
        busy: list[Entry] = []
    else:
        gone = set(tier.evict([e.path for e in doomed]))
        removed = [e for e in doomed if e.path in gone]
        busy = [e for e in doomed if e.path not in gone]
    verb = "would remove" if dry_run else "removed"
    for entry in removed:
        used = _iso(entry.used)
        session.report.say(f"{verb} local copy {entry.key} ({human_bytes(entry.size)}, last used {used})")
    for entry in busy:
        session.report.say(f"kept local copy {entry.key}: being read")
    freed = sum(e.size for e in removed)
    session.report.say(f"{verb} {len(removed)} of {len(entries)} local copies, {human_bytes(freed)}")
    unfinished = [(p, size) for p, size in tier.stale_temporaries() if dry_run or tier.remove_temporary(p)]
    if unfinished:
        cleared = human_bytes(sum(size for _p, size in unfinished))
        session.report.say(f"{verb} {len(unfinished)} unfinished copies of killed jobs, {cleared}")
    session.report.emit(
        {
            "command": "prune",
            "local": True,
            "prefix": prefix,
            "dry_run": dry_run,
            "deleted": [_doc(e) for e in removed],
            "kept": len(entries) - len(removed),
            "bytes": freed,
            "unfinished_copies": {"count": len(unfinished), "bytes": sum(size for _p, size in unfinished)},
        }
    )
    return exit_code("pruned")
