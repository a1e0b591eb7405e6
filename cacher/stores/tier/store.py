"""`TieredStore`: any store behind the local tier, and how the settings open it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from cacher.config.sizes import parse_size
from cacher.errors import ConfigError, IntegrityError, ObjectChanged, ObjectRefused, StorageError
from cacher.keying.keyrules import validate_key, validate_list_prefix
from cacher.stores import wording
from cacher.stores.base import LEFTOVER_AGE, Leftover, ObjectInfo, Store, written_etag
from cacher.stores.softfail import HARD, SoftFailure
from cacher.stores.tier.copying import _CopyReader, _Filler, _FillingReader, _TeeWriter
from cacher.stores.tier.disk import DEFAULT_MAX, WRITE_ID, Entry, LocalTier


class TieredStore(Store):
    """``inner`` with a runner-local tier in front of its reads (see the module's text)."""

    def __init__(
        self,
        inner: Store,
        tier: LocalTier,
        location: str,
        *,
        keeps_copies: bool = True,
        offline: bool = False,
        soft_failure: SoftFailure = HARD,
    ) -> None:
        """``keeps_copies`` False (a read-only job, decided by the gate): the tier is read and
        never written: no copy kept, dropped or touched. Under ``soft_failure``, a store that
        fails is marked down and the tier answers for it for the rest of the command."""
        super().__init__(None, inner.bucket, inner.prefix, protocol=inner.protocol)
        self.inner, self.tier, self.location = inner, tier, location
        self.keeps_copies, self.offline, self.soft_failure = keeps_copies, offline, soft_failure
        self._down: str | None = None
        self._damaged_ids: set[str] = set()
        self._read_locally: set[str] = set()

    def with_prefix(self, prefix: str) -> Store:
        return TieredStore(
            self.inner.with_prefix(prefix), self.tier, self.location,
            keeps_copies=self.keeps_copies, offline=self.offline, soft_failure=self.soft_failure,
        )

    @property
    def fs(self) -> Any:
        return self.inner.fs

    @property
    def offline_reason(self) -> str | None:
        if self.offline:
            return "offline"
        return self._down

    def path(self, key: str) -> str:
        return self.inner.path(key)

    def url(self, key: str = "") -> str:
        return self.inner.url(key)

    def _id(self, key: str) -> str:
        validate_key(key)
        return self.tier.entry_id(self.location, self.inner.prefix, key)

    # -- reading --------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        """The store's answer; offline, or once the store failed under soft failure (for the
        rest of the command: a dead store is not waited on again), the tier's copy or None."""
        if self.offline_reason is None:
            try:
                return self.inner.head(key)
            except StorageError as exc:
                self._down = self.soft_failure.absorb(exc)
        entry = self.tier.peek(self._id(key))
        return entry.info() if entry else None

    def exists(self, key: str) -> bool:
        if self.offline_reason is not None:
            return self.tier.peek(self._id(key)) is not None
        return self.inner.exists(key)

    def check_bucket(self) -> None:
        if self.offline_reason is None:
            self.inner.check_bucket()

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Part of the store's object. The tier keeps whole objects by key, not ranges: the
        content-addressed format keeps its contents by digest itself (`cacher.engine.cas_layout`)."""
        if self.offline_reason is not None:
            reason = self.offline_reason
            raise StorageError(f"cannot read {self.url(key)}: {reason}, and the local tier keeps no ranges")
        return self.inner.read_range(key, start, end)

    @contextmanager
    def open_read(self, key: str, info: ObjectInfo | None = None) -> Iterator[BinaryIO]:
        """The tier's copy when it is the store's object (offline: any copy not found damaged),
        else the store's object, copied into the tier as it is read."""
        if info is None:
            info = self.head(key)
            if info is None:
                raise wording.gone("read", self.url(key))
        local_only = self.offline_reason is not None
        with self.tier.held(self._id(key)) as found:
            if found is not None and self._id(key) not in self._damaged_ids:
                entry, fd = found
                if local_only or entry.matches(info):
                    with self._from_copy(key, entry, fd, local_only) as reader:
                        yield reader
                    return
        if local_only:
            raise ObjectChanged(f"the local copy of {key} went away while it was read")
        self._read_locally.discard(key)
        with self._from_store(key, info) as reading:
            yield reading

    @contextmanager
    def _from_copy(self, key: str, entry: Entry, fd: int, local_only: bool) -> Iterator[BinaryIO]:
        """Read the tier's copy of ``key`` (held by the caller); a copy whose bytes fail a
        check is dropped and, unless ``local_only``, the read fails as `ObjectChanged` so the
        engine reads the store's object instead."""
        copy_id = self._id(key)

        def drop() -> None:
            # Passed over for the rest of this command; removed unless read-only.
            self._damaged_ids.add(copy_id)
            if self.keeps_copies:
                self.tier.drop(entry, fd)

        reader = _CopyReader(drop, entry, fd, fallback=not local_only)
        try:
            yield reader  # type: ignore[misc]
            reader.drain()
        except (IntegrityError, ObjectRefused) as exc:
            # The copy's bytes failed a check above (a codec's, the archive's): only
            # verified bytes are ever published, so the copy is damaged. Drop it and let
            # the engine read the store's object instead (offline: fail as a store would).
            drop()
            if local_only:
                raise
            raise ObjectChanged(
                f"the local copy of {key} failed verification ({exc.message}); dropped"
            ) from None
        if self.keeps_copies:  # read-only jobs never write the tier, its times included
            self.tier.touch(entry)
        self._read_locally.add(key)

    @contextmanager
    def _from_store(self, key: str, info: ObjectInfo) -> Iterator[BinaryIO]:
        """Read the store's object, filling a copy that is published when the whole object
        was read (discarded otherwise, and never made for a read-only job)."""
        with self.inner.open_read(key, info) as stored:
            filler = self._filler() if self.keeps_copies else None
            reading = _FillingReader(stored, filler)
            try:
                yield reading  # type: ignore[misc]
            except BaseException:
                if reading.filler is not None:
                    reading.filler.discard()
                raise
        if reading.filler is not None:
            if reading.ended and reading.filler.count == info.size:
                reading.filler.publish(self._id(key), self._entry(key, info))
            else:
                reading.filler.discard()

    def read_locally(self, key: str) -> bool:
        return key in self._read_locally

    def _filler(self) -> _Filler | None:
        try:
            return _Filler(self.tier)
        except OSError:
            return None  # a tier that cannot be written costs the copy, never the restore

    def _entry(self, key: str, info: ObjectInfo, *, shared: bool = True) -> Entry:
        return Entry(
            Path(), self.location, self.inner.prefix, key, info.size, "", info.etag, info.modified,
            dict(info.metadata), shared,
        )

    def iter_list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The store's listing as it arrives; offline, or under soft failure with the store
        down, the tier's own copies of this store and prefix (so restore keys work on them)."""
        validate_list_prefix(prefix)
        return self._listed(prefix)

    def _listed(self, prefix: str) -> Iterator[ObjectInfo]:
        if self.offline_reason is None:
            handed = False
            try:
                for obj in self.inner.iter_list(prefix):
                    handed = True
                    yield obj
                return
            except StorageError as exc:
                self._down = self.soft_failure.absorb(exc)
            if handed:
                return  # the store failed midway: what it listed stands, with the store marked down
        yield from self._copies(prefix)

    def _copies(self, prefix: str) -> list[ObjectInfo]:
        mine = [
            e for e in self.tier.describe()
            if e.location == self.location and e.prefix == self.inner.prefix and e.key.startswith(prefix)
        ]
        # A copy an upload made has no store time: when it was last used stands in for it.
        return sorted(
            (ObjectInfo(e.key, e.size, e.modified or datetime.fromtimestamp(e.used, UTC)) for e in mine),
            key=lambda o: o.key,
        )

    # -- writing --------------------------------------------------------------------------

    def prepare_writer(self) -> None:
        if not self.offline:  # offline, the upload goes to the tier alone
            self.inner.prepare_writer()

    @contextmanager
    def writer(self, key: str, metadata: dict[str, str] | None = None) -> Iterator[BinaryIO]:
        meta = {**(metadata or {}), WRITE_ID: os.urandom(16).hex()}
        filler = self._filler() if self.keeps_copies else None
        if self.offline:
            if filler is None:
                raise StorageError(f"cannot write {key} to the local tier {self.tier.root} (offline)")
            copy = _TeeWriter(None, filler)
            try:
                yield copy  # type: ignore[misc]
            except BaseException:
                filler.discard()
                raise
            written = ObjectInfo(key, filler.count, datetime.now(UTC), meta)
            if not filler.publish(self._id(key), self._entry(key, written, shared=False)):
                raise StorageError(
                    f"cannot keep {key} in the local tier {self.tier.root} (offline): "
                    f"it does not fit in local_tier_max or the disk failed"
                )
            return
        try:
            with self.inner.writer(key, meta) as stored:
                tee = _TeeWriter(stored, filler)
                yield tee  # type: ignore[misc]
        except BaseException:
            if filler is not None:
                filler.discard()
            raise
        if tee.filler is not None:
            # The ETag the store answered names the object; a store without ETags (the file
            # store) is named by the write id in its metadata.
            written = ObjectInfo(key, tee.filler.count, None, meta, written_etag(stored))
            tee.filler.publish(self._id(key), self._entry(key, written))

    def delete(self, key: str) -> bool:
        if self.offline:
            raise StorageError(f"cannot delete {self.url(key)} offline: the store is not asked")
        deleted = self.inner.delete(key)
        self.forget(key)
        return deleted

    def forget(self, key: str) -> None:
        """Drop the local copy of ``key``, if any (passed over while it is being read)."""
        self.tier.evict([self.tier.entry_path(self._id(key))])

    def leftovers(self, prefix: str = "", *, older_than: timedelta = LEFTOVER_AGE) -> Sequence[Leftover]:
        return [] if self.offline else self.inner.leftovers(prefix, older_than=older_than)

    def remove_leftover(self, leftover: Leftover) -> bool:
        return self.inner.remove_leftover(leftover)


def tier_of(settings: Any, *, writable: bool) -> LocalTier:
    """The local tier the settings name (for ``stats --local``, ``prune --local``); not
    created when it may not be ``writable``."""
    root = settings.values.get("local_tier")
    if not root:
        raise ConfigError("no local tier is set (local_tier, --local-tier or CACHER_LOCAL_TIER)")
    max_bytes = parse_size(str(settings.values.get("local_tier_max") or DEFAULT_MAX))
    return LocalTier.open(Path(root), max_bytes, create=writable)


def location_of(backend: str, endpoint: str | None, bucket: str) -> str:
    """What names a store, for the tier's entry ids: backend, endpoint and bucket."""
    return "|".join((backend, (endpoint or "").rstrip("/").lower(), bucket))


def open_tiered(settings: Any, environ: Any, backend: str, *, writable: bool) -> Store:
    """`open_store` behind the local tier the settings name. Offline, a store that cannot even
    be built (no credentials on a runner that only restores from its tier) is not needed: a
    stand-in with its bucket and prefix names the tier's copies."""
    from cacher.stores import open_store

    try:
        store = open_store(settings, environ)
    except ConfigError:
        if not (settings.values.get("offline") and settings.values.get("local_tier") and settings.bucket):
            raise
        store = Store(None, settings.bucket, settings.prefix, protocol=backend)
    return tiered(store, settings, backend, writable=writable)


def tiered(store: Store, settings: Any, backend: str, *, writable: bool) -> Store:
    """``store`` behind the local tier the settings name; ``store`` itself when none is set.
    Not ``writable`` (the gate's word), the tier is read only and never created."""
    root = settings.values.get("local_tier")
    offline = bool(settings.values.get("offline"))
    max_bytes = parse_size(str(settings.values.get("local_tier_max") or DEFAULT_MAX))
    if not root:
        if offline:
            raise ConfigError(
                "--offline needs a local tier (local_tier, --local-tier or CACHER_LOCAL_TIER)"
            )
        return store
    if not writable and not offline and not Path(root).expanduser().exists():
        return store  # nothing to read, and a read-only job creates nothing
    tier = LocalTier.open(Path(root), max_bytes, create=writable)
    return TieredStore(
        store,
        tier,
        location_of(backend, settings.values.get("endpoint"), store.bucket),
        keeps_copies=writable,
        offline=offline,
        soft_failure=SoftFailure.for_settings(settings),
    )
