"""Glob patterns as regular expressions over ``/``-separated paths.

``*`` and ``?`` stay within one segment, ``[...]`` is a class (``[!...]`` negated), ``**``
spans any number of segments (``a/**/b`` matches ``a/b`` too, ``a/**`` matches ``a`` and
everything below it). Used by the ``paths`` kind, ``dir upload --exclude`` and
``key --hash-from``.
"""

from __future__ import annotations

import glob
import os
import re

_MAGIC = re.compile(r"[*?[]")


def has_magic(pattern: str) -> bool:
    """Whether ``pattern`` holds a glob character (``*``, ``?`` or ``[``)."""
    return _MAGIC.search(pattern) is not None


def expand(pattern: str) -> list[str]:
    """What the glob matches on disk now, as the ``paths`` kind matches it (``**`` spans
    directories, hidden names included), sorted by their bytes so every machine agrees."""
    return sorted(glob.glob(pattern, recursive=True, include_hidden=True), key=os.fsencode)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching the paths the glob ``pattern`` matches (use it with ``fullmatch``)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        if i == 0 and pattern.startswith("**/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**/", i):
            out.append("(?:/.*)?/")
            i += 4
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            j = pattern.index("]", i + 2)
            body = pattern[i + 1 : j]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
