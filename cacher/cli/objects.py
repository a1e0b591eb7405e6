"""``cacher list``, ``delete``, ``stats`` and ``prune``: looking after what is stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from cyclopts import Parameter

from cacher import engine
from cacher.cli.options import OutputOptions, StoreOptions, open_session
from cacher.cli.report import human_bytes
from cacher.cli.session import Session
from cacher.config.durations import parse_duration
from cacher.errors import UsageError, exit_code
from cacher.registry import Registry
from cacher.stores.base import Leftover, ObjectInfo

PrefixArg = Annotated[str, Parameter(help="Only keys that start with this (a plain string prefix).")]
LocalFlag = Annotated[
    bool, Parameter(help="The runner-local tier (local_tier) instead of the store; the store is not asked.")
]


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = max((now - when).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _doc(obj: ObjectInfo) -> dict[str, Any]:
    return {"key": obj.key, "size": obj.size, "modified": _iso(obj.modified)}


def _leftover_doc(leftovers: Sequence[Leftover]) -> dict[str, int]:
    return {"count": len(leftovers), "bytes": sum(lo.size for lo in leftovers)}


def list_command(registry: Registry) -> Callable[..., int]:
    def list_(
        prefix: PrefixArg = "",
        /,
        *,
        long: Annotated[bool, Parameter(help="Also show size, modification time and age.")] = False,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
    ) -> int:
        """List stored keys under a prefix, one per line."""
        session = open_session(store, registry, output)
        objects = session.store.list(prefix)
        if session.report.json_output:
            session.report.emit({"command": "list", "prefix": prefix, "objects": [_doc(o) for o in objects]})
            return exit_code("listed")
        now = datetime.now(UTC)
        for obj in objects:
            if long:
                print(
                    f"{obj.size:>14}  {_iso(obj.modified) or '-':20}  {_age(obj.modified, now):>5}  {obj.key}"
                )
            else:
                print(obj.key)
        return exit_code("listed")

    list_.__name__ = "list"
    return list_


def delete_command(registry: Registry) -> Callable[..., int]:
    def delete(
        key: Annotated[str, Parameter(help="The key to remove.")],
        /,
        *,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
    ) -> int:
        """Remove KEY from the store; exit 1 if it was not there."""
        session = open_session(store, registry, output)
        stored_key = session.key(key)
        if not session.store.writable:
            document = {"command": "delete", "key": stored_key, "deleted": False, "outcome": "read-only"}
            session.report.emit(document)
            session.report.say(f"read-only: {stored_key} not deleted")
            return exit_code("read-only")
        deleted = session.store.delete(stored_key)
        if not deleted:
            session.store.check_bucket()
        session.report.emit({"command": "delete", "key": stored_key, "deleted": deleted})
        session.report.say(f"deleted {stored_key}" if deleted else f"{stored_key} was not stored")
        return exit_code("deleted" if deleted else "absent")

    return delete


def stats_command(registry: Registry) -> Callable[..., int]:
    def stats(
        prefix: PrefixArg = "",
        /,
        *,
        local: LocalFlag = False,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
    ) -> int:
        """Count and size what is stored under a prefix, by first key segment."""
        session = open_session(store, registry, output)
        if local:
            from cacher.cli.tiercmd import local_stats

            return local_stats(session, prefix)
        objects = session.store.list(prefix)
        groups: dict[str, list[ObjectInfo]] = {}
        for obj in objects:
            groups.setdefault(obj.key.split("/", 1)[0] if "/" in obj.key else "(top level)", []).append(obj)
        times = [o.modified for o in objects if o.modified]
        total = sum(o.size for o in objects)
        by_segment = {
            name: {"objects": len(objs), "bytes": sum(o.size for o in objs)}
            for name, objs in sorted(groups.items())
        }
        leftovers = session.store.leftovers(prefix)
        from cacher.fs.scratch import scratch_leftovers

        scratch = scratch_leftovers(remove=False)  # this machine's, as staging leftovers are
        summary: dict[str, Any] = {
            "unfinished_uploads": _leftover_doc(leftovers),
            "restore_scratch": {"count": len(scratch), "bytes": sum(size for _p, size in scratch)},
            "objects": len(objects),
            "bytes": total,
            "oldest": _iso(min(times)) if times else None,
            "newest": _iso(max(times)) if times else None,
            "by_segment": {
                name: {"objects": len(objs), "bytes": sum(o.size for o in objs)}
                for name, objs in sorted(groups.items())
            },
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
        if leftovers:
            doc = summary["unfinished_uploads"]
            print(f"unfinished uploads of killed jobs: {doc['count']}, {human_bytes(doc['bytes'])}")
        if scratch:
            doc = summary["restore_scratch"]
            print(f"scratch of killed restores: {doc['count']}, {human_bytes(doc['bytes'])}")
        return exit_code("listed")

    return stats


def prune_command(registry: Registry) -> Callable[..., int]:
    def prune(
        prefix: PrefixArg = "",
        /,
        *,
        older_than: Annotated[
            str,
            Parameter(
                help="Delete objects not written for this long (30d, 12h, 1d12h).",
                allow_leading_hyphen=True,  # so that -1d is told it must be positive
            ),
        ],
        keep_last: Annotated[int, Parameter(help="Never delete the N newest objects under the prefix.")] = 0,
        dry_run: Annotated[bool, Parameter(help="Only say what would be deleted.")] = False,
        all_projects: Annotated[
            bool,
            Parameter(help="Allow a prune with no prefix at all: every project in the bucket."),
        ] = False,
        local: LocalFlag = False,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
    ) -> int:
        """Delete objects under a prefix older than a duration, keeping the newest N."""
        if older_than.startswith("--"):
            raise UsageError(f"--older-than needs a duration (e.g. 30d, 12h), not the flag {older_than!r}")
        if keep_last < 0:
            raise UsageError("--keep-last must not be negative")
        age = parse_duration(older_than)
        session = open_session(store, registry, output)
        if local:
            from cacher.cli.tiercmd import local_prune

            return local_prune(session, prefix, age, keep_last, dry_run)
        if not prefix and not session.settings.prefix and not all_projects:
            raise UsageError(
                "refusing to prune the whole bucket: no PREFIX and no prefix setting",
                hint="give a PREFIX, set prefix, or pass --all-projects to mean every project",
            )
        plan = engine.plan_prune(session.store, prefix, age, keep_last, dry_run)
        if plan.writes_refused:
            session.report.say(f"read-only: nothing deleted ({len(plan.doomed)} objects would have been)")
        _report_prune(session, plan)
        return exit_code("pruned")

    return prune


def _report_prune(session: Session, plan: engine.PrunePlan) -> None:
    """Carry out ``plan`` (`cacher.engine.prune`), saying what goes as it goes, then its document."""
    for obj in engine.carry_out(session.store, plan):
        verb = "would delete" if plan.dry_run else "deleted"
        session.report.say(f"{verb} {obj.key} ({human_bytes(obj.size)}, {_iso(obj.modified)})")
    verb = "would delete" if plan.dry_run else "deleted"
    session.report.say(f"{verb} {len(plan.doomed)} of {plan.listed} objects, {human_bytes(plan.freed)}")
    leftovers = engine.clear_leftovers(session.store, plan)
    if leftovers:
        what = "would remove" if plan.dry_run else "removed"
        cleared = human_bytes(sum(lo.size for lo in leftovers))
        session.report.say(f"{what} {len(leftovers)} unfinished uploads of killed jobs, {cleared}")
    session.report.emit(
        {
            "command": "prune",
            "prefix": plan.prefix,
            "dry_run": plan.dry_run,
            "deleted": [_doc(o) for o in plan.doomed],
            "kept": plan.listed - len(plan.doomed),
            "bytes": plan.freed,
            "unfinished_uploads": _leftover_doc(leftovers),
        }
    )
