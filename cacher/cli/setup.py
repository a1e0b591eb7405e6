"""``cacher init`` (write the config, then prove it works) and ``cacher doctor``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from cyclopts import Parameter

from cacher import config
from cacher.cli.options import OutputOptions, StoreOptions, open_session
from cacher.cli.report import Reporter
from cacher.errors import StorageError, UsageError
from cacher.registry import Registry
from cacher.stores import open_store
from cacher.stores.base import Store
from cacher.stores.readonly import gate
from cacher.stores.s3.credentials import resolve


def smoke_test(store: Store) -> list[str]:
    """HEAD the bucket, then write, read back and delete a 1-byte canary (a store behind the
    read-only gate is listed instead: a read-only job checks reads only)."""
    lines = []
    store.check_bucket()
    lines.append(f"bucket reachable: {store.url()}")
    if not store.writable:
        listed = sum(1 for _ in store.iter_list(""))  # counted as the pages arrive
        lines.append(f"read-only: listed {listed} objects; no canary written")
        return lines
    key = f".cacher-doctor-{uuid.uuid4().hex}"
    with store.writer(key) as w:
        w.write(b"!")
    with store.open_read(key) as r:
        data = r.read()
    store.delete(key)
    if data != b"!":
        raise StorageError(f"the canary read back as {len(data)} bytes, not the 1 byte written")
    lines.append("canary written, read back and deleted")
    return lines


def doctor_command(registry: Registry) -> Callable[..., int]:
    def doctor(*, store: StoreOptions | None = None, output: OutputOptions | None = None) -> int:
        """Show the effective settings, where each came from, and run the smoke test (bucket,
        1-byte canary); --json prints the same as one document."""
        session = open_session(store, registry, output)
        report = session.report
        settings = session.settings
        backend = config.resolved_backend(settings)
        found = "found" if settings.config_found else "not found"
        report.say(f"config file: {settings.config_path} ({found})")
        shown: dict[str, dict[str, Any]] = {}
        for field in config.FIELDS:
            value = settings.values[field.name]
            source = settings.sources[field.name]
            source = field.env if source == "env" else source
            if field.name == "backend":
                value = backend
                if source == "default" and backend == "s3":
                    source = "inferred: an endpoint or bucket is set"
            elif field.name == "session_token" and value:
                value = "(set)"
            shown[field.name] = {"value": value, "source": source}
            report.say(f"{field.name}: {value if field.name == 'backend' else repr(value)} ({source})")
        document: dict[str, Any] = {
            "command": "doctor",
            "config_file": str(settings.config_path),
            "config_found": settings.config_found,
            "settings": shown,
        }
        if backend == "s3":
            from cacher.stores.s3.transport import resolve as resolve_transport

            transport = resolve_transport(settings, session.environ)
            proxy = transport.proxy
            document["transport"] = {
                "credentials": transport.credentials.describe(),
                "ca_bundle": transport.ca_bundle or "the system store",
                "ca_source": transport.ca_source,
                "proxy": f"{proxy.host}:{proxy.port}" if proxy else None,
            }
            report.say(f"credentials: {document['transport']['credentials']}")
            report.say(f"CA bundle: {document['transport']['ca_bundle']} ({transport.ca_source})")
            report.say(f"proxy: {document['transport']['proxy'] or 'none'}")
        checks = smoke_test(session.store)
        for line in checks:
            report.say(line)
        report.say("ok")
        report.emit({**document, "checks": checks, "outcome": "ok"})
        return 0

    return doctor


def init_command(registry: Registry) -> Callable[..., int]:
    def init(
        *,
        check: Annotated[bool, Parameter(help="Run the smoke test before writing (default).")] = True,
        store: StoreOptions | None = None,
    ) -> int:
        """Write the config file (mode 0600) from the given flags, after a smoke test passes."""
        opts = store or StoreOptions()
        report = Reporter()
        environ = dict(os.environ)
        path = config.config_path(environ, opts.config)
        given = {k: v for k, v in opts.flags().items() if v is not None and v != ""}  # "$UNSET" is no flag
        if not given:
            raise UsageError(
                "cacher init needs the settings to write: nothing was given",
                hint="e.g. cacher init --endpoint URL --bucket NAME --key-file F --secret-file F "
                "(cacher doctor checks the current settings)",
            )
        old_values, _ = config.read_file(path)
        values: dict[str, Any] = {**old_values, **given}
        if check:
            settings = config.load({**_without_cacher_vars(environ)}, values, config_flag=os.devnull)
            if config.resolved_backend(settings) == "s3":
                resolve(settings, environ)
            # The store is the one being written to the file; whether this job may write to it
            # is the job's own settings' word (CACHER_READ_ONLY included), through the gate.
            job = config.load(environ, values, config_flag=os.devnull)
            for line in smoke_test(gate(open_store(settings, environ), job)):
                report.say(line)
        config.write(path, values)
        report.say(f"wrote {path}")
        return 0

    return init


def _without_cacher_vars(environ: dict[str, str]) -> dict[str, str]:
    """The environment without CACHER_<FIELD> overrides, so init tests what it writes."""
    names = {f.env for f in config.FIELDS}
    return {k: v for k, v in environ.items() if k not in names}
