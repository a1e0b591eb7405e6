"""The blobs a content-addressed restore needs, each checked against its digest, on disk.

A restore first looks in a local blob directory (``<dir>/<2 hex>/<64 hex>``, one verified blob
per file): the local tier's ``cas-blobs/`` when the job keeps copies there, else a scratch
directory removed after the restore. What is missing is fetched by coalesced ranged reads of
the packs (`cacher.cas.plan.to_fetch`), checked (`cacher.cas.packread`) and spilled to the
directory, so memory holds one read and one frame at a time, never the tree. A blob read back
is checked again: a damaged or truncated file there is dropped and fetched. The tier's
directory is shared by digest across scopes, which is safe because every blob is checked
against the digest of a manifest the job itself chose; a read-only job reads it, never writes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cacher.cas.model import BlobLocation, Manifest
from cacher.cas.packread import frame_blobs, read_blobs
from cacher.cas.plan import to_fetch
from cacher.engine.cas_layout import CasLayout
from cacher.errors import ArtifactError
from cacher.stores.base import Store

#: The local tier's subdirectory of blobs by digest.
TIER_BLOBS = "cas-blobs"
#: A temporary blob file nobody finished for this long was left by a killed restore.
STALE_TEMP = 3600.0


class BlobDir:
    """A directory of checked blobs by digest; ``writable`` False: read only (a read-only job's
    view of the tier: nothing written, dropped or touched)."""

    def __init__(self, root: Path, *, writable: bool = True) -> None:
        self.root, self.writable = root, writable

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def has(self, digest: str, size: int) -> bool:
        """Whether a file of the right size is there (its bytes are checked when read)."""
        try:
            st = os.lstat(self.path(digest))
        except OSError:
            return False
        return st.st_size == size and os.path.isfile(self.path(digest))

    def get(self, digest: str, size: int) -> bytes | None:
        """The blob, checked against its digest; None (and a bad file dropped) otherwise."""
        path = self.path(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                data = f.read(size + 1)
        except OSError:
            return None
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            if self.writable:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return None
        if self.writable:  # least recently used goes first when the directory is trimmed
            with contextlib.suppress(OSError):
                os.utime(path)
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Keep a checked blob: written beside its place (mode 0600) and renamed into it."""
        shard = self.root / digest[:2]
        try:
            shard.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=shard)
        except OSError as exc:
            raise ArtifactError(f"cannot keep a blob in {self.root}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temp, self.path(digest))
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if isinstance(exc, OSError):
                raise ArtifactError(f"cannot keep a blob in {self.root}: {exc.strerror or exc}") from None
            raise

    def trim(self, max_bytes: int) -> int:
        """Remove least recently used blobs until the directory holds at most ``max_bytes``
        (and temporaries of killed restores); the bytes removed."""
        files: list[tuple[float, int, str]] = []
        now, removed = time.time(), 0
        with contextlib.suppress(OSError):
            for shard in os.scandir(self.root):
                if not shard.is_dir(follow_symlinks=False):
                    continue
                with contextlib.suppress(OSError):
                    for item in os.scandir(shard.path):
                        st = item.stat(follow_symlinks=False)
                        if item.name.startswith(".tmp-"):
                            if now - st.st_mtime > STALE_TEMP:
                                with contextlib.suppress(OSError):
                                    os.unlink(item.path)
                            continue
                        files.append((st.st_mtime, st.st_size, item.path))
        total = sum(size for _, size, _ in files)
        for _mtime, size, path in sorted(files):
            if total <= max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
                total -= size
                removed += size
        return removed


@dataclass
class FetchCounts:
    """What a restore took from where: blobs already on disk, blobs and bytes fetched."""

    local: int = 0
    fetched: int = 0
    fetched_bytes: int = 0


@dataclass
class Blobs:
    """Every blob of one manifest, on disk in ``spill`` (or ``shared``, read only), fetched
    through ``layout`` when missing; `get` hands out checked bytes."""

    manifest: Manifest
    layout: CasLayout
    spill: BlobDir
    shared: BlobDir | None = None
    counts: FetchCounts = field(default_factory=FetchCounts)

    def __post_init__(self) -> None:
        self.sizes = self.manifest.digests()
        self.places = self.manifest.locations()
        #: While `gather` runs in a thread (`gathering`): the blobs it has yet to bring, whether
        #: it knows them yet, whether it ended, how it failed, whether it is to stop.
        self._ready = threading.Condition()
        self._pending: set[str] = set()
        self._planned = self._ended = self._stop = False
        self._failed: BaseException | None = None

    @contextmanager
    def gathering(self, previous: Path | None = None) -> Iterator[None]:
        """Run `gather` in a thread while the block runs: `get` waits for each blob still to
        come, so fetching overlaps the restore's writing. The thread is stopped and joined
        when the block ends; a failed fetch fails the `get` that waits for it."""
        thread = threading.Thread(target=self._gather_in_thread, args=(previous,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            with self._ready:
                self._stop = True
            thread.join()

    def _gather_in_thread(self, previous: Path | None) -> None:
        try:
            self.gather(previous)
        except BaseException as exc:  # noqa: BLE001 - raised by the get that waits for it
            with self._ready:
                self._failed = exc
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify_all()

    def _wait_for(self, digest: str) -> None:
        """Until ``digest`` is on disk, or `gather` will not bring it (not its to bring, or
        ended); `gather`'s error when it failed before bringing it."""
        with self._ready:
            self._ready.wait_for(lambda: self._ended or (self._planned and digest not in self._pending))
            if digest in self._pending and self._failed is not None:
                raise self._failed

    def _dirs(self) -> list[BlobDir]:
        return [d for d in (self.spill, self.shared) if d is not None]

    def gather(self, previous: Path | None = None) -> None:
        """Fetch every blob no directory holds, checked, into ``spill``; first, those the tree
        in ``previous`` (the destination before the restore) still holds, at the same path."""
        have = {d for d, size in self.sizes.items() if any(b.has(d, size) for b in self._dirs())}
        if previous is not None:
            have |= self._from_previous(previous, have)
        self.counts.local += len(have)
        reads = to_fetch(self.manifest, have)
        with self._ready:
            self._pending = {blob.digest for read in reads for blob in read.blobs}
            self._planned = True
            self._ready.notify_all()
        for read in reads:
            if self._stop:
                return
            data = self.layout.read(read.ref, read.start, read.end)
            with self._ready:
                self.counts.fetched_bytes += len(data)
            for digest, blob in read_blobs(_window(data, read.start), read.blobs):
                self.spill.put(digest, blob)
                with self._ready:
                    self.counts.fetched += 1
                    self._pending.discard(digest)
                    self._ready.notify_all()
            del data

    def _from_previous(self, root: Path, have: set[str]) -> set[str]:
        """The blobs still in the files of ``root`` that have a file entry's path and size,
        read piece by piece as the entry's chunks cut them and kept only when the digest
        matches (anything else there is ignored: a link, a FIFO, a file changed since)."""
        found: set[str] = set()

        def known(digest: str) -> bool:
            return digest in have or digest in found

        for entry in self.manifest.entries:
            if entry.type != "file" or not entry.size or all(known(c.digest) for c in entry.chunks):
                continue
            try:
                fd = os.open(root / entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as f:
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
                        continue
                    for chunk in entry.chunks:
                        data = f.read(chunk.size)
                        if known(chunk.digest) or len(data) != chunk.size:
                            continue
                        if hashlib.sha256(data).hexdigest() == chunk.digest:
                            self.spill.put(chunk.digest, data)
                            found.add(chunk.digest)
                except OSError:
                    continue
        return found

    def get(self, digest: str) -> bytes:
        """The blob ``digest``, checked: from a directory, else (a file damaged since it was
        found) fetched again, alone."""
        self._wait_for(digest)
        size = self.sizes[digest]
        for directory in self._dirs():
            data = directory.get(digest, size)
            if data is not None:
                return data
        ref, loc = self.places[digest]
        return self._fetch_one(ref, loc)

    def _fetch_one(self, ref: str, loc: BlobLocation) -> bytes:
        frame = self.layout.read(ref, loc.frame_offset, loc.frame_end)
        with self._ready:
            self.counts.fetched_bytes += len(frame)
            self.counts.fetched += 1
        for digest, data in frame_blobs(frame, [loc]):
            self.spill.put(digest, data)
            return data
        raise AssertionError("unreachable")  # pragma: no cover


def _window(data: bytes, base: int) -> Callable[[int, int], bytes]:
    """A ranged reader over the bytes one coalesced read fetched (``data``, from ``base``)."""
    return lambda start, end: data[start - base : end - base]


def local_tier_of(store: Store) -> tuple[Path, int, bool] | None:
    """The local tier in front of ``store`` (its root, its size bound, and whether this job may
    write it), found through the wrappers (read-only gate, tier); None without a tier."""
    from cacher.stores.tier.store import TieredStore

    writable = store.writable
    current: object = store
    while current is not None:
        if isinstance(current, TieredStore):
            return current.tier.root, current.tier.max_bytes, writable and current.keeps_copies
        current = getattr(current, "inner", None)
    return None


@contextmanager
def blob_dirs(store: Store) -> Iterator[tuple[BlobDir, BlobDir | None]]:
    """Where a restore through ``store`` keeps blobs: (the directory it writes, the tier's
    directory it may only read, or None). The tier's ``cas-blobs/`` when the job may write the
    tier (trimmed to the tier's bound after the restore); else a scratch directory, removed
    after the block, with the tier's directory, if any, read only."""
    tier = local_tier_of(store)
    if tier is not None and tier[2]:
        root, max_bytes, _ = tier
        directory = BlobDir(root / TIER_BLOBS)
        try:
            (root / TIER_BLOBS).mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot use {root / TIER_BLOBS}: {exc.strerror or exc}") from None
        try:
            yield directory, None
        finally:
            directory.trim(max_bytes)
        return
    from cacher.fs.scratch import scratch_directory

    shared = BlobDir(tier[0] / TIER_BLOBS, writable=False) if tier is not None else None
    with scratch_directory() as scratch:
        yield BlobDir(scratch), shared
