"""Stores: where objects live. `open_store` builds the one a command talks to from the settings.

- `cacher.stores.base`: the `Store` contract over any fsspec filesystem, `ObjectInfo`, and the
  wrappers that translate foreign errors into cacher's at the seam;
- `cacher.stores.errortable`: a backend's exception table and the context manager that applies
  it at the seam; `cacher.stores.fsspec_errors`: the generic fsspec store's table;
  `cacher.stores.wording`: the one message and hint of each failure, for every table;
- `cacher.stores.local`: the ``file`` backend (the default);
- `cacher.stores.s3`: S3 and its kin (SeaweedFS, Garage, MinIO, AWS, R2), imported only when
  the s3 backend is used: the only package that imports s3fs or botocore.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cacher.config import Settings, cache_dir, resolved_backend
from cacher.errors import ConfigError, PluginError
from cacher.stores.base import Store
from cacher.stores.local import LocalStore


def open_store(settings: Settings, environ: Mapping[str, str]) -> Store:
    backend = resolved_backend(settings)
    if backend == "s3":
        if not settings.bucket:
            raise ConfigError("the s3 backend needs a bucket (--bucket, CACHER_BUCKET or config)")
        from cacher.stores.s3 import transport as s3_transport
        from cacher.stores.s3.client import s3_filesystem
        from cacher.stores.s3.rest import S3Http
        from cacher.stores.s3.store import S3Store, Transfer
        from cacher.stores.softfail import SoftFailure

        transport = s3_transport.resolve(settings, environ)
        store = S3Store(
            lambda: s3_filesystem(settings, transport),
            settings.bucket,
            settings.prefix,
            head_client=S3Http(transport),
            transfer=Transfer(
                settings.part_size_mb << 20, grow_parts=not settings.options.get("fixed_upload_size", False)
            ),
            failures=SoftFailure.for_settings(settings).job_memory(transport.endpoint, environ),
        )
        from cacher import fetch

        fetch.S3_OPENERS[store.bucket] = store.open_object  # --url s3://<this bucket>/...
        return store
    if backend == "file":
        root = Path(settings.bucket).expanduser() if settings.bucket else cache_dir(environ)
        import fsspec.implementations.local as local

        from cacher.fs.staging import keep_out

        keep_out(root.absolute(), "the file store's directory")
        return LocalStore(local.LocalFileSystem(), str(root.absolute()), settings.prefix)
    if backend == "memory":
        from fsspec.implementations.memory import MemoryFileSystem

        fs = MemoryFileSystem(skip_instance_cache=True)
        return Store(fs, settings.bucket or "cacher", settings.prefix, protocol="memory")
    import fsspec

    try:
        fs = fsspec.filesystem(backend, **settings.options)
    except (ImportError, ValueError) as exc:
        raise PluginError(f"backend {backend!r} is not available: {exc}") from None
    if not settings.bucket:
        raise ConfigError(f"the {backend} backend needs a bucket (--bucket, CACHER_BUCKET or config)")
    return Store(fs, settings.bucket, settings.prefix, protocol=backend)
