"""The S3 store: HEADs and ranged GETs signed by hand, s3fs built only for uploads, lists, deletes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

from cacher.errors import CacherError
from cacher.keying.keyrules import validate_list_prefix
from cacher.stores import wording
from cacher.stores.base import (
    LEFTOVER_AGE,
    META_PREFIX,
    Leftover,
    ObjectInfo,
    Store,
    TranslatingReader,
    TranslatingWriter,
    ignore_errors,
)
from cacher.stores.errortable import Seam
from cacher.stores.s3 import errors
from cacher.stores.s3.failures import REMEMBER, FailureMemory
from cacher.stores.s3.rest import Head, S3Http

if TYPE_CHECKING:  # imported where used, as the ranged reader is: a HEAD needs neither (logging, http.client)
    import concurrent.futures

    from cacher.stores.s3.ranges import PackRanges


@dataclass(frozen=True)
class Transfer:
    """How bodies move: the part (and range) size, how many are in flight at once, and whether
    parts grow past `multipart.PARTS_PER_STEP` (R2's ``fixed_upload_size`` wants equal ones)."""

    part_size: int
    inflight: int = 3
    grow_parts: bool = True


class S3Store(Store):
    """S3 and its kin: streamed multipart uploads committed only on success."""

    error_table = errors.S3_ERRORS

    def __init__(
        self,
        fs_factory: Callable[[], Any],
        bucket: str,
        prefix: str = "",
        *,
        head_client: S3Http,
        transfer: Transfer,
        failures: FailureMemory | None = None,
    ) -> None:
        super().__init__(None, bucket, prefix, protocol="s3")
        self.failures = failures
        self._factory = fs_factory
        self._head = head_client
        self.block_size = transfer.part_size
        self.inflight = transfer.inflight
        self.grow_parts = transfer.grow_parts
        self._fs_building: concurrent.futures.Future[Any] | None = None
        self._ranges: PackRanges | None = None
        proxy = head_client.transport.proxy
        self._proxy = f"{proxy.host}:{proxy.port}" if proxy else None  # for messages: no credentials

    @property
    def fs(self) -> Any:
        """s3fs, built on first use: a HEAD alone never imports it."""
        if self._fs is None:
            building, self._fs_building = self._fs_building, None
            # The thread's error, if any, is raised here, where a direct build would raise it.
            self._fs = building.result() if building is not None else self._factory()
        return self._fs

    def prepare_writer(self) -> None:
        """Build s3fs on a thread of its own: importing s3fs and aiobotocore and setting up the
        client takes about 0.3 s, which then overlaps the file's digest and the packing of the
        first part instead of coming before them."""
        if self._fs is None and self._fs_building is None:
            # The writer's own imports (asyncio) come first, here: the thread then imports only
            # what the main thread does not, so the two never wait on each other's imports.
            from cacher.stores.s3 import multipart  # noqa: F401

            self._fs_building = _in_thread(self._factory)

    def _answer(self, action: str, key: str, bucket: str, path: str = "") -> Head:
        with self._translate(action, key):  # inside: a 5xx after retries is remembered too
            answer = self._head.head(bucket, path)
            if answer.status not in (200, 404):
                raise errors.for_status(self._seam(action, self.url(key)), answer.status)
        return answer

    def _seam(self, action: str, where: str) -> Seam:
        return Seam(action, where, self.bucket, self._head.region, self._proxy)

    def _translate(self, action: str, key: str) -> AbstractContextManager[None]:
        """Every S3 failure through the one table (`cacher.stores.s3.errors`); with
        ``--soft-fail`` in a CI job, a store found down is remembered, and not waited on again."""
        if self.failures is not None and (why := self.failures.recent()):
            raise wording.remembered(action, self.url(key), why, REMEMBER)
        return self.error_table.applied(lambda: self._seam(action, self.url(key)), seen=self._remember)

    def _remember(self, error: CacherError) -> None:
        """A store found down is not waited on again by this CI job (``--soft-fail``)."""
        if self.failures is not None and getattr(error, "store_down", False):
            self.failures.record(error.message)

    def head(self, key: str) -> ObjectInfo | None:
        bucket, _, path = self.path(key).partition("/")
        answer = self._answer("look up", key, bucket, path)
        if answer.status == 404:
            return None
        meta = {
            k[len(META_PREFIX) :]: v for k, v in (answer.metadata or {}).items() if k.startswith(META_PREFIX)
        }
        return ObjectInfo(key, answer.size, answer.modified, meta, answer.etag)

    def check_bucket(self) -> None:
        if self._answer("reach the bucket of", "", self.bucket).status == 404:
            raise wording.missing_bucket(self.bucket)

    #: S3 keys holding ``.cacher-tmp-`` are objects like any other (S3 writes have no temporaries).
    hides_temporaries = False

    def iter_list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """`Store.iter_list` in the store's order (key order on AWS, moto, Garage; SeaweedFS
        lists folder by folder), filtered by the store itself (``prefix=``): hand-signed
        ListObjectsV2 pages (`cacher.stores.s3.listing`), each handed on as it is parsed, without
        s3fs. A missing bucket is an error, never an empty listing: an empty one (or a 404)
        costs one HEAD of the bucket."""
        validate_list_prefix(prefix)
        return self._listed(prefix)

    def _listed(self, prefix: str) -> Iterator[ObjectInfo]:
        from cacher.stores.s3.listing import list_objects

        wanted = "/".join(p for p in (self.prefix, prefix) if p) + ("/" if self.prefix and not prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        empty = True
        with self._translate("list", prefix):
            try:
                for obj in list_objects(self._head, self.bucket, wanted, strip=strip):
                    empty = False
                    yield obj
            except FileNotFoundError:  # HTTP 404: the bucket, asked below
                empty = True
        if empty:
            self.check_bucket()

    @contextmanager
    def writer(self, key: str, metadata: dict[str, str] | None = None) -> Iterator[BinaryIO]:
        self.prepare_writer()
        bucket, _, name = self.path(key).partition("/")
        from cacher.stores.s3.multipart import ParallelUpload  # asyncio: not on the read path

        meta = {f"{META_PREFIX}{k}": v for k, v in (metadata or {}).items()}
        upload = ParallelUpload(
            lambda: self.fs,  # waited for when the first part is full
            bucket,
            name,
            part_size=self.block_size,
            inflight=self.inflight,
            metadata=meta,
            grow=self.grow_parts,
        )
        stream = TranslatingWriter(upload, self, key)
        try:
            yield stream  # type: ignore[misc]
            with self._translate("write", key):
                upload.commit()
            stream.etag = upload.etag
        except BaseException:
            with ignore_errors():
                upload.abort()
            raise

    @contextmanager
    def open_read(self, key: str, info: ObjectInfo | None = None) -> Iterator[BinaryIO]:
        info = info or self.head(key)
        if info is None:
            raise wording.gone("read", self.url(key))
        bucket, _, name = self.path(key).partition("/")
        from cacher.stores.s3.ranges import RangeReader

        reader = RangeReader(
            self._head,
            bucket,
            name,
            size=info.size,
            etag=info.etag,
            chunk=self.block_size,
            inflight=self.inflight,
        )
        try:
            yield TranslatingReader(reader, self, key)  # type: ignore[misc]
        finally:
            reader.close()

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """One ranged GET on the signed `http.client` path the downloads use (not s3fs), on a
        connection kept for the next: a content-addressed restore reads many."""
        bucket, _, name = self.path(key).partition("/")
        if self._ranges is None:
            from cacher.stores.s3.ranges import PackRanges

            self._ranges = PackRanges(self._head, bucket)
        with self._translate("read", key):
            return self._ranges.read_range(name, start, end)  # the whole range, or an error

    @contextmanager
    def open_object(self, path: str) -> Iterator[BinaryIO]:
        """Any object of this store's bucket by its full name (``--url s3://BUCKET/PATH``),
        read like the store's own: one HEAD, then pinned ranged GETs."""
        where = f"s3://{self.bucket}/{path}"
        with self._translate("read", ""):
            answer = self._head.head(self.bucket, path)
        if answer.status != 200:
            raise errors.for_status(self._seam("read", where), answer.status)
        from cacher.stores.s3.ranges import RangeReader

        reader = RangeReader(
            self._head,
            self.bucket,
            path,
            size=answer.size,
            etag=answer.etag,
            chunk=self.block_size,
            inflight=self.inflight,
        )
        try:
            yield TranslatingReader(reader, self, "")  # type: ignore[misc]
        finally:
            reader.close()

    def leftovers(self, prefix: str = "", *, older_than: timedelta = LEFTOVER_AGE) -> Sequence[Leftover]:
        """Multipart uploads under ``prefix`` started longer ago than ``older_than``: a killed
        runner's (a running job's upload is younger; stores without lifecycle rules keep the
        parts of a dead one forever)."""
        validate_list_prefix(prefix)
        base = "/".join(p for p in (self.prefix, prefix) if p)
        if self.prefix and not prefix:
            base += "/"
        cutoff = datetime.now(UTC) - older_than
        out: list[Leftover] = []
        from cacher.stores.s3.listing import list_uploads  # signed by hand, as listings are: no s3fs

        with self._translate("list the multipart uploads under", prefix):
            try:
                for key, upload_id, started in list_uploads(self._head, self.bucket, base):
                    if started is not None and started < cutoff:
                        out.append(Leftover(self._key_of(f"{self.bucket}/{key}"), 0, started, upload_id))
            except FileNotFoundError:  # HTTP 404: the bucket, asked below
                self.check_bucket()
        return out

    def remove_leftover(self, leftover: Leftover) -> bool:
        bucket, _, name = self.path(leftover.key).partition("/")
        with self._translate("abort the multipart upload of", leftover.key):
            try:
                self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=name, UploadId=leftover.handle)
            except FileNotFoundError:  # NoSuchUpload: it finished or was aborted meanwhile
                return False
        return True


def _in_thread(build: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    """``build()`` on a daemon thread (a command that fails meanwhile does not wait for it)."""
    import concurrent.futures

    result: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            result.set_result(build())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            result.set_exception(exc)

    threading.Thread(target=run, name="cacher-s3fs", daemon=True).start()
    return result
