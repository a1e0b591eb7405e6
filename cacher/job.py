"""What one storage job resolves once: settings, the store, the stored key, the codec.

The command line (`cacher.cli.session`) and the Python API (`cacher.api`) open their store
here, the same way: settings by precedence (`cacher.config`), the store behind the read-only
gate (`cacher.stores.readonly`) and the local tier, under the job's scope, with the fallback
scopes to restore from. Nothing here prints: what a person should read (a secret file others
can read, a lock wait, the local default store) goes to the ``warn`` and ``say`` callbacks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cacher import config
from cacher.errors import ConfigError, UsageError
from cacher.keying.keyrules import validate_key
from cacher.keying.keytemplate import arch_suffixed, fits_this_machine
from cacher.keying.scopes import check_unscoped_key, fallbacks, scope_prefix, segment
from cacher.stores.softfail import SoftFailure

if TYPE_CHECKING:  # annotations only: a command imports what it uses (`cacher exists` no transfer code)
    from cacher.codec import Codec
    from cacher.engine.cas_layout import CasLayout
    from cacher.engine.requests import DownloadRequest, UploadRequest
    from cacher.kind import Kind
    from cacher.registry import Registry
    from cacher.stores.base import Store

__all__ = ["FILE_SEGMENT_BYTES", "S3_NAME_BYTES", "Job", "check_key_length", "choose_codec"]


def _silent(message: str) -> None:
    """The default of ``warn`` and ``say``: a caller that gives none hears nothing."""


class Job:
    """Everything one storage command resolves once: settings, registry, store."""

    def __init__(
        self,
        flags: Mapping[str, Any],
        registry: Registry,
        *,
        config_flag: str | None = None,
        environ: Mapping[str, str] | None = None,
        warn: Callable[[str], None] = _silent,
        say: Callable[[str], None] = _silent,
    ) -> None:
        """``flags``: settings given by the caller (None: not given), over the config file and
        ``CACHER_*`` variables; ``config_flag``: ``--config``; ``environ``: the process's
        environment unless given."""
        self.environ = dict(os.environ if environ is None else environ)
        self.registry = registry
        self.say = say
        self.settings = config.load(self.environ, dict(flags), config_flag=config_flag)
        for warning in self.settings.warnings:  # a secret file others can read (cacher.fs.ownership)
            warn(warning)
        from cacher.fs import locks

        locks.configure(self.settings.lock_timeout, warn)  # bounded, told lock waits

    @cached_property
    def store(self) -> Store:
        """The job's store, through the read-only gate, under its scope's prefix."""
        from cacher.stores.readonly import open_for_job

        backend = config.resolved_backend(self.settings)
        if backend == "file" and not self.settings.bucket and not self.settings.config_found:
            root = config.cache_dir(self.environ)
            self.say(f"no configuration, using the local cache in {root} (run 'cacher init' to use S3)")
        store = open_for_job(self.settings, self.environ, backend)
        if self.settings.scope:
            return store.with_prefix(scope_prefix(store.prefix, segment(self.settings.scope)))
        return store

    @cached_property
    def soft_failure(self) -> SoftFailure:
        """The job's soft-failure policy (`cacher.stores.softfail`), toward its store: a
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

    @cached_property
    def cas_layout(self) -> CasLayout:
        """Where the job's content-addressed objects live: packs under its own prefix, reused
        from its own and its fallback scopes (`cacher.engine.cas_layout`)."""
        from cacher.engine.cas_layout import CasLayout

        own = segment(self.settings.scope) if self.settings.scope else None
        root = self.store.with_prefix(self.settings.prefix.strip("/")) if own else self.store
        readable = (own, *(name for name, _ in self.fallback_stores))
        from cacher.cas.statcache import records_home

        records = records_home(config.cache_dir(self.environ)) if self.store.writable else None
        return CasLayout(root, own, readable, tuple(self.fallback_stores), records)

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

    def for_download(self, request: DownloadRequest) -> DownloadRequest:
        """The download with what the job adds to every one: the fallback scopes, the arch
        suffix's rule for restore keys, recorded codecs, the soft-failure policy."""
        return replace(
            request,
            fallback_stores=self.fallback_stores,
            fits=fits_this_machine if self.settings.arch_suffix else None,
            codecs=self.registry.codec,  # decoding: the level does not apply
            soft_failure=self.soft_failure,
            tree_format=self.settings.tree_format if request.kind.trees else "tar",
            cas=self.cas_layout if request.kind.archive else None,
        )

    def for_upload(self, request: UploadRequest) -> UploadRequest:
        """The upload with what the job adds to every one: the soft-failure policy, the tree
        format of kinds that store trees (`Kind.trees`) and, for archive kinds, the job's layout
        (a key stored as a manifest is stored: a ``tar`` upload skips it too)."""
        return replace(
            request,
            soft_failure=self.soft_failure,
            tree_format=self.settings.tree_format if request.kind.trees else "tar",
            cas=self.cas_layout if request.kind.archive else None,
        )

    def codec(self, kind: Kind, stored_key: str, override: str | None) -> Codec:
        """The codec `choose_codec` picks at the configured level; a level the codec refuses
        names where it was set."""
        level = self.settings.compression_level
        try:
            return choose_codec(self.registry, kind, stored_key, override, level)
        except ConfigError as exc:
            if level is None:
                raise
            where = config.origin(self.settings, "compression_level")
            raise ConfigError(f"{exc.message} (set by {where})", hint=exc.hint) from None


def choose_codec(registry: Registry, kind: Kind, key: str, override: str | None, level: int | None) -> Codec:
    """``--codec`` if given; for archive kinds the key's suffix (default zstd); else none."""
    if override:
        return registry.codec(override, level=level)
    if kind.archive:
        lowered = key.lower()
        matches = []
        for info in registry.infos("codecs"):
            suffixes: tuple[str, ...] = getattr(info.plugin, "suffixes", ())
            matches += [(len(s), info.name) for s in suffixes if lowered.endswith(s)]
        name = max(matches)[1] if matches else "zstd"
        return registry.codec(name, level=level)
    return registry.codec("none")


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
        for part in name.split("/"):
            if len(os.fsencode(part)) > FILE_SEGMENT_BYTES:
                raise UsageError(
                    f"key too long: the segment {part[:40]!r}... is {len(os.fsencode(part))} bytes, "
                    f"the file store takes at most {FILE_SEGMENT_BYTES} per segment"
                )
