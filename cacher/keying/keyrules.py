"""What a cache key may be, checked before any I/O, and how it maps to a store path."""

from __future__ import annotations

import unicodedata

from cacher.errors import UsageError

#: Unicode categories a key never holds: controls (C0 and C1), format characters (bidi
#: overrides, zero-width), surrogates (bytes that were not UTF-8) and private use. They reach
#: logs and listings unseen, or cannot be sent to a store at all.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co"})


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object name, else raise `UsageError`.

    Refused: empty keys, a leading ``/``, empty, ``.`` or ``..`` segments, backslashes,
    control and format characters and undecodable bytes. Such a key can never leave the
    prefix or the file backend's root.
    """
    if not key:
        raise UsageError("invalid key '': a key must not be empty")
    if key.startswith("/"):
        raise UsageError(f"invalid key {key!r}: a key must be relative (no leading '/')")
    if "\\" in key:
        raise UsageError(f"invalid key {key!r}: a key must not contain a backslash")
    if any(ord(c) < 32 or ord(c) == 127 or unicodedata.category(c) in _INVISIBLE for c in key):
        raise UsageError(
            f"invalid key {key!r}: a key must not contain control characters, format characters "
            "(bidi, zero-width) or bytes that are not UTF-8"
        )
    for segment in key.split("/"):
        if ".cacher-tmp-" in segment or ".cacher-staging-" in segment:
            raise UsageError(
                f"invalid key {key!r}: '.cacher-tmp-' and '.cacher-staging-' name cacher's own "
                "temporary files (prune removes them)"
            )
        if segment in ("", ".", ".."):
            what = (
                "an empty segment ('//' or a trailing '/')"
                if not segment
                else f"a {segment!r} path segment (as in 'a/{segment}/b'; a dot inside a name, "
                "as in 'v1.2', is fine)"
            )
            raise UsageError(f"invalid key {key!r}: a key must not contain {what}")
    return key


def validate_prefix(prefix: str) -> str:
    """A prefix follows the key rules, except that it may be empty; edge slashes are dropped.
    No segment of it may be a reserved name (``_scopes``, ``_paths``, in any case): a prefix
    ending in ``_scopes/main`` would write straight into the scope ``main``."""
    from cacher.keying.scopes import RESERVED_SEGMENTS

    prefix = prefix.strip("/")
    if prefix:
        validate_key(prefix)
        for segment in prefix.split("/"):
            if segment.casefold() in RESERVED_SEGMENTS:
                raise UsageError(
                    f"invalid prefix {prefix!r}: {segment!r} is reserved (scopes: use scope; "
                    "paths: the paths kind names its own objects)"
                )
    return prefix


def validate_list_prefix(prefix: str) -> str:
    """A listing prefix may end with ``/`` or be empty; otherwise it follows the key rules."""
    stripped = prefix.rstrip("/")
    if stripped:
        validate_key(stripped)
    return prefix
