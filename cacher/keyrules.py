"""What a cache key may be, checked before any I/O, and how it maps to a store path."""

from __future__ import annotations

from cacher.errors import UsageError


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object name, else raise `UsageError`.

    Refused: empty keys, a leading ``/``, empty, ``.`` or ``..`` segments, backslashes and
    control characters. Such a key can never leave the prefix or the file backend's root.
    """
    if not key:
        raise UsageError("invalid key '': a key must not be empty")
    if key.startswith("/"):
        raise UsageError(f"invalid key {key!r}: a key must be relative (no leading '/')")
    if "\\" in key:
        raise UsageError(f"invalid key {key!r}: a key must not contain a backslash")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise UsageError(f"invalid key {key!r}: a key must not contain control characters")
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
    """A prefix follows the key rules, except that it may be empty; edge slashes are dropped."""
    prefix = prefix.strip("/")
    if prefix:
        validate_key(prefix)
    return prefix


def validate_list_prefix(prefix: str) -> str:
    """A listing prefix may end with ``/`` or be empty; otherwise it follows the key rules."""
    stripped = prefix.rstrip("/")
    if stripped:
        validate_key(stripped)
    return prefix
