"""Resolving and printing a key: shared by the ``key`` command and its fast path."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cacher.cli.report import Reporter
from cacher.errors import UsageError
from cacher.keying.hashing import hash_inputs
from cacher.keying.keyfunc import KeyContext
from cacher.keying.keyrules import validate_key
from cacher.keying.keytemplate import render
from cacher.registry import Registry


def print_key(
    registry: Registry,
    template: str,
    hash_from: Sequence[str],
    hash_length: int,
    *,
    json: bool,
    arch_suffix: bool,
) -> int:
    """Render ``template``, check the result is a valid key, and print it (or its JSON)."""
    if not 1 <= hash_length <= 64:
        raise UsageError(f"--hash-length must be between 1 and 64, not {hash_length}")
    if any(not path.strip() for path in hash_from):
        raise UsageError(
            "--hash-from was given an empty path: it would hash the whole current directory",
            hint="is the variable naming the lock file unset?",
        )
    ctx = KeyContext(tuple(hash_inputs(hash_from)), hash_length, dict(os.environ))
    result = render(template, ctx, registry.key_function, arch_suffix=arch_suffix)
    validate_key(result)
    if json:
        Reporter(json_output=True).emit({"command": "key", "key": result, "template": template})
    else:
        print(result)
    return 0


def fast_key(args: Sequence[str]) -> int | None:
    """Run ``cacher key …`` without building the command-line app, when the arguments are
    plain; None hands anything else (``--help``, unknown flags, bad values) to the full parser,
    so errors and help read the same either way."""
    if not args or args[0] != "key":
        return None
    template: str | None = None
    hash_from: list[str] = []
    hash_length, json, arch_suffix = 16, False, False
    tokens = list(args[1:])
    while tokens:
        token = tokens.pop(0)
        name, eq, value = token.partition("=")
        if name in ("--hash-from", "--hash-length"):
            if not eq:
                if not tokens:
                    return None
                value = tokens.pop(0)
            if name == "--hash-from":
                hash_from.append(value)
            elif value.isdigit():
                hash_length = int(value)
            else:
                return None
        elif token in ("-q", "--quiet"):
            continue  # key prints only data: nothing to silence
        elif token in ("--json", "--arch-suffix"):
            json, arch_suffix = json or token == "--json", arch_suffix or token == "--arch-suffix"
        elif token.startswith("-") or template is not None:
            return None
        else:
            template = token
    if template is None:
        return None
    return print_key(
        Registry.from_entry_points(), template, hash_from, hash_length, json=json, arch_suffix=arch_suffix
    )
