"""``{hash}``, ``{os}``, ``{arch}`` and ``{env:NAME}``."""

from __future__ import annotations

from cacher.plugin import KeyContext, KeyFunction, UsageError, content_digest, go_arch, go_os


class HashKey(KeyFunction):
    """The content digest of ``--hash-from`` inputs, cut to ``--hash-length`` characters."""

    def render(self, arg: str | None, ctx: KeyContext) -> str:
        if not ctx.hash_from:
            raise UsageError("the template uses {hash} but no --hash-from PATH was given")
        if arg and not (arg.isdigit() and 1 <= int(arg) <= 64):
            raise UsageError(f"{{hash:{arg}}}: the length must be a number from 1 to 64")
        length = int(arg) if arg else ctx.hash_length
        return content_digest(ctx.hash_from)[:length]


class OsKey(KeyFunction):
    """The operating system in Go's spelling (``linux``, ``darwin``)."""

    def render(self, arg: str | None, ctx: KeyContext) -> str:
        return go_os()


class ArchKey(KeyFunction):
    """The CPU architecture in Go's spelling (``amd64``, ``arm64``)."""

    def render(self, arg: str | None, ctx: KeyContext) -> str:
        return go_arch()


class EnvKey(KeyFunction):
    """The value of an environment variable: ``{env:NAME}``; unset is an error."""

    def render(self, arg: str | None, ctx: KeyContext) -> str:
        if not arg:
            raise UsageError("{env:NAME} needs a variable name")
        value = ctx.environ.get(arg)
        if value is None:
            raise UsageError(f"{{env:{arg}}}: the environment variable {arg} is not set")
        return value
