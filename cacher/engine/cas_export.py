"""``cacher dir export KEY``: a stored tree as a plain tar stream, whatever its format.

A manifest's tree is written by `cacher.cas.export.export_tar` from checked blobs
(`cacher.engine.cas_fetch`: all fetched before the first byte is written, so a damaged pack
fails the export before it starts); a plain archive is decoded by its recorded codec (which
checks it) and its tar copied out. The exact key only, in the job's store: no restore keys,
no fallback, and nothing is unpacked.
"""

from __future__ import annotations

import time

from cacher.engine.cas_fetch import Blobs, blob_dirs
from cacher.engine.cas_lookup import is_manifest, look_up_exact
from cacher.engine.cas_restoring import check_manifest_object, load_manifest
from cacher.engine.requests import DownloadRequest, bound_store
from cacher.engine.results import Result
from cacher.errors import CacheMiss, IntegrityError, ObjectRefused
from cacher.stores.base import ObjectInfo, Store
from cacher.streams import Writable

#: Bytes copied at a time from a decoded archive.
BLOCK = 1 << 20


def export(store: Store, request: DownloadRequest, sink: Writable) -> Result:
    """Write the tree stored under the request's key to ``sink`` as a plain tar stream;
    `CacheMiss` when nothing is stored there."""
    kind = request.kind
    started = time.monotonic()
    bound = bound_store(store, kind, [], request.options)
    if request.cas is not None:
        info = look_up_exact(bound, request.key, request.tree_format)
    else:
        info = bound.head(request.key)
    if info is None:
        where = bound.url()
        raise CacheMiss(f"miss, nothing under {request.key} in {where}", key=request.key, store=where)
    try:
        if is_manifest(info):
            (raw, stored), codec = _export_manifest(bound, info, request, sink), "zstd"
        else:
            (raw, codec), stored = _export_archive(bound, info, request, sink), info.size
    except (IntegrityError, ObjectRefused) as exc:  # say which key, as a download does
        hint = f"replace it: cacher {kind.name} upload --force {request.key} ..."
        raise type(exc)(f"the stored {request.key} is refused: {exc.message}", hint=hint) from None
    seconds = time.monotonic() - started
    return Result(request.key, "hit", kind.name, codec, raw, stored, seconds, request.key)


def _export_manifest(
    store: Store, info: ObjectInfo, request: DownloadRequest, sink: Writable
) -> tuple[int, int]:
    """Export a manifest's tree: (tar bytes written, bytes read from the store)."""
    from cacher.cas.export import export_tar

    assert request.cas is not None  # manifests are looked up only with a layout
    check_manifest_object(request.kind, info)
    found, read = load_manifest(store, info, request.cas)
    manifest = found.stored.manifest
    counted = _Counted(sink)
    with blob_dirs(request.cas.root) as (spill, shared):
        blobs = Blobs(manifest, request.cas, spill, shared)
        blobs.gather()
        export_tar(manifest, blobs.get, counted)
    return counted.count, read + blobs.counts.fetched_bytes


def _export_archive(
    store: Store, info: ObjectInfo, request: DownloadRequest, sink: Writable
) -> tuple[int, str]:
    """Copy a plain archive's decoded tar out: (tar bytes written, codec)."""
    kind = request.kind
    stored_kind = info.metadata.get("kind")
    if stored_kind and not kind.restores(stored_kind):
        raise ObjectRefused(f"{info.key} was stored by {stored_kind!r}, not {kind.name!r}")
    codec = request.codec
    recorded = info.metadata.get("codec")
    if recorded and request.codecs is not None and recorded != codec.name:
        codec = request.codecs(recorded)
    count = 0
    with store.open_read(info.key, info) as stored:
        plain = codec.decoder(stored)
        while block := plain.read(BLOCK):
            sink.write(block)
            count += len(block)
    return count, codec.name


class _Counted:
    """A sink that counts what passes through it."""

    def __init__(self, inner: Writable) -> None:
        self.inner, self.count = inner, 0

    def write(self, data: bytes) -> int:
        self.inner.write(data)
        self.count += len(data)
        return len(data)
