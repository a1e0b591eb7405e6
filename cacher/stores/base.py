"""A store: an fsspec filesystem, a bucket (or root directory) and a prefix.

Every write is all-or-nothing: S3 multipart uploads are committed only when the producer
finished (``autocommit=False``), the file backend renames a temporary sibling into place, and
any other filesystem receives a spooled copy in one ``put_file``. Foreign errors are
translated into `StorageError` at the seam, `Store._translate`, by the backend's table
(`cacher.stores.fsspec_errors`; S3's is `cacher.stores.s3.errors`).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from cacher.errors import StorageError
from cacher.fs.atomicfile import TEMP_MARK
from cacher.keying.keyrules import validate_key, validate_list_prefix
from cacher.stores.errortable import ErrorTable, Seam
from cacher.stores.fsspec_errors import FSSPEC_ERRORS

META_PREFIX = "cacher-"
READ_BLOCK = 16 << 20


#: An unfinished upload younger than this may belong to a job still running: never removed.
LEFTOVER_AGE = timedelta(days=1)


@dataclass(frozen=True)
class Leftover:
    """What a killed writer left behind: a file-store temporary, an S3 multipart upload."""

    key: str
    size: int
    started: datetime | None
    handle: str  # the temporary's path, or the multipart upload's id


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD tells about one object."""

    key: str
    size: int
    modified: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    etag: str | None = None


class UnavailableStore:
    """Marker base for a store that cannot be reached at all (see `unavailable_store`)."""


class Store:
    """Objects under ``<bucket>/<prefix>/`` of one fsspec filesystem."""

    #: False for a store behind the read-only gate (`cacher.stores.readonly`): writes are refused.
    writable = True
    #: False for a store that cannot be reached at all (`unavailable_store`).
    reachable = True

    def __init__(self, fs: Any, bucket: str, prefix: str = "", *, protocol: str = "") -> None:
        self._fs = fs
        self.bucket = bucket.rstrip("/") if bucket != "/" else bucket
        self.prefix = prefix.strip("/")
        self.protocol = protocol or _protocol_of(fs)

    def with_prefix(self, prefix: str) -> Store:
        """The same store (connections shared) under another prefix: a scope's view."""
        view = copy.copy(self)
        view.prefix = prefix.strip("/")
        return view

    @property
    def fs(self) -> Any:
        """The fsspec filesystem behind this store."""
        return self._fs

    def prepare_writer(self) -> None:
        """A hint that `writer` comes next: a store may start setting up what it needs
        meanwhile (S3 builds s3fs on a thread). Nothing by default."""

    @property
    def offline_reason(self) -> str | None:
        """Why this store answers from a runner-local copy alone, without the shared store
        (``offline``, or the store's error under soft failure); None when the store is asked."""
        return None

    def read_locally(self, key: str) -> bool:
        """Whether the last read of ``key`` came from a runner-local copy (a local tier)."""
        return False

    # -- naming ---------------------------------------------------------------------------

    def path(self, key: str) -> str:
        validate_key(key)
        return "/".join(p for p in (self.bucket, self.prefix, key) if p)

    def _key_of(self, path: str) -> str:
        base = "/".join(p for p in (self.bucket, self.prefix) if p)
        path = path.lstrip("/") if not base.startswith("/") else path
        return path[len(base) :].lstrip("/")

    def url(self, key: str = "") -> str:
        """Where a key lives, for messages (never carries credentials)."""
        where = "/".join(p for p in (self.bucket.lstrip("/"), self.prefix, key) if p)
        return f"{self.protocol}://{'/' if self.bucket.startswith('/') else ''}{where}"

    # -- reading --------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        """The object's info, or None when it does not exist."""
        path = self.path(key)
        with self._translate("look up", key):
            try:
                info = self.fs.info(path)
            except FileNotFoundError:
                return None
        if info.get("type") == "directory":
            return None
        return ObjectInfo(key, int(info.get("size") or 0), modified_of(info), self._metadata(path))

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def check_bucket(self) -> None:
        """Raise `StorageError` if the bucket itself is missing (so a miss is a real miss)."""

    @contextmanager
    def open_read(self, key: str, info: ObjectInfo | None = None) -> Iterator[BinaryIO]:
        """A stream of the object's bytes; ``info`` from `head` saves a second look-up."""
        with self._translate("read", key):
            f = self.fs.open(self.path(key), "rb", block_size=READ_BLOCK)
        try:
            yield TranslatingReader(f, self, key)  # type: ignore[misc]
        finally:
            with self._translate("read", key):
                f.close()

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of the object: a ranged read (the packs of the
        content-addressed format, `cacher.engine.cas_layout`). An answer of another length is a
        `StorageError`: the object is not what its reader was told it is."""
        with self._translate("read", key):
            data = bytes(self.fs.cat_file(self.path(key), start=start, end=end))
        if len(data) != end - start:
            raise StorageError(
                f"cannot read {self.url(key)}: bytes {start}-{end} asked for, {len(data)} answered"
            )
        return data

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix), sorted by key: all
        of `iter_list`, for a caller that needs them all at once."""
        return sorted(self.iter_list(prefix), key=lambda o: o.key)

    def iter_list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` as the backend hands them over: in key order
        (but on S3 stores that list folder by folder, as SeaweedFS does), S3 a page and the file
        store a directory at a time, so a caller that keeps what it needs (the newest few, a
        count) holds memory flat in the number of objects. The prefix is checked when this is
        called; the store's failures come then or while iterating (another fsspec filesystem
        lists whole, at the call)."""
        validate_list_prefix(prefix)
        directory, _, name = prefix.rpartition("/")
        base = "/".join(p for p in (self.bucket, self.prefix, directory) if p)
        with self._translate("list", prefix):
            try:
                found = self._find(base, name)
            except FileNotFoundError:
                found = {}
        return self._objects(found, prefix)

    def _objects(self, found: dict[str, Any], prefix: str) -> Iterator[ObjectInfo]:
        for path in sorted(found):
            info, key = found[path], self._key_of(path)
            if info.get("type") == "directory" or not key.startswith(prefix):
                continue
            if self.hides_temporaries and TEMP_MARK in key:
                continue
            yield ObjectInfo(key, int(info.get("size") or 0), modified_of(info))

    #: Whether keys holding `TEMP_MARK` are a writer's temporaries (the file store's), not objects.
    hides_temporaries = True

    def _find(self, base: str, name: str) -> dict[str, Any]:
        """Everything under ``base`` (a directory path); ``name`` is the rest of the list prefix,
        which a backend that can filter on the server may use."""
        found: dict[str, Any] = self.fs.find(base, detail=True)
        return found

    # -- writing --------------------------------------------------------------------------

    @contextmanager
    def writer(self, key: str, metadata: dict[str, str] | None = None) -> Iterator[BinaryIO]:
        """A stream that becomes the object under ``key`` only if the block succeeds."""
        path = self.path(key)
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            yield spool  # type: ignore[misc]
            spool.seek(0)
            with self._translate("write", key):
                self.fs.makedirs(path.rpartition("/")[0], exist_ok=True)
                with self.fs.open(path, "wb") as out:
                    shutil.copyfileobj(spool, out, 1 << 20)

    def delete(self, key: str) -> bool:
        """Remove the object; False when there was none."""
        path = self.path(key)
        if self.head(key) is None:
            return False
        with self._translate("delete", key):
            self.fs.rm_file(path)
        return True

    # -- leftovers of killed writers ------------------------------------------------------

    def leftovers(self, prefix: str = "", *, older_than: timedelta = LEFTOVER_AGE) -> Sequence[Leftover]:
        """Unfinished writes of keys under ``prefix`` whose writer is gone (none by default)."""
        return []

    def remove_leftover(self, leftover: Leftover) -> bool:
        """Remove one of `leftovers`; False when it was gone or is in use again."""
        return False

    # -- backend hooks --------------------------------------------------------------------

    def _metadata(self, path: str) -> dict[str, str]:
        return {}

    #: The backend's exception table, applied by `_translate`.
    error_table: ErrorTable = FSSPEC_ERRORS

    def _translate(self, action: str, key: str) -> AbstractContextManager[None]:
        """The seam: a call into the filesystem inside this raises only what the backend's
        table (`error_table`) makes of its exceptions (FileNotFoundError passes)."""
        return self.error_table.applied(lambda: Seam(action, self.url(key), self.bucket))


def bare_etag(value: str) -> str:
    """An ETag without a weak marker or quotes (proxies may add the first, drop the second)."""
    value = value.strip()
    return (value[2:] if value.startswith("W/") else value).strip('"')


def written_etag(stream: Any) -> str | None:
    """The ETag the store answered for the object a `Store.writer` stream made, once its block
    ended; None where the store gives none (the file store)."""
    etag = getattr(stream, "etag", None)
    return etag if isinstance(etag, str) and etag else None


class TranslatingWriter:
    """Writes to a store upload, translating backend errors into `StorageError`."""

    #: Set by the store when the upload completed: the ETag it answered (see `written_etag`).
    etag: str | None = None

    def __init__(self, inner: Any, store: Store, key: str) -> None:
        self.inner, self.store, self.key = inner, store, key

    def write(self, data: bytes) -> int:
        with self.store._translate("write", self.key):
            return int(self.inner.write(data))

    def flush(self) -> None:
        """Parts are sent as they fill."""


class TranslatingReader:
    """Reads from a store file, translating mid-stream backend errors into `StorageError`."""

    def __init__(self, inner: Any, store: Store, key: str) -> None:
        self.inner, self.store, self.key = inner, store, key

    def read(self, size: int = -1) -> bytes:
        with self.store._translate("read", self.key):
            data: bytes = self.inner.read(size)
        return data

    def readable(self) -> bool:
        return True


def _protocol_of(fs: Any) -> str:
    proto = getattr(fs, "protocol", "file")
    return str(proto[0] if isinstance(proto, (tuple, list)) else proto)


def modified_of(info: dict[str, Any]) -> datetime | None:
    value = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return None


@contextmanager
def ignore_errors() -> Iterator[None]:
    try:
        yield
    except Exception:  # noqa: BLE001 - cleanup after a failure must not mask it
        pass


def unavailable_store(bucket: str, prefix: str, protocol: str, reason: str) -> Store:
    """A store whose every request fails with ``reason`` (`StorageError`), for a job that has no
    credentials but needs none to run: read-only or soft-failing jobs miss with a warning."""

    class _Unavailable(UnavailableStore, Store):
        reachable = False

        def _fail(self, *args: Any, **kwargs: Any) -> Any:
            raise StorageError(reason)

        head = exists = check_bucket = list = iter_list = delete = open_read = writer = read_range = _fail
        leftovers = remove_leftover = _fail

    return _Unavailable(None, bucket, prefix, protocol=protocol)
