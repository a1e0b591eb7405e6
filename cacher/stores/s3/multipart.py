"""Streamed multipart uploads with several parts in flight, on s3fs's own event loop.

s3fs sends the parts of a streamed upload one after the other, in the writer's thread. This
keeps up to ``inflight`` parts going while the caller compresses, so the slowest stage sets
the pace. Memory is bounded by ``inflight * part size``. (Reads: `cacher.stores.s3.ranges`.)
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any


def _submit(fs: Any, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
    return asyncio.run_coroutine_threadsafe(coro, fs.loop)


def _wait_all(futures: collections.abc.Iterable[concurrent.futures.Future[Any]]) -> None:
    for future in futures:
        future.cancel()
    for future in futures:
        try:
            future.result()
        except BaseException:  # noqa: BLE001 - we are already failing; the first error is raised
            pass


PARTS_PER_STEP = 1000


class ParallelUpload:
    """A write-only stream becoming one S3 object; nothing is visible until `commit`."""

    def __init__(
        self,
        fs: Callable[[], Any],
        bucket: str,
        key: str,
        *,
        part_size: int,
        inflight: int,
        metadata: dict[str, str],
        grow: bool = True,
    ) -> None:
        self._fs_source, self.bucket, self.key = fs, bucket, key
        self.part_size, self.inflight, self.metadata = part_size, inflight, metadata
        self.grow = grow
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.pending: collections.deque[concurrent.futures.Future[dict[str, Any]]] = collections.deque()
        self.parts: list[dict[str, Any]] = []
        self.count = 0

    @property
    def fs(self) -> Any:
        """s3fs, asked for only when the first request is sent (it may still be being built)."""
        return self._fs_source()

    @property
    def next_part_size(self) -> int:
        """The configured size, doubled every `PARTS_PER_STEP` parts.

        S3 allows 10,000 parts per object. Small parts keep memory low (each part in flight
        is held about twice: once here, once in the socket's send buffer), and doubling keeps
        objects up to 7.8 TiB within the limit (from 8 MiB parts).
        """
        if not self.grow:  # stores that want equal parts (R2's fixed_upload_size)
            return self.part_size
        sent = len(self.parts) + len(self.pending)
        return self.part_size << min(sent // PARTS_PER_STEP, 9)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.buffer += data
        self.count += len(data)
        while len(self.buffer) >= (size := self.next_part_size):
            with memoryview(self.buffer) as view:
                part = bytes(view[:size])  # one copy; a slice then bytes() made two
            del self.buffer[:size]
            self._send(part)
        return len(data)

    def flush(self) -> None:
        """Parts go when they are full; `commit` sends the rest."""

    def _send(self, part: bytes) -> None:
        if self.upload_id is None:
            started = self.fs.call_s3(
                "create_multipart_upload", Bucket=self.bucket, Key=self.key, Metadata=self.metadata
            )
            self.upload_id = started["UploadId"]
        while len(self.pending) >= self.inflight:
            self.parts.append(self.pending.popleft().result())
        number = len(self.parts) + len(self.pending) + 1
        self.pending.append(_submit(self.fs, self._upload_part(number, part)))

    async def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        response = await self.fs._call_s3(
            "upload_part",
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    #: The ETag the store answered for the finished object (None until `commit`).
    etag: str | None = None

    def commit(self) -> None:
        """Send what is left and complete the upload (a single PUT for a small object);
        keep the ETag the store answered, so a copy of what was sent can name the object."""
        if self.upload_id is None:
            response = self.fs.call_s3(
                "put_object",
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self.buffer),
                Metadata=self.metadata,
            )
            self.etag = response.get("ETag")
            return
        if self.buffer:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        while self.pending:
            self.parts.append(self.pending.popleft().result())
        response = self.fs.call_s3(
            "complete_multipart_upload",
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": sorted(self.parts, key=lambda p: p["PartNumber"])},
        )
        self.etag = response.get("ETag")

    def abort(self) -> None:
        """Stop the parts in flight and abort the multipart upload, so no part is kept."""
        _wait_all(list(self.pending))
        self.pending.clear()
        if self.upload_id is not None:
            self.fs.call_s3(
                "abort_multipart_upload", Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
