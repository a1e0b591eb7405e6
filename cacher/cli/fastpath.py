"""The transfer verbs, and ``list``, without building the command line.

A CI job runs ``cacher exists KEY``, ``cacher download KEY DEST`` and ``cacher dir download KEY
DIR`` many times, and building the cyclopts application (importing cyclopts and assembling
every kind's commands) costs more than the request itself. For a command line made only of a
kind's ``upload``, ``download`` or ``exists``, its positional arguments and a few plain flags,
this module parses it itself and runs the same `KindVerbs` with the same `Session`; the same
for ``list [PREFIX] [--long]`` and ``stats [PREFIX]`` with those flags (`cacher.cli.listview`,
`cacher.cli.statsview`: among a thousand keys the application was a third of their time). Anything
else (``--help``, store flags, an unknown or repeated flag, an empty argument, the wrong
number of arguments) returns None and goes to the full parser, so errors and help read the
same either way; `tests/cli/test_fastpath.py` runs accepted lines both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from cacher.cli.commands import TRANSFER_VERBS
from cacher.cli.kindverbs import KindVerbs
from cacher.cli.report import Reporter
from cacher.cli.session import Session
from cacher.config import FIELDS
from cacher.errors import PluginError
from cacher.kind import Kind
from cacher.registry import Registry

#: The verbs taken here; ``ensure`` (a build command after ``--``) always goes the long way.
VERBS = TRANSFER_VERBS
#: The core commands taken here: those that only read a listing.
LIST, STATS = "list", "stats"
#: Store flags without a value (``--soft-fail``, ``--read-only``, …): the boolean settings
#: of the one declaration, `cacher.config.Settings`.
STORE_SWITCHES = {spec.flag: spec.name for spec in FIELDS if spec.type is bool}

_Switch = Callable[["_Line"], None]
_Valued = Callable[["_Line", str], None]


class _Line:
    """One command line, as far as the fast path understands it."""

    def __init__(self) -> None:
        self.positionals: list[str] = []
        self.options: dict[str, Any] = {}
        self.flags: dict[str, Any] = {}
        self.restore_keys: list[str] = []
        self.force = self.quiet = self.json = False
        self.seen: set[str] = set()


def _set_option(name: str, line: _Line, value: Any) -> None:
    line.options[name] = value


def _add_restore_key(line: _Line, value: str) -> None:
    line.restore_keys.append(value)


def _set_store_flag(name: str, line: _Line) -> None:
    line.flags[name] = True


def _set_switch(attr: str, line: _Line) -> None:
    setattr(line, attr, True)


def _read_by_main(line: _Line) -> None:
    """``--debug``: `cacher.cli.main` reads it from the whole command line."""


def _grammar(verb: str, kind_cls: type[Kind] | None) -> tuple[dict[str, _Switch], dict[str, _Valued]]:
    """The flags ``verb`` of this kind (None: ``list``) takes here: those without a value and
    those with one. Later entries win a shared name: output flags over store switches over the
    kind's own."""
    mine = [o for o in kind_cls.options if verb in o.verbs] if kind_cls is not None else []
    switches: dict[str, _Switch] = {}
    valued: dict[str, _Valued] = {}
    if verb == LIST:
        switches["--long"] = partial(_set_option, "long", value=True)
    for o in mine:
        flag = f"--{o.name.replace('_', '-')}"
        if o.type is bool:
            switches[flag] = partial(_set_option, o.name, value=True)
        else:
            valued[flag] = partial(_set_option, o.name)
    if verb == "download":
        valued["--restore-key"] = _add_restore_key
    for flag, name in STORE_SWITCHES.items():
        switches[flag] = partial(_set_store_flag, name)
    for flag, attr in (("--force", "force"), ("--json", "json"), ("--quiet", "quiet"), ("-q", "quiet")):
        if attr != "force" or verb == "upload":
            switches[flag] = partial(_set_switch, attr)
    switches["--debug"] = _read_by_main
    return switches, valued


def _parse(tokens: list[str], verb: str, kind_cls: type[Kind] | None) -> _Line | None:
    line = _Line()
    switches, valued = _grammar(verb, kind_cls)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("-"):
            line.positionals.append(token)
        elif not _take(line, token, tokens, switches, valued):
            return None
    return line


def _take(
    line: _Line, token: str, tokens: list[str], switches: dict[str, _Switch], valued: dict[str, _Valued]
) -> bool:
    """Take one flag (and the value after it); False for anything the full parser must see."""
    name, eq, value = token.partition("=")
    name = "--quiet" if name == "-q" else name  # one flag, two spellings
    if name in line.seen and name != "--restore-key":
        return False  # "specified multiple times": the full parser says it
    line.seen.add(name)
    if token in switches:
        switches[token](line)
        return True
    if name not in valued or name in switches:
        return False
    if not eq:
        if not tokens or tokens[0].startswith("-"):
            return False
        value = tokens.pop(0)
    if not value:
        return False
    valued[name](line, value)
    return True


def _arity_fits(line: _Line, verb: str, kind_cls: type[Kind]) -> bool:
    if not line.positionals or not all(line.positionals):
        return False
    targets = len(line.positionals) - 1
    if verb == "exists":
        return targets == 0
    target = kind_cls.upload_target if verb == "upload" else kind_cls.download_target
    return targets >= 1 if target.many else targets == 1


def fast_transfer(args: Sequence[str], registry: Registry) -> int | None:
    """Run ``[KIND] upload|download|exists …``, ``list …`` or ``stats …`` when the line is
    plain; None otherwise."""
    if args[:1] == [LIST] or args[:1] == [STATS]:
        return _fast_listing(args[0], list(args[1:]), registry)
    if args[:1] and args[0] in VERBS:
        kind_name, verb, rest = "file", args[0], list(args[1:])
    elif len(args) >= 2 and args[1] in VERBS and args[0] in registry.names("kinds"):
        kind_name, verb, rest = args[0], args[1], list(args[2:])
    else:
        return None
    try:
        kind_cls: type[Kind] = registry.get("kinds", kind_name)
    except PluginError:
        return None  # a broken plugin: the full parser reports it as it reports any
    line = _parse(rest, verb, kind_cls)
    if line is None or not _arity_fits(line, verb, kind_cls):
        return None
    session = Session(line.flags, registry, Reporter(quiet=line.quiet, json_output=line.json))
    verbs = KindVerbs(registry, kind_name)
    key, targets = line.positionals[0], line.positionals[1:]
    if verb == "exists":
        return verbs.exists(session, key)
    declared = {o.name: (False if o.type is bool else None) for o in kind_cls.options if verb in o.verbs}
    options = {**declared, **line.options}
    if verb == "upload":
        return verbs.upload(session, key, targets, force=line.force, options=options)
    return verbs.download(session, key, targets, restore_key=line.restore_keys or None, options=options)


def _fast_listing(command: str, rest: list[str], registry: Registry) -> int | None:
    """``list [PREFIX] [--long]`` or ``stats [PREFIX]`` with the output flags and store
    switches, run as `cacher.cli.objects` runs them; None for anything else (``stats --local``
    included: the full parser takes it)."""
    line = _parse(rest, command, None)
    if line is None or len(line.positionals) > 1 or not all(line.positionals):
        return None
    session = Session(line.flags, registry, Reporter(quiet=line.quiet, json_output=line.json))
    prefix = line.positionals[0] if line.positionals else ""
    if command == STATS:
        from cacher.cli.statsview import show_stats

        return show_stats(session, prefix)
    from cacher.cli.listview import list_keys

    return list_keys(session, prefix, long=bool(line.options.get("long")))
