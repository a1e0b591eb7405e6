"""The tier on disk: entries with their trailer and sha256, locks, least-recently-used eviction."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cacher.errors import ConfigError
from cacher.fs import locks
from cacher.fs.atomicfile import remove_if_unheld, stale_temporaries
from cacher.stores.base import ObjectInfo, bare_etag

#: The metadata name under which an upload through the tier records its random write id.
WRITE_ID = "write-id"
#: The default bound of a tier (``local_tier_max``).
DEFAULT_MAX = "20GiB"
#: The last 8 bytes of every copy; the 8 before them are the length of the JSON trailer.
MAGIC = b"CTIER001"
_TAIL = struct.Struct(">Q")
_MAX_TRAILER = 1 << 20
_CHUNK = 1 << 20

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
        """Whether this copy holds the object a HEAD just described. A store that gives ETags
        is believed on its ETag alone: a write id is metadata, which a copy of another object
        can carry, so it names the object only on stores without ETags (the file store)."""
        if info.size != self.size:
            return False
        if info.etag:
            return self.etag is not None and bare_etag(info.etag) == bare_etag(self.etag)
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
        from cacher.fs.staging import keep_out

        keep_out(root, "the local tier")
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
            with locks.hold(fd, path, f"a copy in the local tier {self.root}", shared=True):
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
        path = self.root / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            with locks.hold(fd, path, f"the local tier {self.root}"):
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
