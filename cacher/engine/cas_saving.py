"""Upload in the content-addressed format: a kind's tar stream into packs, then its manifest.

Any archive kind qualifies: its ``pack`` writes a tar stream (on a thread, into a pipe), which
`cacher.cas.save.save_stream` cuts into entries and blobs. A kind whose tree is one directory
(`Kind.tree`: ``dir``) is walked here instead, and a file this runner's record vouches for
(`cacher.cas.statcache`: unchanged size, times and inode since it was restored or saved) is
not read at all when its contents are stored. Blobs the base's manifest already
stores in a pack the job may read are referenced, not sent; the rest go into new packs, stored
under the job's own prefix as they fill (one stored while the next fills). The manifest is
written last, once every pack it names is stored, so a killed upload leaves only unreferenced
packs (prune removes them) and never a manifest naming a pack that is not there.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO

from cacher import __version__
from cacher.cas import names
from cacher.cas.pack import PACK_TARGET, Packer, PackInfo
from cacher.cas.save import save_stream, save_tree
from cacher.cas.statcache import FileRecord
from cacher.engine.cas_layout import CasLayout
from cacher.engine.cas_reuse import plan_reuse
from cacher.engine.requests import UploadRequest
from cacher.engine.results import Outcome, Result
from cacher.stores.base import Store
from cacher.streams import Writable

__all__ = ["CODEC", "cas_upload", "settle_formats", "stored_manifest_exists", "tar_of"]

#: The codec a content-addressed upload reports (each frame is zstd; there is no one stream).
CODEC = "cas"
#: Threads compressing frames (zstd releases the GIL): one per CPU.
COMPRESSORS = max(2, os.cpu_count() or 2)
#: Packs stored at once while the next fills: bounds memory to about two packs (a second pack
#: stored at once cost 30 MiB of peak memory and gained no time against a local SeaweedFS:
#: a pack is stored faster than the next one fills).
IN_FLIGHT = 1
#: Malloc arenas the process keeps (`bound_allocator`): one, shared by every thread.
ARENAS = 1
#: Blocks of this size and more (file blocks, packs, upload parts) are mapped on their own, so
#: they go back to the system when freed, and glibc's threshold stays there.
MMAP_THRESHOLD = 4 << 20
#: Free memory above this at the top of the heap goes back to the system (glibc's default,
#: which its own rule would raise with the threshold).
TRIM_THRESHOLD = 128 << 10
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # mallopt's parameters (malloc.h)


def stored_manifest_exists(store: Store, key: str) -> bool:
    """Whether ``key`` is stored as a manifest in ``store``."""
    return store.exists(names.manifest_name(key))


def cas_upload(store: Store, request: UploadRequest) -> Result:
    """Store the request's targets content-addressed under its key in ``store`` (kind-bound),
    after the writable and skip checks of `cacher.engine.uploading.store_upload`."""
    layout = request.cas
    assert layout is not None  # the caller dispatches on it
    started = time.monotonic()
    bound_allocator()
    reuse = plan_reuse(store, request, layout)
    known = reuse.known
    tree = request.kind.tree(request.targets, request.options)
    record: FileRecord | None = None
    compressing = ThreadPoolExecutor(COMPRESSORS, "cacher-cas-zstd")
    with _PackSender(layout, reuse.renew) as sender, compressing as pool:
        packer = Packer(sender.open_sink, sender.done, pool=pool)
        if tree is not None:  # one directory: walked here, unchanged files not read
            since = time.time_ns()  # before the first stat: the record's racy rule
            with tree as (root, skip):
                if layout.records is not None:
                    record = FileRecord(layout.records, root).load()
                saved = save_tree(root, packer, known, layout.pack_ref, skip, record)
        else:
            with tar_of(request) as tar:
                saved = save_stream(tar, packer, known, layout.pack_ref)
    metadata = {
        **names.MANIFEST_METADATA,
        **request.kind.metadata(request.targets, request.options),
        "tree-kind": request.kind.name,
        "version": __version__,
    }
    with store.writer(names.manifest_name(request.key), metadata) as out:
        out.write(saved.root)
    if record is not None:
        record.write(saved.files, since)
    settle_formats(store, request)
    outcome: Outcome = "local" if store.offline_reason else "uploaded"
    notes: tuple[str, ...] = ()
    if request.base and reuse.base is None:  # a typo would cost a whole upload: say so
        notes = (f"base {request.base} is not stored as a content-addressed tree: nothing reused from it",)
    return Result(
        request.key, outcome, request.kind.name, CODEC, saved.manifest.logical_size,
        sender.sent + len(saved.root), time.monotonic() - started, notes=notes,
    )


def bound_allocator() -> None:
    """Keep the upload's freed buffers reusable. glibc gives each thread that allocates its
    own arena and raises its mmap threshold to the largest block freed (up to 32 MiB), so
    every file block, frame, pack and upload part freed by the reader, the compressors or the
    senders stayed resident in that thread's arena: 94 MiB of free arena memory at the peak of
    uploading a 592 MB venv, a third of the process. Blocks of 4 MiB and more are now mapped
    and unmapped (about 0.3 s more of system time in page faults than one arena holding them
    all, for 5 to 10 MiB less, and bounded even where arenas were made before this call, when
    glibc no longer takes their limit); smaller ones share one arena, reused by any thread.
    Elsewhere than glibc, nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - a libc without mallopt
        return
    mallopt(_M_ARENA_MAX, ARENAS)
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def settle_formats(store: Store, request: UploadRequest) -> None:
    """After an upload of a tree kind is stored, leave the key in one format: with ``--force``
    the other format's object goes; otherwise (two jobs raced, one in each format, each seeing
    the key missing) the newer of the two stays, the manifest on a tie, so every reader
    restores the same tree whatever its ``tree_format``."""
    if request.cas is None or not request.kind.trees:
        return
    cas = request.tree_format == "cas"
    manifest = names.manifest_name(request.key)
    mine, other = (manifest, request.key) if cas else (request.key, manifest)
    there = store.head(other)
    if there is None:
        return
    if request.force:
        store.delete(other)
        return
    stored = store.head(mine)
    if stored is None or stored.modified is None or there.modified is None:
        return
    keep_mine = stored.modified > there.modified or (stored.modified == there.modified and cas)
    store.delete(other if keep_mine else mine)


@contextmanager
def tar_of(request: UploadRequest) -> Iterator[BinaryIO]:
    """The kind's tar stream of the request's targets, read from a pipe that ``pack`` writes
    on a thread. The thread's failure is raised here once the stream is read; a reader that
    stops early closes the pipe, which ends the writer."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with open(write_fd, "wb", buffering=1 << 20) as sink:
                request.kind.pack(request.targets, sink, request.options)
        except BrokenPipeError:
            pass  # the reader stopped first; its own error is the one raised
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            failure.append(exc)

    writer = threading.Thread(target=produce, name="cacher-cas-pack", daemon=True)
    started = False
    try:
        with open(read_fd, "rb", buffering=1 << 20) as reader:
            writer.start()
            started = True
            try:
                yield reader
            except BaseException:
                reader.close()  # the writer's next write fails: it ends
                writer.join()
                if failure:  # the producer's error is the cause (a FIFO, a vanished file)
                    raise failure[0] from None
                raise
    finally:
        if started:
            writer.join()
        else:
            os.close(write_fd)
    if failure:
        raise failure[0]


class _PackSender:
    """Packs go to spooled files and are stored on a small pool as they finish; `sent` counts
    the bytes stored (a pack already there is not sent again)."""

    def __init__(self, layout: CasLayout, renew: frozenset[str]) -> None:
        self.layout, self.renew = layout, renew
        self.sent = 0
        self.pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="cacher-cas-put")
        self.pending: list[Future[int]] = []

    def __enter__(self) -> _PackSender:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._wait(0)
        finally:
            for future in self.pending:
                future.cancel()
            self.pool.shutdown(wait=True)

    def open_sink(self) -> Writable:
        return tempfile.SpooledTemporaryFile(max_size=PACK_TARGET * 2)

    def done(self, sink: Writable, info: PackInfo) -> None:
        spool: BinaryIO = sink  # type: ignore[assignment]
        self._wait(IN_FLIGHT - 1)
        self.pending.append(self.pool.submit(self._put, spool, info))

    def _put(self, spool: BinaryIO, info: PackInfo) -> int:
        with spool:
            spool.seek(0)
            return self.layout.put_pack(info.pack_id, spool, info.size, self.renew)

    def _wait(self, room: int) -> None:
        """Wait until at most ``room`` packs are in flight; a failed one raises here."""
        while len(self.pending) > room:
            self.sent += self.pending.pop(0).result()

