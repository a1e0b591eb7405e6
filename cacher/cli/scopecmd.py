"""``cacher scope``: print the store prefix a scope name maps to; touches no store.

An administrator writes a bucket policy per scope (``s3:PutObject`` on ``<prefix>/*`` for the
branch's credentials): this names that prefix exactly as every command computes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from cyclopts import Parameter

from cacher.cli.options import OutputOptions, StoreOptions, open_session
from cacher.errors import UsageError
from cacher.keying.scopes import scope_prefix, segment
from cacher.registry import Registry


def scope_command(registry: Registry) -> Callable[..., int]:
    def scope(
        name: Annotated[
            str | None, Parameter(help="The scope name (a branch); default: the configured scope.")
        ] = None,
        /,
        *,
        store: StoreOptions | None = None,
        output: OutputOptions | None = None,
    ) -> int:
        """Print the store prefix a scope's objects live under (for a bucket policy)."""
        session = open_session(store, registry, output)
        chosen = session.settings.scope if name is None else name
        if not chosen:
            raise UsageError("cacher scope needs a scope name (or the scope setting)")
        made = segment(chosen)
        prefix = scope_prefix(session.settings.prefix, made)
        if session.report.json_output:
            session.report.emit({"command": "scope", "scope": chosen, "segment": made, "prefix": prefix})
        else:
            print(prefix)
        return 0

    return scope
