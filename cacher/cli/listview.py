"""What ``cacher list`` prints, given a session: without cyclopts, so the full command line
(`cacher.cli.objects`) and the fast path (`cacher.cli.fastpath`) print it the same way.

Among a thousand keys, building the cyclopts application took about a third of the command's
time (issue 29): a plain ``cacher list PREFIX`` is run from here without it.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cacher.cli.report import JSON_SCHEMA, Reporter, printable
from cacher.cli.session import Session
from cacher.engine.listing import shown, stored_keys
from cacher.errors import exit_code
from cacher.stores.base import ObjectInfo


def iso(when: datetime | None) -> str | None:
    """A listed time as the listings and documents show it (UTC, to the second), or None."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = max((now - when).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def listed_doc(obj: ObjectInfo) -> dict[str, Any]:
    """A listed key in a JSON document: key, size, time, and ``format`` for a content-addressed tree."""
    key, cas = shown(obj)
    doc = {"key": key, "size": obj.size, "modified": iso(obj.modified)}
    return {**doc, "format": "cas"} if cas else doc


def listed_name(obj: ObjectInfo) -> str:
    """A listed key as a person reads it: a content-addressed tree's manifest as its KEY, marked."""
    key, cas = shown(obj)
    return f"{printable(key)}  [cas]" if cas else printable(key)


def _emit_listing(prefix: str, objects: Iterable[ObjectInfo]) -> None:
    """``list --json``'s document, byte for byte as `Reporter.emit` writes it, with its array
    written as the listing arrives. Nothing is written before the first page came: a store
    that fails at once gets the error document alone (one failing midway leaves it unfinished)."""
    listing = iter(objects)
    first = next(listing, None)
    head = json.dumps({"command": "list", "objects": []}, sort_keys=True)[:-2]
    tail = json.dumps({"prefix": prefix, "schema": JSON_SCHEMA}, sort_keys=True)[1:]
    sys.stdout.write(head)
    separator = ""
    for obj in itertools.chain([first] if first is not None else [], listing):
        sys.stdout.write(separator + json.dumps(listed_doc(obj), sort_keys=True))
        separator = ", "
    sys.stdout.write(f"], {tail}\n")
    sys.stdout.flush()
    Reporter.documents += 1


def list_keys(session: Session, prefix: str, *, long: bool = False) -> int:
    """Print the keys stored under ``prefix`` as the pages arrive: one per line, with size,
    time and age when ``long``, or ``--json``'s document; the exit code of a listing."""
    objects = stored_keys(session.store, prefix)
    if session.report.json_output:
        _emit_listing(prefix, objects)
        return exit_code("listed")
    now = datetime.now(UTC)
    for obj in objects:
        if long:
            when = iso(obj.modified) or "-"
            print(f"{obj.size:>14}  {when:20}  {_age(obj.modified, now):>5}  {listed_name(obj)}")
        else:
            print(listed_name(obj))
    return exit_code("listed")
