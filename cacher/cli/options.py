"""The store options every storage command takes, and the session they resolve into."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Annotated, Any

from cyclopts import Parameter

from cacher import config
from cacher.cli.report import Reporter
from cacher.errors import NoCredentials, UsageError
from cacher.keyrules import validate_key
from cacher.keytemplate import arch_suffixed
from cacher.registry import Registry
from cacher.scopes import check_unscoped_key, fallbacks, scope_prefix, slug
from cacher.stores.base import Store, UnavailableStore, unavailable_store

STORE_GROUP = "Store options"


@Parameter(name="*", group=STORE_GROUP)
@dataclass
class StoreOptions:
    """Flags that override the config file and ``CACHER_*`` variables for one command."""

    backend: Annotated[str | None, Parameter(help="s3, file, memory or an fsspec protocol.")] = None
    endpoint: Annotated[str | None, Parameter(help="S3 endpoint URL.")] = None
    region: Annotated[str | None, Parameter(help="S3 region.")] = None
    bucket: Annotated[str | None, Parameter(help="S3 bucket, or the directory of the file backend.")] = None
    prefix: Annotated[str | None, Parameter(help="Joined in front of every key.")] = None
    key_file: Annotated[str | None, Parameter(help="File holding the S3 access key id.")] = None
    secret_file: Annotated[str | None, Parameter(help="File holding the S3 secret key.")] = None
    session_token: Annotated[
        str | None, Parameter(help="S3 session token of temporary credentials (also CACHER_SESSION_TOKEN).")
    ] = None
    ca_bundle: Annotated[
        str | None,
        Parameter(help="CA certificates (PEM) for the S3 endpoint (default AWS_CA_BUNDLE, SSL_CERT_FILE)."),
    ] = None
    arch_suffix: Annotated[
        bool | None,
        Parameter(
            help="Append -OS-ARCH (Go's names, e.g. -linux-amd64) to every key.", negative="--no-arch-suffix"
        ),
    ] = None
    soft_fail: Annotated[
        bool | None, Parameter(help="Storage errors warn: a miss on download, exit 0 on upload.")
    ] = None
    read_only: Annotated[
        bool | None,
        Parameter(help="Never write to the store: uploads, deletes and prunes say so and do nothing."),
    ] = None
    scope: Annotated[
        str | None, Parameter(help="Write to and restore from this scope first (e.g. the branch).")
    ] = None
    fallback_scopes: Annotated[
        str | None, Parameter(help="Comma-separated scopes to restore from after the job's own.")
    ] = None
    connect_timeout: Annotated[
        float | None, Parameter(help="Seconds to wait for a connection to the store (default 5).")
    ] = None
    read_timeout: Annotated[
        float | None, Parameter(help="Seconds the store may stay silent in a request (default 60).")
    ] = None
    request_timeout: Annotated[
        float | None, Parameter(help="Seconds one store request may take in all (default 300).")
    ] = None
    metadata_timeout: Annotated[
        float | None, Parameter(help="Seconds a HEAD, LIST or DELETE may take in all (default 7.5).")
    ] = None
    max_attempts: Annotated[
        int | None, Parameter(help="Attempts per store request, the first included (default 3).")
    ] = None
    local_tier: Annotated[
        str | None, Parameter(help="Runner-local directory of verified copies of stored objects.")
    ] = None
    local_tier_max: Annotated[
        str | None, Parameter(help="Bound of the local tier, e.g. 20GiB (default 20GiB).")
    ] = None
    offline: Annotated[
        bool | None, Parameter(help="Ask no store: restore from the local tier, keep uploads there.")
    ] = None
    config: Annotated[str | None, Parameter(help="Config file (default: ~/.config/cacher/config.toml).")] = (
        None
    )
    debug: Annotated[bool, Parameter(help="Show tracebacks (also CACHER_DEBUG=1).")] = False

    def flags(self) -> dict[str, Any]:
        skip = {"config", "debug"}  # not settings: they steer this one run
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@Parameter(name="*", group="Output")
@dataclass
class OutputOptions:
    """How a command reports: quiet, or a JSON document on stdout."""

    quiet: Annotated[bool, Parameter(name=["--quiet", "-q"], help="Print nothing but errors.")] = False
    json: Annotated[bool, Parameter(help="Print the result as JSON on stdout (docs/json.md).")] = False

    def reporter(self) -> Reporter:
        return Reporter(quiet=self.quiet, json_output=self.json)


class Session:
    """Everything one command resolves once: settings, registry, store."""

    def __init__(
        self, opts: StoreOptions | None, registry: Registry, output: OutputOptions | None = None
    ) -> None:
        self.opts = opts or StoreOptions()
        self.report = (output or OutputOptions()).reporter()
        self.environ = dict(os.environ)
        self.registry = registry
        self.settings = config.load(self.environ, self.opts.flags(), config_flag=self.opts.config)

    @cached_property
    def store(self) -> Store:
        from cacher.stores.tier import open_tiered

        backend = config.resolved_backend(self.settings)
        if backend == "file" and not self.settings.bucket and not self.settings.config_found:
            root = config.cache_dir(self.environ)
            self.report.say(
                f"no configuration, using the local cache in {root} (run 'cacher init' to use S3)"
            )
        try:
            store = open_tiered(self.settings, self.environ, backend)
        except NoCredentials as exc:
            if not (self.settings.read_only or self.settings.soft_fail):
                raise
            # A fork's pull request gets no secrets: the store is unavailable, not an error.
            store = unavailable_store(self.settings.bucket or "", self.settings.prefix, backend, exc.message)
        if self.settings.scope:
            return store.with_prefix(scope_prefix(store.prefix, slug(self.settings.scope)))
        return store

    @property
    def soft_fail(self) -> bool:
        """Whether storage errors are misses: ``soft_fail``, or a store without credentials."""
        return self.settings.soft_fail or isinstance(self.store, UnavailableStore)

    @cached_property
    def fallback_stores(self) -> list[tuple[str, Store]]:
        """(scope, store) to restore from after the job's own scope, in order."""
        own = slug(self.settings.scope) if self.settings.scope else None
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
            prefix = scope_prefix(prefix, slug(self.settings.scope))
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
