"""``cacher key``: render a key template and print it; touches no store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from cyclopts import Parameter

from cacher.cli.keyrun import print_key
from cacher.registry import Registry


def key_command(registry: Registry) -> Callable[..., int]:
    def key(
        template: Annotated[str, Parameter(help="Key template, e.g. 'go-mod/{hash}.tar.zst'.")],
        /,
        *,
        hash_from: Annotated[
            list[str] | None,
            Parameter(
                help="File or directory whose content is hashed, or a glob (** spans directories) "
                "standing for the files it matches (repeatable).",
                negative=(),
            ),
        ] = None,
        hash_length: Annotated[int, Parameter(help="Characters of the digest to keep.")] = 16,
        json: Annotated[bool, Parameter(help="Print the key as JSON on stdout.")] = False,
        arch_suffix: Annotated[
            bool, Parameter(help="Append -OS-ARCH (Go's names, e.g. -linux-amd64).")
        ] = False,
        quiet: Annotated[
            bool, Parameter(name=["--quiet", "-q"], help="Accepted as everywhere; key prints only data.")
        ] = False,
    ) -> int:
        """Print the key a template resolves to; with --hash-from and no {hash}, insert the hash
        before the extension."""
        return print_key(registry, template, hash_from or [], hash_length, json=json, arch_suffix=arch_suffix)

    return key
