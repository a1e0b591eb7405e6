"""Scopes: where a job's objects live, so a job writes only its own and restores others' read-only.

With ``scope`` set (a branch name, say), objects live under ``<prefix>/_scopes/<slug>/<key>``.
The slug is made the way GitLab makes ``CI_COMMIT_REF_SLUG``: lower case, anything but
``a-z0-9`` turned to ``-``, no leading or trailing ``-``, at most 63 characters, so
``feature/x`` and ``123/merge`` work. ``_scopes`` is reserved: no unscoped key may start with
it, so no scoped object can be reached as an unscoped key, and a bucket policy can give a job's
credentials write access to its own scope only. With no scope set the layout is unchanged.
"""

from __future__ import annotations

import re

from cacher.errors import ConfigError, UsageError

__all__ = [
    "RESERVED",
    "RESERVED_SEGMENTS",
    "check_unscoped_key",
    "fallbacks",
    "in_reserved_namespace",
    "scope_prefix",
    "slug",
]

RESERVED = "_scopes"
#: First key segments that hold other namespaces' objects: scopes, and the ``paths`` kind's
#: bound path lists. No unscoped key, exact or restore key, reaches into them.
RESERVED_SEGMENTS = frozenset({RESERVED, "_paths"})


def in_reserved_namespace(key: str) -> bool:
    """Whether ``key`` (relative to a store's prefix) lies under a reserved first segment."""
    return key.split("/", 1)[0] in RESERVED_SEGMENTS
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_SLUG = 63


def slug(name: str, *, setting: str = "scope") -> str:
    """The slug of a scope name; `ConfigError` when nothing of it is left."""
    made = _NOT_SLUG.sub("-", name.lower())[:MAX_SLUG].strip("-")
    if not made:
        raise ConfigError(f"{setting} {name!r} has no letters or digits: it names no scope")
    return made


def fallbacks(text: str | None) -> list[str]:
    """The slugs of a comma-separated ``fallback_scopes`` value, in order, without repeats."""
    out: list[str] = []
    for part in (text or "").split(","):
        if part.strip():
            made = slug(part.strip(), setting="fallback scope")
            if made not in out:
                out.append(made)
    return out


def scope_prefix(prefix: str, scope_slug: str) -> str:
    """The store prefix of a scope: ``<prefix>/_scopes/<slug>``."""
    return "/".join(p for p in (prefix.strip("/"), RESERVED, scope_slug) if p)


def check_unscoped_key(key: str) -> None:
    """A key a user names may not start with the reserved segment (scoped objects stay unreachable)."""
    if key.split("/", 1)[0] == RESERVED:  # `_paths/<h>/KEY` stays nameable: the action looks it up
        raise UsageError(f"key {key!r} starts with {RESERVED!r}, which is reserved (scopes: use --scope)")
