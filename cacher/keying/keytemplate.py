"""Rendering key templates: ``{placeholder}`` substitution and the Go tool's suffix rules."""

from __future__ import annotations

import re
from collections.abc import Callable

from cacher.errors import UsageError
from cacher.keying.keyfunc import KeyContext, KeyFunction
from cacher.keying.platform_names import go_arch, go_os

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)(?::([^{}]*))?\}")
_COMPOUND = (".tar.zst", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.lz4", ".tar.br")


def split_extension(key: str) -> tuple[str, str]:
    """Split ``img/build.tar.zst`` into ``("img/build", ".tar.zst")``.

    A known compound archive suffix counts whole; otherwise the last dot of the final
    segment starts the extension, unless it is the segment's first character.
    """
    head, _, base = key.rpartition("/")
    lowered = base.lower()
    for suffix in _COMPOUND:
        if lowered.endswith(suffix) and len(base) > len(suffix):
            stem, ext = base[: -len(suffix)], base[-len(suffix) :]
            break
    else:
        dot = base.rfind(".")
        stem, ext = (base[:dot], base[dot:]) if dot > 0 else (base, "")
    return (f"{head}/{stem}" if head else stem), ext


def insert_before_extension(key: str, text: str) -> str:
    """``img/build.tar.zst`` + ``abc`` -> ``img/build-abc.tar.zst``."""
    stem, ext = split_extension(key)
    return f"{stem}-{text}{ext}"


def arch_suffixed(key: str) -> str:
    """Add ``-<os>-<arch>`` (Go's names) before the key's extension."""
    return insert_before_extension(key, f"{go_os()}-{go_arch()}")


def fits_this_machine(key: str, prefix: str) -> bool:
    """With ``arch_suffix`` on: whether ``key`` carries this machine's ``-<os>-<arch>`` before
    its extension and, without it, still starts with ``prefix`` (a restore key must not bring
    back another architecture's build)."""
    stem, ext = split_extension(key)
    suffix = f"-{go_os()}-{go_arch()}"
    return stem.endswith(suffix) and (stem[: -len(suffix)] + ext).startswith(prefix)


def render(
    template: str,
    ctx: KeyContext,
    lookup: Callable[[str], KeyFunction],
    *,
    arch_suffix: bool = False,
) -> str:
    """Fill the template's placeholders; with hash inputs and no ``{hash}``, insert the hash."""
    used_hash = False

    def fill(match: re.Match[str]) -> str:
        nonlocal used_hash
        name, arg = match.group(1), match.group(2)
        used_hash = used_hash or name == "hash"
        return lookup(name).render(arg, ctx)

    bare = _PLACEHOLDER.sub("", template)
    if "{" in bare or "}" in bare:
        raise UsageError(f"template {template!r}: unbalanced or malformed placeholder")
    key = _PLACEHOLDER.sub(fill, template)
    if ctx.hash_from and not used_hash:
        key = insert_before_extension(key, lookup("hash").render(None, ctx))
    if arch_suffix:
        key = arch_suffixed(key)
    return key
