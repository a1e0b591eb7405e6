"""The blobs a content-addressed restore needs, each checked against its digest.

A restore first looks in a local blob directory (``<dir>/<2 hex>/<64 hex>``, one verified blob
per file): the local tier's ``cas-blobs/`` when the job keeps copies there, else a scratch
directory removed after the restore; then (``dir``) in the destination's previous tree. What
is missing is fetched by coalesced ranged reads of the packs (`cacher.cas.plan.to_fetch`) and
checked (`cacher.cas.packread`); memory holds one read, one frame and at most `FRESH` bytes of
fetched blobs waiting to be written, the rest spilled to the directory, never the tree. A
blob read back is checked again: a damaged or truncated file there is dropped and fetched. The tier's
directory is shared by digest across scopes, which is safe because every blob is checked
against the digest of a manifest the job itself chose; a read-only job reads it, never writes it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cacher.cas.model import BlobLocation, Manifest
from cacher.cas.packread import frame_blobs, read_blobs
from cacher.cas.plan import Read, to_fetch
from cacher.engine.cas_blobdir import BlobDir, UntrustedBlobDir
from cacher.engine.cas_layout import CasLayout
from cacher.errors import ArtifactError
from cacher.stores.base import Store

#: The local tier's subdirectory of blobs by digest.
TIER_BLOBS = "cas-blobs"
#: The most bytes of fetched blobs held in memory, waiting for `Blobs.get`.
FRESH = 64 << 20
#: The longest ranged read a restore makes (compressed bytes): what one read decompresses to
#: (three to five times as much for code) must fit in `FRESH`, or its blobs go to disk and are
#: read back (measured: a cold restore of a 592 MB venv spilled 36k of its 42k blobs at 32 MiB
#: reads into 32 MiB of room).
READ = 8 << 20


@dataclass
class FetchCounts:
    """What a restore took from where: blobs already on disk, blobs and bytes fetched."""

    local: int = 0
    fetched: int = 0
    fetched_bytes: int = 0


@dataclass
class Blobs:
    """Every blob of one manifest, checked: `plan` finds those on disk (``spill``, or
    ``shared``, read only) or in the destination's previous tree; the rest are fetched, in the
    planned reads' order, as `get` first asks for one (`pull`), or all at once (`gather`).
    A fetched blob is handed over from memory while at most `FRESH` bytes wait there (no read
    back, no second hash), else from ``spill``; a directory that outlives the restore (the
    tier's) gets every fetched blob."""

    manifest: Manifest
    layout: CasLayout
    spill: BlobDir
    shared: BlobDir | None = None
    counts: FetchCounts = field(default_factory=FetchCounts)

    def __post_init__(self) -> None:
        self.sizes = self.manifest.digests()
        self.places = self.manifest.locations()
        self._reads: deque[Read] = deque()
        self._pending: set[str] = set()
        self._fresh: dict[str, bytes] = {}
        self._fresh_bytes = 0
        #: How often the tree still names each blob: one named again is kept on disk.
        self._uses = Counter(chunk.digest for entry in self.manifest.entries for chunk in entry.chunks)

    def _dirs(self) -> list[BlobDir]:
        return [d for d in (self.spill, self.shared) if d is not None]

    def plan(self, previous: Path | None = None) -> None:
        """Find the blobs on disk and, given ``previous`` (the destination before the restore),
        those its files still hold at the same path; plan the reads that bring the rest."""
        have = {d for d, size in self.sizes.items() if any(b.has(d, size) for b in self._dirs())}
        if previous is not None and os.path.isdir(previous):  # a first restore has none
            have |= self._from_previous(previous, have)
        self.counts.local += len(have)
        # In the order the tree first needs them (packs are listed by id, not as written): a
        # read made long before its blobs are asked for would hold them in memory or on disk.
        first = {digest: i for i, digest in enumerate(self.sizes)}
        reads = to_fetch(self.manifest, have, max_read=READ)
        self._reads = deque(sorted(reads, key=lambda read: min(first[b.digest] for b in read.blobs)))
        self._pending = {blob.digest for read in self._reads for blob in read.blobs}

    def gather(self, previous: Path | None = None) -> None:
        """`plan`, then fetch every blob now, into ``spill``: nothing is handed out before
        every blob is checked."""
        self.plan(previous)
        while self._reads:
            self._pull(hold=False)

    def _pull(self, *, hold: bool = True) -> None:
        """Make the next planned read and keep its blobs, checked."""
        read = self._reads.popleft()
        data = self.layout.read(read.ref, read.start, read.end)
        self.counts.fetched_bytes += len(data)
        for digest, blob in read_blobs(_window(data, read.start), read.blobs):
            held = hold and (not self._fresh or self._fresh_bytes + len(blob) <= FRESH)
            if held:
                self._fresh[digest] = blob
                self._fresh_bytes += len(blob)
            if not held or self.spill.keeps:
                self._keep(digest, blob)
            self.counts.fetched += 1
            self._pending.discard(digest)

    def _keep(self, digest: str, blob: bytes) -> None:
        """Put a checked blob in the spill. The tier's (``keeps``) is a cache: one that cannot
        keep it (full, a file size limit) costs a fetch later, never the restore (`get` fetches
        a blob it finds nowhere)."""
        try:
            self.spill.put(digest, blob)
        except UntrustedBlobDir:
            raise  # a planted link or another's directory: refused, never worked around
        except ArtifactError:
            if not self.spill.keeps:
                raise

    def _from_previous(self, root: Path, have: set[str]) -> set[str]:
        """The blobs still in the files of ``root`` that have a file entry's path and size,
        read piece by piece as the entry's chunks cut them and kept only when the digest
        matches (anything else there is ignored: a link, a FIFO, a file changed since)."""
        found: set[str] = set()
        prefix = os.path.join(root, "")

        def known(digest: str) -> bool:
            return digest in have or digest in found

        for entry in self.manifest.entries:
            if entry.type != "file" or not entry.size or all(known(c.digest) for c in entry.chunks):
                continue
            try:
                fd = os.open(prefix + entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
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
                            self._keep(chunk.digest, data)
                            found.add(chunk.digest)
                except OSError:
                    continue
        return found

    def get(self, digest: str) -> bytes:
        """The blob ``digest``, checked: fetched now if it is still to come (with the reads
        planned before it), from memory if it waits there, else from a directory, else (a
        file damaged since it was found) fetched again, alone."""
        if self._pending:
            while digest in self._pending and self._reads:
                self._pull()
        self._uses[digest] -= 1
        if self._fresh:
            fresh = self._fresh.pop(digest, None)
            if fresh is not None:
                self._fresh_bytes -= len(fresh)
                if self._uses[digest] > 0 and not self.spill.keeps:
                    self.spill.put(digest, fresh)  # named again later in the tree
                return fresh
        size = self.sizes[digest]
        data = self.spill.get(digest, size)
        if data is None and self.shared is not None:
            data = self.shared.get(digest, size)
        if data is not None:
            return data
        ref, loc = self.places[digest]
        return self._fetch_one(ref, loc)

    def _fetch_one(self, ref: str, loc: BlobLocation) -> bytes:
        frame = self.layout.read(ref, loc.frame_offset, loc.frame_end)
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
    tier (trimmed to the tier's bound after a restore that added blobs or found more than the
    bound there); else a scratch directory, removed
    after the block, with the tier's directory, if any, read only."""
    tier = local_tier_of(store)
    if tier is not None and tier[2]:
        root, max_bytes, _ = tier
        directory = BlobDir(root / TIER_BLOBS, keeps=True)
        try:
            (root / TIER_BLOBS).mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot use {root / TIER_BLOBS}: {exc.strerror or exc}") from None
        try:
            yield directory, None
        finally:
            if directory.grew or directory.found > max_bytes:  # else no bigger than the last trim left it
                directory.trim(max_bytes)
        return
    from cacher.fs.scratch import scratch_directory

    shared = BlobDir(tier[0] / TIER_BLOBS, writable=False) if tier is not None else None
    with scratch_directory() as scratch:
        yield BlobDir(scratch), shared
