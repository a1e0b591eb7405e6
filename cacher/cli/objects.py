"""``cacher list``, ``delete``, ``stats`` and ``prune``: looking after what is stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from cacher import engine
from cacher.cas.names import manifest_name
from cacher.cli.listview import iso as _iso
from cacher.cli.listview import list_keys
from cacher.cli.listview import listed_doc as _doc
from cacher.cli.listview import listed_name as _name
from cacher.cli.options import OutputOptions, StoreOptions, open_session
from cacher.cli.report import human_bytes
from cacher.cli.session import Session
from cacher.cli.statsview import leftover_doc as _leftover_doc
from cacher.cli.statsview import show_stats
from cacher.config.durations import parse_duration
from cacher.engine.listing import manifest_key
from cacher.errors import UsageError, exit_code
from cacher.keying.scopes import in_reserved_namespace
from cacher.registry import Registry

if TYPE_CHECKING:
    from cacher.engine.cas_gc import Sweep

PrefixArg = Annotated[str, Parameter(help="Only keys that start with this (a plain string prefix).")]
LocalFlag = Annotated[
    bool, Parameter(help="The runner-local tier (local_tier) instead of the store; the store is not asked.")
]


def list_command(registry: Registry) -> Callable[..., int]:
    def list_(
        prefix: PrefixArg = "",
        /,
        *,
        long: Annotated[bool, Parameter(help="Also show size, modification time and age.")] = False,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
    ) -> int:
        """List stored keys under a prefix, one per line (a content-addressed tree: KEY  [cas])."""
        return list_keys(open_session(store, registry, output), prefix, long=long)

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
        """Remove KEY (a stored object, or a tree's manifest) from the store; exit 1 if it was not there."""
        session = open_session(store, registry, output)
        stored_key = session.key(key)
        if not session.store.writable:
            document = {"command": "delete", "key": stored_key, "deleted": False, "outcome": "read-only"}
            session.report.emit(document)
            session.report.say(f"read-only: {stored_key} not deleted")
            return exit_code("read-only")
        deleted = session.store.delete(stored_key)
        tree = not in_reserved_namespace(stored_key) and session.store.delete(manifest_name(stored_key))
        deleted = deleted or tree  # a content-addressed tree goes with its manifest; prune sweeps its packs
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
        return show_stats(session, prefix)

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
        pack_grace: Annotated[
            str,
            Parameter(
                help="How long an unreferenced pack of content-addressed trees waits before it is "
                "condemned, and condemned before a later prune deletes it.",
                allow_leading_hyphen=True,
            ),
        ] = "1d",
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
        grace = parse_duration(pack_grace)
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
        _report_prune(session, plan, grace)
        return exit_code("pruned")

    return prune


def _report_prune(session: Session, plan: engine.PrunePlan, grace: float) -> None:
    """Carry out ``plan`` (`cacher.engine.prune`), saying what goes as it goes, then sweep the
    packs of content-addressed trees (`cacher.engine.cas_gc`), then its document."""
    from cacher.engine.prune import sweep_packs

    for obj in engine.carry_out(session.store, plan):
        verb = "would delete" if plan.dry_run else "deleted"
        session.report.say(f"{verb} {_name(obj)} ({human_bytes(obj.size)}, {_iso(obj.modified)})")
    verb = "would delete" if plan.dry_run else "deleted"
    session.report.say(f"{verb} {len(plan.doomed)} of {plan.listed} objects, {human_bytes(plan.freed)}")
    leftovers = engine.clear_leftovers(session.store, plan)
    if leftovers:
        what = "would remove" if plan.dry_run else "removed"
        cleared = human_bytes(sum(lo.size for lo in leftovers))
        session.report.say(f"{what} {len(leftovers)} unfinished uploads of killed jobs, {cleared}")
    swept = sweep_packs(session.cas_layout, plan, grace)
    _say_sweep(session, swept)
    session.report.emit(
        {
            "command": "prune",
            "prefix": plan.prefix,
            "dry_run": plan.dry_run,
            "deleted": [_doc(o) for o in plan.doomed],
            "kept": plan.listed - len(plan.doomed),
            "bytes": plan.freed,
            "unfinished_uploads": _leftover_doc(leftovers),
            "packs": {
                "deleted": [o.key for o in swept.deleted],
                "bytes": swept.freed,
                "condemned": len(swept.condemned),
                "waiting": swept.waiting,
                "live": swept.live,
                "young": swept.young,
                "unreadable_manifests": list(swept.unreadable),
                **_repack_doc(swept),
            },
        }
    )


def _repack_doc(swept: Sweep) -> dict[str, int | list[str]]:
    """The repack of mostly-dead packs (`cacher.engine.cas_repack`) in the prune's document."""
    done = swept.repacked
    if done is None:
        return {"repacked": 0, "repacked_bytes": 0, "rewritten": 0, "written_bytes": 0, "repack_skipped": 0,
                "damaged": []}
    return {
        "repacked": len(done.packs), "repacked_bytes": done.freed,
        "rewritten": len(done.manifests), "written_bytes": done.written, "repack_skipped": len(done.skipped),
        "damaged": [manifest_key(name) or name for name in done.damaged],
    }


def _say_sweep(session: Session, swept: Sweep) -> None:
    """What the sweep of content-addressed packs did, in a line or two (nothing when no pack
    and no manifest concerned it)."""
    if swept.unreadable:
        shown_names = ", ".join(swept.unreadable[:3]) + (" …" if len(swept.unreadable) > 3 else "")
        session.report.say(
            f"packs: none deleted: {len(swept.unreadable)} manifest(s) could not be read ({shown_names}), "
            "and could name any pack"
        )
        return
    if swept.repacked is not None and swept.repacked.damaged:
        damaged = [manifest_key(n) or n for n in swept.repacked.damaged]
        shown_keys = ", ".join(damaged[:3]) + (" …" if len(damaged) > 3 else "")
        session.report.warn(
            f"{len(damaged)} tree(s) found damaged while repacking, left as they are ({shown_keys}): "
            "a restore of them fails; store them again with 'ensure' or 'dir upload --force'"
        )
    if swept.repacked is not None and swept.repacked.manifests:
        done, verb = swept.repacked, "would repack" if swept.dry_run else "repacked"
        session.report.say(
            f"packs: {verb} {len(done.packs)} mostly dead ({human_bytes(done.freed)}, freed after the grace "
            f"periods): {len(done.manifests)} tree(s) saved again, {human_bytes(done.written)} in new packs"
        )
    if not (swept.deleted or swept.condemned or swept.waiting or swept.young):
        return
    verb = "would delete" if swept.dry_run else "deleted"
    condemn = "would condemn" if swept.dry_run else "condemned"
    session.report.say(
        f"packs: {verb} {len(swept.deleted)} ({human_bytes(swept.freed)}), {condemn} {len(swept.condemned)}, "
        f"{swept.waiting} waiting out the grace period, {swept.young} too young, {swept.live} referenced"
    )
