"""The transfer verbs without building the command line.

A CI job runs ``cacher exists KEY``, ``cacher download KEY DEST`` and ``cacher dir download KEY
DIR`` many times, and building the cyclopts application (importing cyclopts and assembling
every kind's commands) costs more than the request itself. For a command line made only of a
kind's ``upload``, ``download`` or ``exists``, its positional arguments and a few plain flags,
this module parses it itself and runs the same `KindVerbs` with the same `Session`. Anything
else (``--help``, store flags, an unknown or repeated flag, an empty argument, the wrong
number of arguments) returns None and goes to the full parser, so errors and help read the
same either way; `tests/test_fastpath.py` runs accepted lines both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cacher.cli.kindverbs import KindVerbs
from cacher.cli.report import Reporter
from cacher.cli.session import Session
from cacher.errors import PluginError
from cacher.kind import Kind
from cacher.registry import Registry

#: The verbs taken here; ``ensure`` (a build command after ``--``) always goes the long way.
VERBS = ("upload", "download", "exists")
#: Store flags without a value that a CI line commonly carries.
STORE_SWITCHES = {"--soft-fail": "soft_fail", "--read-only": "read_only"}


class _Line:
    """One command line, as far as the fast path understands it."""

    def __init__(self) -> None:
        self.positionals: list[str] = []
        self.options: dict[str, Any] = {}
        self.flags: dict[str, Any] = {}
        self.restore_keys: list[str] = []
        self.force = self.quiet = self.json = False
        self.seen: set[str] = set()


def _parse(tokens: list[str], verb: str, kind_cls: type[Kind]) -> _Line | None:
    line = _Line()
    mine = [o for o in kind_cls.options if verb in o.verbs]
    valued = {f"--{o.name.replace('_', '-')}": o.name for o in mine}
    switches = {f"--{o.name.replace('_', '-')}" for o in mine if o.type is bool}
    if verb == "download":
        valued["--restore-key"] = "restore_key"
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("-"):
            line.positionals.append(token)
            continue
        name, eq, value = token.partition("=")
        name = "--quiet" if name == "-q" else name  # one flag, two spellings
        if name in line.seen and name != "--restore-key":
            return None  # "specified multiple times": the full parser says it
        line.seen.add(name)
        if token in ("-q", "--quiet"):
            line.quiet = True
        elif token == "--json":
            line.json = True
        elif token == "--debug":
            continue  # read by main itself
        elif token == "--force" and verb == "upload":
            line.force = True
        elif token in STORE_SWITCHES:
            line.flags[STORE_SWITCHES[token]] = True
        elif token in switches:
            line.options[valued[token]] = True
        elif name in valued and name not in switches:
            if not eq:
                if not tokens or tokens[0].startswith("-"):
                    return None
                value = tokens.pop(0)
            if not value:
                return None
            if name == "--restore-key":
                line.restore_keys.append(value)
            else:
                line.options[valued[name]] = value
        else:
            return None
    return line


def _arity_fits(line: _Line, verb: str, kind_cls: type[Kind]) -> bool:
    if not line.positionals or not all(line.positionals):
        return False
    targets = len(line.positionals) - 1
    if verb == "exists":
        return targets == 0
    target = kind_cls.upload_target if verb == "upload" else kind_cls.download_target
    return targets >= 1 if target.many else targets == 1


def fast_transfer(args: Sequence[str], registry: Registry) -> int | None:
    """Run ``[KIND] upload|download|exists …`` when the line is plain; None otherwise."""
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
