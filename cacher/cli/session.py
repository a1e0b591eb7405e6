"""Everything one storage command resolves once: settings, registry, store, reporter.

No cyclopts here: the full command line (`cacher.cli.options`) and the fast path
(`cacher.cli.fastpath`) build the same session.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from cacher import config
from cacher.cli.report import Reporter
from cacher.errors import UsageError
from cacher.keying.keyrules import validate_key
from cacher.keying.keytemplate import arch_suffixed
from cacher.keying.scopes import check_unscoped_key, fallbacks, scope_prefix, segment
from cacher.registry import Registry
from cacher.stores.base import Store
from cacher.stores.softfail import SoftFailure


class Session:
    """Everything one command resolves once: settings, registry, store."""

    def __init__(
        self,
        flags: Mapping[str, Any],
        registry: Registry,
        report: Reporter,
        *,
        config_flag: str | None = None,
    ) -> None:
        """``flags``: settings given on the command line (None: not given), over the config
        file and ``CACHER_*`` variables; ``config_flag``: ``--config``."""
        self.report = report
        self.environ = dict(os.environ)
        self.registry = registry
        self.settings = config.load(self.environ, dict(flags), config_flag=config_flag)
        for warning in self.settings.warnings:  # a secret file others can read (cacher.fs.ownership)
            report.warn(warning)
        from cacher.fs import locks

        locks.configure(self.settings.lock_timeout, report.warn)  # bounded, told lock waits

    @cached_property
    def store(self) -> Store:
        """The job's store, through the read-only gate, under its scope's prefix."""
        from cacher.stores.readonly import open_for_job

        backend = config.resolved_backend(self.settings)
        if backend == "file" and not self.settings.bucket and not self.settings.config_found:
            root = config.cache_dir(self.environ)
            self.report.say(
                f"no configuration, using the local cache in {root} (run 'cacher init' to use S3)"
            )
        store = open_for_job(self.settings, self.environ, backend)
        if self.settings.scope:
            return store.with_prefix(scope_prefix(store.prefix, segment(self.settings.scope)))
        return store

    @cached_property
    def soft_failure(self) -> SoftFailure:
        """The command's soft-failure policy (`cacher.stores.softfail`), toward its store: a
        store without credentials fails softly whatever the setting."""
        return SoftFailure.for_settings(self.settings).toward(self.store)

    @cached_property
    def fallback_stores(self) -> list[tuple[str, Store]]:
        """(scope, store) to restore from after the job's own scope, in order."""
        own = segment(self.settings.scope) if self.settings.scope else None
        base = self.store.with_prefix(self.settings.prefix.strip("/")) if own else self.store
        return [
            (name, base.with_prefix(scope_prefix(base.prefix, name)))
            for name in fallbacks(self.settings.fallback_scopes)
            if name != own
        ]

    def key(self, key: str) -> str:
        """The key as stored: validated, with the arch suffix when it is on, and short enough
        for the store (checked here, before any I/O, not as the store's own error mid-way)."""
        validate_key(key)
        check_unscoped_key(key)
        stored = arch_suffixed(key) if self.settings.arch_suffix else key
        prefix = self.settings.prefix
        if self.settings.scope:
            prefix = scope_prefix(prefix, segment(self.settings.scope))
        check_key_length(config.resolved_backend(self.settings), prefix, stored)
        return stored


#: S3 object names are at most 1,024 bytes (UTF-8), the prefix included.
S3_NAME_BYTES = 1024
#: The file store writes ``.<segment>.cacher-tmp-XXXXXXXX`` (21 bytes more) in a 255-byte name.
FILE_SEGMENT_BYTES = 255 - len(f"..cacher-tmp-{'x' * 8}")


def check_key_length(backend: str, prefix: str, key: str) -> None:
    """Raise `UsageError` for a key (after prefix and arch suffix) the backend cannot store."""
    name = "/".join(p for p in (prefix, key) if p)
    if backend == "s3" and len(name.encode()) > S3_NAME_BYTES:
        raise UsageError(
            f"key too long: {len(name.encode())} bytes with the prefix and suffix, "
            f"S3 object names are at most {S3_NAME_BYTES} bytes"
        )
    if backend == "file":
        for segment in name.split("/"):
            if len(os.fsencode(segment)) > FILE_SEGMENT_BYTES:
                raise UsageError(
                    f"key too long: the segment {segment[:40]!r}... is {len(os.fsencode(segment))} bytes, "
                    f"the file store takes at most {FILE_SEGMENT_BYTES} per segment"
                )
