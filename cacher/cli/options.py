"""The store and output flags every storage command takes, as cyclopts parameters.

They resolve into a `cacher.cli.session.Session`; that module needs no cyclopts, so the fast
path (`cacher.cli.fastpath`) builds the same session without it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Any

from cyclopts import Parameter

from cacher.cli.report import Reporter
from cacher.cli.session import Session
from cacher.registry import Registry

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


def open_session(
    store: StoreOptions | None, registry: Registry, output: OutputOptions | None = None
) -> Session:
    """The session a command's parsed flags resolve into."""
    opts = store or StoreOptions()
    return Session(opts.flags(), registry, (output or OutputOptions()).reporter(), config_flag=opts.config)
