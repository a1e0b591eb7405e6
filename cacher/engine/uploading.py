"""Upload: kind -> codec -> store."""

from __future__ import annotations

import time
from dataclasses import replace

from cacher import __version__
from cacher.engine.cas_saving import cas_upload, settle_formats, stored_manifest_exists
from cacher.engine.requests import UploadRequest, bound_store
from cacher.engine.results import Outcome, Result
from cacher.engine.unchanged import watch
from cacher.errors import ArtifactError, StorageError
from cacher.stores.base import Store
from cacher.streams import CountingWriter


def upload(store: Store, request: UploadRequest) -> Result:
    """Pack the request's targets under its key; skip when the key exists unless ``force``.
    Under soft failure, a store that fails gives outcome ``failed`` and the reason, not an
    error. A store that is not ``writable`` (the read-only gate) gets nothing: the outcome is
    ``read-only``, decided before the kind packs anything."""
    request.kind.check_upload(request.targets, request.options)
    return store_upload(bound_store(store, request.kind, request.targets, request.options), request)


def _stored(store: Store, request: UploadRequest) -> bool:
    """Whether the key is stored already: as an archive, or (with a layout) as a manifest."""
    if store.exists(request.key):
        return True
    return request.cas is not None and stored_manifest_exists(store, request.key)


def store_upload(store: Store, request: UploadRequest) -> Result:
    """`upload` into ``store`` as it is (already bound to the kind's namespace, if any)."""
    kind, codec, key = request.kind, request.codec, request.key
    targets, options = request.targets, request.options
    started = time.monotonic()
    if not store.writable:
        return Result(key, "read-only", kind.name, codec.name, seconds=time.monotonic() - started)
    try:
        if not request.force and _stored(store, request):
            return Result(key, "skipped", kind.name, codec.name, seconds=time.monotonic() - started)
        if request.cas is not None and request.tree_format == "cas":
            if not store.offline_reason:
                return cas_upload(store, request)
            # Offline the tier keeps whole objects, not packs it can read ranges of: one archive
            # restores offline, as the plain format does.
            request = replace(request, tree_format="tar")
        store.prepare_writer()  # S3: s3fs is built while the file's digest is taken
        metadata = {**kind.metadata(targets, options), "kind": kind.name, "codec": codec.name}
        metadata["version"] = __version__
        # Taken before the digest: a file that changes from here to its last byte is seen,
        # by stat where that is as safe as hashing the bytes again (engine/unchanged.py).
        watched = watch(kind, targets)
        sha = kind.digest(targets, options) or kind.sha256(options)
        if sha:
            metadata["sha256"] = sha.lower()
        with store.writer(key, metadata) as stored:
            counted_store = CountingWriter(stored)
            with codec.encoder(counted_store) as encoded:
                hashing = bool(sha) and watched is None
                counted_raw = CountingWriter(encoded, request.progress, hashing=hashing)
                kind.pack(targets, counted_raw, options)
            changed = watched is not None and not watched.holds()
            if counted_raw.hash is not None:
                changed = counted_raw.hash.hexdigest() != metadata["sha256"]
            if changed:
                raise ArtifactError(
                    f"{' '.join(targets)} changed while it was uploaded (after its sha256 was "
                    "taken); nothing stored"
                )
        settle_formats(store, request)
    except StorageError as exc:
        reason = request.soft_failure.absorb(exc)
        seconds = time.monotonic() - started
        return Result(key, "failed", kind.name, codec.name, seconds=seconds, reason=reason)
    seconds = time.monotonic() - started
    # Offline, the object went to the runner-local tier only: not shared with other runners.
    outcome: Outcome = "local" if store.offline_reason else "uploaded"
    return Result(key, outcome, kind.name, codec.name, counted_raw.count, counted_store.count, seconds)
