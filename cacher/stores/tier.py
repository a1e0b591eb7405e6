"""A runner-local tier: local copies of a store's objects, trusted only when the store agrees.

`TieredStore` wraps any `Store`. A download still sends its one HEAD; when the tier holds a
copy of the same object (same ETag, or the same write id cacher recorded when it uploaded it,
or the same size and modification time where a store has neither) the bytes come from local
disk and no GET is sent. Otherwise the object streams from the store while a copy is written
beside it, published (an atomic rename) only when the read reached the object's end and the
restore above it verified what it read (the `open_read` block ended normally).

Every local copy carries the sha256 the tier computed when it wrote it and is checked against
it as it is read; a damaged copy is dropped and the read starts again from the store
(`ObjectChanged`, which the engine already answers with a fresh HEAD).

Shared by concurrent processes without a daemon:

- a copy is written to a temporary file (flock held from birth) and renamed into place;
- a reader holds a shared flock on the copy while it reads it; eviction takes an exclusive
  flock without waiting and passes over a copy it cannot lock, so a copy being read is never
  removed;
- publishing and eviction run under one tier-wide lock, so the tier stays under its bound
  (entries only: a copy being written counts once published).

Least recently used goes first: a copy's file modification time is the time it was last used.

Not fsspec's ``filecache::``/``simplecache::``: they are not safe across processes (fsspec
issue #1126), have no size bound, and would put fsspec back on the S3 read path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import struct
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from cacher.atomicfile import TEMP_MARK, remove_if_unheld, stale_temporaries
from cacher.errors import ConfigError, IntegrityError, ObjectChanged, ObjectRefused, StorageError
from cacher.keyrules import validate_key, validate_list_prefix
from cacher.stores.base import LEFTOVER_AGE, Leftover, ObjectInfo, Store

__all__ = [
    "DEFAULT_MAX", "Entry", "LocalTier", "TieredStore", "open_tiered", "parse_size", "tier_of", "tiered",
]

#: The metadata name under which an upload through the tier records its random write id.
WRITE_ID = "write-id"
#: The default bound of a tier (``local_tier_max``).
DEFAULT_MAX = "20GiB"
#: The last 8 bytes of every copy; the 8 before them are the length of the JSON trailer.
MAGIC = b"CTIER001"
_TAIL = struct.Struct(">Q")
_MAX_TRAILER = 1 << 20
_CHUNK = 1 << 20

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 10**3,
    "m": 1 << 20, "mib": 1 << 20, "mb": 10**6,
    "g": 1 << 30, "gib": 1 << 30, "gb": 10**9,
    "t": 1 << 40, "tib": 1 << 40, "tb": 10**12,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, *, setting: str = "local_tier_max") -> int:
    """``20GiB``, ``500MB``, ``1.5G``, ``1048576``: a number of bytes (K/M/G/T are binary)."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ConfigError(f"{setting} {text!r} is not a size (e.g. 20GiB, 500MB, 1048576)")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"{setting} {text!r} must be more than nothing")
    return value


# -- the tier on disk ---------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One local copy: what it is a copy of, and what the tier recorded when it wrote it."""

    path: Path
    location: str
    prefix: str
    key: str
    size: int
    sha256: str
    etag: str | None = None
    modified: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: False for a copy written offline: the store may never have seen it.
    shared: bool = True
    #: When the copy was last used (its file's modification time).
    used: float = 0.0

    def info(self) -> ObjectInfo:
        return ObjectInfo(self.key, self.size, self.modified, dict(self.metadata), self.etag)

    def matches(self, info: ObjectInfo) -> bool:
        """Whether this copy holds the object a HEAD just described."""
        if info.size != self.size:
            return False
        if info.etag and self.etag:
            return info.etag == self.etag
        wid = info.metadata.get(WRITE_ID)
        if wid and self.metadata.get(WRITE_ID):
            return wid == self.metadata[WRITE_ID]
        if not info.etag and not self.etag:
            return info.modified is not None and info.modified == self.modified
        return False

    def trailer(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "prefix": self.prefix,
            "key": self.key,
            "size": self.size,
            "sha256": self.sha256,
            "etag": self.etag,
            "modified": self.modified.timestamp() if self.modified else None,
            "metadata": self.metadata,
            "shared": self.shared,
        }


def _entry_of(path: Path, doc: dict[str, Any], used: float) -> Entry:
    modified = doc.get("modified")
    return Entry(
        path,
        str(doc["location"]),
        str(doc["prefix"]),
        str(doc["key"]),
        int(doc["size"]),
        str(doc["sha256"]),
        doc.get("etag"),
        datetime.fromtimestamp(modified, UTC) if isinstance(modified, (int, float)) else None,
        {str(k): str(v) for k, v in (doc.get("metadata") or {}).items()},
        bool(doc.get("shared", True)),
        used,
    )


def _read_trailer(fd: int, path: Path) -> Entry | None:
    """The entry a copy's trailer describes; None for a file that is not a whole copy."""
    try:
        st = os.fstat(fd)
        if st.st_size < len(MAGIC) + _TAIL.size:
            return None
        tail = os.pread(fd, _TAIL.size + len(MAGIC), st.st_size - _TAIL.size - len(MAGIC))
        if tail[_TAIL.size :] != MAGIC:
            return None
        (length,) = _TAIL.unpack(tail[: _TAIL.size])
        start = st.st_size - _TAIL.size - len(MAGIC) - length
        if length > _MAX_TRAILER or start < 0:
            return None
        doc = json.loads(os.pread(fd, length, start))
        entry = _entry_of(path, doc, st.st_mtime)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return entry if entry.size == start else None


class LocalTier:
    """The tier's directory: ``entries/<xx>/<id>`` (complete copies), ``tmp/`` (copies being
    written, each flocked by its writer), ``lock`` (taken to publish and to evict)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.entries = root / "entries"
        self.tmp = root / "tmp"

    @classmethod
    def open(cls, root: Path, max_bytes: int, *, create: bool = True) -> LocalTier:
        """The tier at ``root``, created (mode 0700) if it is missing; `ConfigError` when the
        directory is not as trusted as the job: writable by group or others, or owned by
        another user (root excepted)."""
        root = root.expanduser().absolute()
        try:
            if create:
                root.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(root)
        except FileNotFoundError:
            raise ConfigError(f"the local tier {root} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"cannot use the local tier {root}: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"the local tier {root} is not a directory")
        if st.st_mode & 0o022:
            raise ConfigError(
                f"refusing the local tier {root}: it is writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}), so another user could plant what this job restores",
                hint=f"chmod go-w {root}, or give each trust level its own tier",
            )
        if st.st_uid not in (os.getuid(), 0):
            raise ConfigError(
                f"refusing the local tier {root}: it belongs to another user (uid {st.st_uid})",
                hint="give each user and trust level its own tier",
            )
        tier = cls(root, max_bytes)
        if create:
            for sub in (tier.entries, tier.tmp):
                try:
                    sub.mkdir(mode=0o700, exist_ok=True)
                except OSError as exc:
                    raise ConfigError(f"cannot use the local tier {root}: {exc.strerror or exc}") from None
        return tier

    @staticmethod
    def entry_id(location: str, prefix: str, key: str) -> str:
        return hashlib.sha256("\0".join((location, prefix, key)).encode()).hexdigest()

    def entry_path(self, entry_id: str) -> Path:
        return self.entries / entry_id[:2] / entry_id

    # -- reading --------------------------------------------------------------------------

    @contextmanager
    def held(self, entry_id: str) -> Iterator[tuple[Entry, int] | None]:
        """The copy under ``entry_id`` with a shared flock held on it (no eviction while the
        block runs), and its open descriptor; None when there is no whole copy."""
        path = self.entry_path(entry_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            fd = -1  # no copy (the block runs outside this handler: its errors chain to nothing)
        if fd < 0:
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            # Evicted or replaced while we waited for the lock: this inode is no copy any more.
            entry = _read_trailer(fd, path) if os.fstat(fd).st_nlink > 0 else None
            yield (entry, fd) if entry is not None else None
        finally:
            os.close(fd)

    def peek(self, entry_id: str) -> Entry | None:
        with self.held(entry_id) as found:
            return found[0] if found else None

    def touch(self, entry: Entry) -> None:
        """Mark a copy used now (least recently used goes first)."""
        with contextlib.suppress(OSError):
            os.utime(entry.path)

    def drop(self, entry: Entry, fd: int | None = None) -> None:
        """Remove a damaged copy (the inode ``fd`` holds, if it is still the one in place)."""
        with contextlib.suppress(OSError):
            if fd is not None:
                held, now = os.fstat(fd), os.lstat(entry.path)
                if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
                    return
            os.unlink(entry.path)

    # -- writing --------------------------------------------------------------------------

    def filler(self) -> _Filler:
        return _Filler(self)

    def publish(self, temp: Path, entry_id: str, size: int) -> bool:
        """Rename a finished copy into place, after making room for it under the bound; False
        (and the copy removed) when it cannot fit."""
        dest = self.entry_path(entry_id)
        try:
            with self._locked():
                if not self._make_room(size, keep=dest):
                    os.unlink(temp)
                    return False
                dest.parent.mkdir(mode=0o700, exist_ok=True)
                os.replace(temp, dest)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return False
        return True

    # -- bound and housekeeping -----------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def scan(self) -> list[tuple[Path, os.stat_result]]:
        """Every published copy and its stat, least recently used first."""
        out = []
        try:
            shards = list(os.scandir(self.entries))
        except OSError:
            return []
        for shard in shards:
            if not shard.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                for item in os.scandir(shard.path):
                    if item.is_file(follow_symlinks=False):
                        with contextlib.suppress(OSError):
                            out.append((Path(item.path), item.stat(follow_symlinks=False)))
        return sorted(out, key=lambda p: (p[1].st_mtime, p[0].name))

    def describe(self) -> list[Entry]:
        """Every whole copy, read from its trailer, least recently used first."""
        out = []
        for path, _st in self.scan():
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    entry = _read_trailer(fd, path)
                finally:
                    os.close(fd)
                if entry is not None:
                    out.append(entry)
        return out

    def used_bytes(self) -> int:
        return sum(st.st_size for _p, st in self.scan())

    def _make_room(self, size: int, *, keep: Path | None = None) -> bool:
        """Evict least recently used copies nobody reads until ``size`` more bytes fit."""
        if size > self.max_bytes:
            return False
        for temp, _size in self.stale_temporaries():  # killed writers' copies: outside the bound
            self.remove_temporary(temp)
        copies = self.scan()
        total = sum(st.st_size for p, st in copies if p != keep)
        for path, st in copies:
            if total + size <= self.max_bytes:
                break
            if path != keep and _evict(path):
                total -= st.st_size
        return total + size <= self.max_bytes

    def evict(self, paths: Sequence[Path]) -> list[Path]:
        """Remove the given copies, passing over those being read; those removed."""
        with self._locked():
            return [p for p in paths if _evict(p)]

    def stale_temporaries(self) -> list[tuple[Path, int]]:
        return list(stale_temporaries(self.tmp))

    def remove_temporary(self, path: Path) -> bool:
        return remove_if_unheld(path)


def _evict(path: Path) -> bool:
    """Remove one copy unless a reader holds it (an exclusive flock, never waited for)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held, now = os.fstat(fd), os.lstat(path)
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            return False  # replaced since the scan: the new copy stays
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class _Filler:
    """A copy being written: hashed as it goes, published whole or removed."""

    def __init__(self, tier: LocalTier) -> None:
        self.tier = tier
        self.hash = hashlib.sha256()
        self.count = 0
        self.failed = False
        fd, name = tempfile.mkstemp(prefix=f".entry{TEMP_MARK}", dir=tier.tmp)
        self.path = Path(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours from birth: prune passes it over
            self.file = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.discard()
            raise

    def write(self, data: bytes | memoryview) -> None:
        """Write a block; a local disk that fails only stops the copy, never the transfer."""
        if self.failed or not data:
            return
        try:
            self.file.write(data)
        except OSError:
            self.failed = True
            return
        self.hash.update(data)
        self.count += len(data)

    def too_big(self) -> bool:
        return self.count > self.tier.max_bytes

    def publish(self, entry_id: str, entry: Entry) -> bool:
        """Append the trailer, rename into place (room made first); False when not kept."""
        if self.failed or self.too_big():
            self.discard()
            return False
        entry = Entry(
            entry.path, entry.location, entry.prefix, entry.key, self.count, self.hash.hexdigest(),
            entry.etag, entry.modified, entry.metadata, entry.shared,
        )
        trailer = json.dumps(entry.trailer(), sort_keys=True).encode()
        try:
            # No fsync: whatever a crash leaves fails the trailer or sha256 check, and is no copy.
            self.file.write(trailer + _TAIL.pack(len(trailer)) + MAGIC)
            self.file.flush()
            os.chmod(self.path, 0o600)
        except OSError:
            self.discard()
            return False
        size = self.count + len(trailer) + _TAIL.size + len(MAGIC)
        published = self.tier.publish(self.path, entry_id, size)
        self.file.close()  # after the rename: the flock stays ours until the copy is in place
        return published

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError, AttributeError):
            self.file.close()


# -- the store wrapper --------------------------------------------------------------------


class _CopyReader:
    """Reads a local copy's data, checking the recorded sha256 when it ends; a mismatch drops
    the copy and raises `ObjectChanged` (the engine reads the store instead) or, with no store
    to fall back on, `IntegrityError`."""

    def __init__(self, drop: Callable[[], None], entry: Entry, fd: int, *, fallback: bool) -> None:
        self.drop, self.entry, self.fd, self.fallback = drop, entry, fd, fallback
        self.pos = 0
        self.hash: Any = hashlib.sha256()
        self.checked = False

    def read(self, size: int = -1) -> bytes:
        left = self.entry.size - self.pos
        want = left if size is None or size < 0 else min(size, left)
        data = os.pread(self.fd, want, self.pos) if want > 0 else b""
        if want > 0 and not data:
            self._damaged("it is shorter than recorded")
        self.pos += len(data)
        self.hash.update(data)
        if not data and size != 0:
            self.check()
        return data

    def check(self) -> None:
        if self.checked:
            return
        self.checked = True
        if self.hash.hexdigest() != self.entry.sha256:
            self._damaged("its sha256 differs from the one recorded when it was written")

    def drain(self) -> None:
        """Read what the consumer left (a kind that stops before the end) and check it."""
        while self.read(_CHUNK):
            pass

    def _damaged(self, why: str) -> None:
        self.drop()
        message = f"the local copy of {self.entry.key} is damaged ({why}); dropped"
        if self.fallback:
            raise ObjectChanged(message + ", reading the store instead")
        raise IntegrityError(message)

    def readable(self) -> bool:
        return True


class _FillingReader:
    """Reads the store's object, writing what it reads into a local copy."""

    def __init__(self, inner: BinaryIO, filler: _Filler | None) -> None:
        self.inner, self.filler = inner, filler
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        if data:
            if self.filler is not None:
                self.filler.write(data)
                if self.filler.too_big():
                    self.filler.discard()
                    self.filler = None
        elif size != 0:
            self.ended = True
        return data

    def readable(self) -> bool:
        return True


class TieredStore(Store):
    """``inner`` with a runner-local tier in front of its reads (see the module's text)."""

    def __init__(
        self,
        inner: Store,
        tier: LocalTier,
        location: str,
        *,
        read_only: bool = False,
        offline: bool = False,
        soft_fail: bool = False,
    ) -> None:
        super().__init__(None, inner.bucket, inner.prefix, protocol=inner.protocol)
        self.inner, self.tier, self.location = inner, tier, location
        self.read_only, self.offline, self.soft_fail = read_only, offline, soft_fail
        self._down: str | None = None
        self._damaged_ids: set[str] = set()
        self._read_locally: set[str] = set()

    def with_prefix(self, prefix: str) -> Store:
        return TieredStore(
            self.inner.with_prefix(prefix), self.tier, self.location,
            read_only=self.read_only, offline=self.offline, soft_fail=self.soft_fail,
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
        if self.offline:
            entry = self.tier.peek(self._id(key))
            return entry.info() if entry else None
        try:
            return self.inner.head(key)
        except StorageError as exc:
            entry = self.tier.peek(self._id(key)) if self.soft_fail else None
            if entry is None:
                raise
            self._down = exc.message
            return entry.info()

    def exists(self, key: str) -> bool:
        if self.offline:
            return self.tier.peek(self._id(key)) is not None
        return self.inner.exists(key)

    def check_bucket(self) -> None:
        if not self.offline:
            self.inner.check_bucket()

    @contextmanager
    def open_read(self, key: str, info: ObjectInfo | None = None) -> Iterator[BinaryIO]:
        if info is None:
            info = self.head(key)
            if info is None:
                raise StorageError(f"cannot read {self.url(key)}: it does not exist")
        local_only = self.offline_reason is not None
        with self.tier.held(self._id(key)) as found:
            if found is not None and self._id(key) in self._damaged_ids:
                found = None
            if found is not None and (local_only or found[0].matches(info)):
                entry, fd = found
                copy_id = self._id(key)

                def drop() -> None:
                    # Passed over for the rest of this command; removed unless read-only.
                    self._damaged_ids.add(copy_id)
                    if not self.read_only:
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
                if not self.read_only:  # read-only jobs never write the tier, its times included
                    self.tier.touch(entry)
                self._read_locally.add(key)
                return
        if local_only:
            raise ObjectChanged(f"the local copy of {key} went away while it was read")
        self._read_locally.discard(key)
        with self.inner.open_read(key, info) as stored:
            filler = None if self.read_only else self._filler()
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
            return self.tier.filler()
        except OSError:
            return None  # a tier that cannot be written costs the copy, never the restore

    def _entry(self, key: str, info: ObjectInfo, *, shared: bool = True) -> Entry:
        return Entry(
            Path(), self.location, self.inner.prefix, key, info.size, "", info.etag, info.modified,
            dict(info.metadata), shared,
        )

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        if not self.offline:
            return self.inner.list(prefix)
        validate_list_prefix(prefix)
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

    @contextmanager
    def writer(self, key: str, metadata: dict[str, str] | None = None) -> Iterator[BinaryIO]:
        meta = {**(metadata or {}), WRITE_ID: uuid.uuid4().hex}
        filler = None if self.read_only else self._filler()
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
            # The store's ETag is not known here; the write id in its metadata names it.
            written = ObjectInfo(key, tee.filler.count, None, meta)
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


class _TeeWriter:
    """Writes to the store's writer (None offline) and into the local copy."""

    def __init__(self, inner: BinaryIO | None, filler: _Filler | None) -> None:
        self.inner, self.filler = inner, filler

    def write(self, data: bytes) -> int:
        if self.inner is not None:
            self.inner.write(data)
        if self.filler is not None:
            self.filler.write(data)
            if self.filler.too_big() and self.inner is not None:
                self.filler.discard()
                self.filler = None
        return len(data)

    def flush(self) -> None:
        if self.inner is not None:
            self.inner.flush()

    def writable(self) -> bool:
        return True


def tier_of(settings: Any) -> LocalTier:
    """The local tier the settings name (for ``stats --local``, ``prune --local``)."""
    root = settings.values.get("local_tier")
    if not root:
        raise ConfigError("no local tier is set (local_tier, --local-tier or CACHER_LOCAL_TIER)")
    max_bytes = parse_size(str(settings.values.get("local_tier_max") or DEFAULT_MAX))
    return LocalTier.open(Path(root), max_bytes, create=not settings.values.get("read_only"))


def location_of(backend: str, endpoint: str | None, bucket: str) -> str:
    """What names a store, for the tier's entry ids: backend, endpoint and bucket."""
    return "|".join((backend, (endpoint or "").rstrip("/").lower(), bucket))


def open_tiered(settings: Any, environ: Any, backend: str) -> Store:
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
    return tiered(store, settings, backend)


def tiered(store: Store, settings: Any, backend: str) -> Store:
    """``store`` behind the local tier the settings name; ``store`` itself when none is set."""
    root = settings.values.get("local_tier")
    offline = bool(settings.values.get("offline"))
    max_bytes = parse_size(str(settings.values.get("local_tier_max") or DEFAULT_MAX))
    if not root:
        if offline:
            raise ConfigError(
                "--offline needs a local tier (local_tier, --local-tier or CACHER_LOCAL_TIER)"
            )
        return store
    read_only = bool(settings.values.get("read_only"))
    if read_only and not offline and not Path(root).expanduser().exists():
        return store  # nothing to read, and a read-only job creates nothing
    tier = LocalTier.open(Path(root), max_bytes, create=not read_only)
    return TieredStore(
        store,
        tier,
        location_of(backend, settings.values.get("endpoint"), store.bucket),
        read_only=read_only,
        offline=offline,
        soft_fail=bool(settings.values.get("soft_fail")),
    )

