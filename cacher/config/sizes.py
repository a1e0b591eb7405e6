"""Sizes as people write them in settings: ``20GiB``, ``500MB``, ``1.5G``, ``1048576`` (bytes)."""

from __future__ import annotations

import re

from cacher.errors import ConfigError

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 10**3,
    "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
    "g": 1 << 30, "gib": 1 << 30, "gb": 10**9,
    "t": 1 << 40, "tib": 1 << 40, "tb": 10**12,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, *, setting: str = "local_tier_max") -> int:
    """``20GiB``, ``500MB``, ``1.5G``, ``1048576``: a number of bytes (K/M/G/T are binary);
    `ConfigError` naming ``setting`` when it is not a size or is nothing."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ConfigError(f"{setting} {text!r} is not a size (e.g. 20GiB, 500MB, 1048576)")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"{setting} {text!r} must be more than nothing")
    return value
