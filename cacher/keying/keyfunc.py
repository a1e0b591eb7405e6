"""The key-function contract: what fills a ``{placeholder}`` in a key template.

Key functions register under the ``cacher.keys`` entry-point namespace; the entry-point name
is the placeholder (``{hash}``, ``{env:NAME}``). A key function returns a stable string: the
same inputs give the same value on every machine.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class KeyContext:
    """What a template is rendered with."""

    hash_from: tuple[Path, ...] = ()
    hash_length: int = 16
    environ: dict[str, str] = field(default_factory=dict)


class KeyFunction(abc.ABC):
    """Fills one placeholder. ``arg`` is the text after ``:`` (``{env:HOME}``), or None."""

    @abc.abstractmethod
    def render(self, arg: str | None, ctx: KeyContext) -> str:
        """Return the value; raise `cacher.errors.UsageError` when it cannot be made."""
