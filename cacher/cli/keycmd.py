"""``cacher key``: render a key template and print it; touches no store."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from cacher.cli.report import Reporter
from cacher.errors import UsageError
from cacher.keyfunc import KeyContext
from cacher.keyrules import validate_key
from cacher.keytemplate import render
from cacher.registry import Registry


def key_command(registry: Registry) -> Callable[..., int]:
    def key(
        template: Annotated[str, Parameter(help="Key template, e.g. 'go-mod/{hash}.tar.zst'.")],
        /,
        *,
        hash_from: Annotated[
            list[Path] | None, Parameter(help="File or directory whose content is hashed (repeatable).")
        ] = None,
        hash_length: Annotated[int, Parameter(help="Characters of the digest to keep.")] = 16,
        json: Annotated[bool, Parameter(help="Print the key as JSON on stdout.")] = False,
        arch_suffix: Annotated[
            bool, Parameter(help="Append -OS-ARCH (Go's names, e.g. -linux-amd64).")
        ] = False,
    ) -> int:
        """Print the key a template resolves to; with --hash-from and no {hash}, insert the hash
        before the extension."""
        if not 1 <= hash_length <= 64:
            raise UsageError(f"--hash-length must be between 1 and 64, not {hash_length}")
        ctx = KeyContext(tuple(hash_from or ()), hash_length, dict(os.environ))
        result = render(
            template,
            ctx,
            lambda name: registry.key_function(name),
            arch_suffix=arch_suffix,
        )
        validate_key(result)
        if json:
            Reporter(json_output=True).emit({"command": "key", "key": result, "template": template})
        else:
            print(result)
        return 0

    return key
