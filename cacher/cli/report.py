"""How results reach people: one line each on stderr; stdout carries only data."""

from __future__ import annotations

import sys

from cacher.engine import Result


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def say(message: str) -> None:
    print(f"cacher: {message}", file=sys.stderr)


def transfer(result: Result) -> None:
    """The summary line of one transfer."""
    if result.outcome == "skipped":
        say(f"{result.key} already stored; skipped (use --force to overwrite)")
        return
    verb = {"uploaded": "uploaded", "hit": "hit, restored", "fetched": "miss, fetched and stored"}
    ratio = result.raw_bytes / result.stored_bytes if result.stored_bytes else 0.0
    rate = result.raw_bytes / result.seconds / (1 << 20) if result.seconds > 0 else 0.0
    details = (
        f"{human_bytes(result.raw_bytes)} raw, {human_bytes(result.stored_bytes)} stored"
        f" ({result.codec}, x{ratio:.2f}) in {result.seconds:.2f} s, {rate:.1f} MiB/s"
    )
    say(f"{result.kind} {verb[result.outcome]} {result.key}: {details}")
    if result.note:
        say(result.note)
