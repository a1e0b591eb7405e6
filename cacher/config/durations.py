"""Durations as people write them in CI files: ``90s``, ``45m``, ``12h``, ``30d``, ``2w``, ``1d12h``."""

from __future__ import annotations

import math
import re

from cacher.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


#: 100 years: far beyond any cache's life, well inside what datetime arithmetic takes.
_LONGEST = 100 * 365 * 86400


def parse_duration(text: str) -> float:
    """Seconds in ``text``, finite and at most 100 years; `UsageError` for anything else
    (``nan``, ``inf``, ``1e400s``, a negative or a unitless number)."""
    compact = text.strip().lower()
    shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text)} characters)"
    if compact.startswith("-"):
        raise UsageError(f"invalid duration {shown}: a duration must be positive (e.g. 30d, 12h, 1d12h)")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise UsageError(
            f"invalid duration {shown}: use a number and a unit s, m, h, d or w (e.g. 30d, 1d12h)"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds > _LONGEST:
        raise UsageError(f"invalid duration {shown}: at most 100 years")
    return seconds
