"""Scopes: where a job's objects live, so a job writes only its own and restores others' read-only.

With ``scope`` set (a branch name, say), objects live under ``<prefix>/_scopes/<segment>/<key>``.
The segment is injective: two different scope names never share it, so no branch can be named
to land in another's scope (nor can a bucket policy on ``_scopes/<segment>/*`` be defeated).
A name that is already a clean slug (``a-z0-9`` and single inner ``-``, at most 63 characters:
``main``, ``release-1-0``) is its own segment, so existing objects keep their prefix. Any other
name (``Main``, ``feature/x``, ``123/merge``, a 70-character name) is its readable slug, made the
way GitLab makes ``CI_COMMIT_REF_SLUG``, then ``--``, then the first 16 hex digits of the sha256
of the exact name in UTF-8. A clean slug never holds ``--`` (the slug turns every run of other
characters into one ``-``), so no clean name can take a digested segment's form.

``_scopes`` is reserved: no unscoped key may start with it, so no scoped object can be reached
as an unscoped key. ``_paths`` belongs to the ``paths`` kind: only that kind writes there (other
kinds are refused), while ``exists`` and ``list`` may still name it. ``_cas`` holds the
content-addressed format's manifests and packs (docs/format.md): no key a user names starts
with it. With no scope set the layout is unchanged.
"""

from __future__ import annotations

import hashlib
import re

from cacher.errors import ConfigError, UsageError

__all__ = [
    "CAS",
    "DIGEST_SEPARATOR",
    "RESERVED",
    "RESERVED_OWNERS",
    "RESERVED_SEGMENTS",
    "check_owner",
    "check_unscoped_key",
    "fallbacks",
    "in_reserved_namespace",
    "scope_prefix",
    "segment",
    "slug",
]

RESERVED = "_scopes"
#: The content-addressed format's objects (`cacher.cas.names`): never a key a user names.
CAS = "_cas"
#: First key segments that belong to one kind: only that kind writes under them.
RESERVED_OWNERS = {"_paths": "paths"}
#: First key segments that hold other namespaces' objects: scopes, and the ``paths`` kind's
#: bound path lists. No unscoped key, exact or restore key, reaches into them.
RESERVED_SEGMENTS = frozenset({RESERVED, CAS, *RESERVED_OWNERS})


def _first_segment(key: str) -> str:
    """A key's first segment, case-folded: on a case-insensitive file store ``_Paths`` is
    ``_paths``, so the reserved names are refused in every case."""
    return key.split("/", 1)[0].casefold()


def in_reserved_namespace(key: str) -> bool:
    """Whether ``key`` (relative to a store's prefix) lies under a reserved first segment."""
    return _first_segment(key) in RESERVED_SEGMENTS


_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_SLUG = 63
#: Between a lossy name's readable slug and its digest: a clean slug never holds it.
DIGEST_SEPARATOR = "--"
DIGEST_HEX = 16
#: The readable part of a digested segment, so that the whole stays within MAX_SLUG.
_READABLE = MAX_SLUG - len(DIGEST_SEPARATOR) - DIGEST_HEX


def slug(name: str, *, setting: str = "scope") -> str:
    """The readable slug of a scope name (GitLab's ``CI_COMMIT_REF_SLUG``); `ConfigError` when
    nothing of it is left. Lossy: use `segment` for where the scope's objects live."""
    made = _NOT_SLUG.sub("-", name.lower())[:MAX_SLUG].strip("-")
    if not made:
        raise ConfigError(f"{setting} {name!r} has no letters or digits: it names no scope")
    return made


def segment(name: str, *, setting: str = "scope") -> str:
    """The store segment of a scope name: the name itself when it is a clean slug, else its
    slug, ``--`` and 16 hex of the sha256 of the exact name (injective: see the module doc)."""
    made = slug(name, setting=setting)
    if made == name:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_HEX]
    return f"{made[:_READABLE].rstrip('-')}{DIGEST_SEPARATOR}{digest}"


def fallbacks(text: str | None) -> list[str]:
    """The segments of a comma-separated ``fallback_scopes`` value, in order, without repeats."""
    out: list[str] = []
    for part in (text or "").split(","):
        if part.strip():
            made = segment(part.strip(), setting="fallback scope")
            if made not in out:
                out.append(made)
    return out


def scope_prefix(prefix: str, scope_segment: str) -> str:
    """The store prefix of a scope: ``<prefix>/_scopes/<segment>``."""
    return "/".join(p for p in (prefix.strip("/"), RESERVED, scope_segment) if p)


def check_unscoped_key(key: str) -> None:
    """A key a user names may not start with the reserved segment (scoped objects stay unreachable)."""
    first = _first_segment(key)
    if first == RESERVED:  # `_paths/<h>/KEY` stays nameable: the action looks it up
        raise UsageError(f"key {key!r} starts with {RESERVED!r}, which is reserved (scopes: use --scope)")
    if first == CAS:
        raise UsageError(
            f"key {key!r} starts with {CAS!r}, which is reserved (the content-addressed format's objects)"
        )


def check_owner(key: str, kind: str) -> None:
    """Refuse a write of ``key`` by ``kind`` into a namespace another kind owns (``_paths/``
    holds the ``paths`` kind's objects: anything else written there would be restored by it)."""
    first = _first_segment(key)
    owner = RESERVED_OWNERS.get(first)
    if owner is not None and owner != kind:
        raise UsageError(f"key {key!r} is in {first + '/'!r}, which only the {owner} kind writes")
