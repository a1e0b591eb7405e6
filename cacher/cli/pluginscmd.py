"""``cacher plugins``: every installed kind, key function and codec, and any that are broken."""

from __future__ import annotations

from collections.abc import Callable

from cacher.registry import NAMESPACES, Registry, distributions


def plugins_command(registry: Registry) -> Callable[..., int]:
    def plugins() -> int:
        """List installed kinds, key functions and codecs with their distribution and version."""
        rows = []
        for group in NAMESPACES:
            infos = registry.infos(group)
            distributions(infos)
            for info in infos:
                origin = f"{info.distribution} {info.version}".strip()
                state = f"BROKEN: {info.error}" if info.error else info.target
                rows.append((group[:-1], info.name, origin, state))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
        return 0

    return plugins
