"""S3 transfers with several requests in flight, on s3fs's own event loop.

s3fs sends the parts of a streamed upload one after the other, in the writer's thread, and
reads a stream with one ranged GET at a time. These classes keep up to ``inflight`` requests
going while the caller compresses or extracts, so the slowest stage sets the pace. Memory is
bounded by ``inflight * part size``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import random
from collections.abc import Coroutine
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


class ParallelUpload:
    """A write-only stream becoming one S3 object; nothing is visible until `commit`."""

    def __init__(
        self, fs: Any, bucket: str, key: str, *, part_size: int, inflight: int, metadata: dict[str, str]
    ) -> None:
        self.fs, self.bucket, self.key = fs, bucket, key
        self.part_size, self.inflight, self.metadata = part_size, inflight, metadata
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.pending: collections.deque[concurrent.futures.Future[dict[str, Any]]] = collections.deque()
        self.parts: list[dict[str, Any]] = []
        self.count = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.buffer += data
        self.count += len(data)
        while len(self.buffer) >= self.part_size:
            with memoryview(self.buffer) as view:
                part = bytes(view[: self.part_size])  # one copy; a slice then bytes() made two
            del self.buffer[: self.part_size]
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

    def commit(self) -> None:
        """Send what is left and complete the upload (a single PUT for a small object)."""
        if self.upload_id is None:
            self.fs.call_s3(
                "put_object",
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self.buffer),
                Metadata=self.metadata,
            )
            return
        if self.buffer:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        while self.pending:
            self.parts.append(self.pending.popleft().result())
        self.fs.call_s3(
            "complete_multipart_upload",
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": sorted(self.parts, key=lambda p: p["PartNumber"])},
        )

    def abort(self) -> None:
        """Stop the parts in flight and abort the multipart upload, so no part is kept."""
        _wait_all(list(self.pending))
        self.pending.clear()
        if self.upload_id is not None:
            self.fs.call_s3(
                "abort_multipart_upload", Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )


class ParallelReader:
    """Reads one object with ranged GETs in flight ahead of the reader, pinned to its ETag."""

    def __init__(
        self,
        fs: Any,
        bucket: str,
        key: str,
        *,
        size: int,
        etag: str | None,
        chunk: int,
        inflight: int,
        attempts: int = 3,
    ) -> None:
        self.fs, self.bucket, self.key = fs, bucket, key
        self.size, self.etag, self.chunk, self.inflight = size, etag, chunk, inflight
        self.attempts = max(1, attempts)
        self.next_offset = 0
        self.pending: collections.deque[concurrent.futures.Future[bytes]] = collections.deque()
        self.current = b""
        self.pos = 0

    def _fill(self) -> None:
        while len(self.pending) < self.inflight and self.next_offset < self.size:
            end = min(self.next_offset + self.chunk, self.size)
            self.pending.append(_submit(self.fs, self._get(self.next_offset, end)))
            self.next_offset = end

    async def _get(self, start: int, end: int) -> bytes:
        """One range. botocore has already retried the request (``max_attempts``), so only a
        body cut short, which it cannot see, is retried here: the attempts never multiply."""
        extra = {"IfMatch": self.etag} if self.etag else {}
        for attempt in range(self.attempts):
            response = await self.fs._call_s3(
                "get_object", Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}", **extra
            )
            body = response["Body"]
            try:
                data: bytes = await body.read()
                if len(data) != end - start:
                    raise OSError(f"short read: {len(data)} of {end - start} bytes")
                return data
            except Exception:
                if attempt == self.attempts - 1:
                    raise
            finally:
                body.close()
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, size: int = -1) -> bytes:
        if self.pos >= len(self.current):
            self._fill()
            if not self.pending:
                return b""
            self.current, self.pos = self.pending.popleft().result(), 0
            self._fill()
        end = len(self.current) if size < 0 else self.pos + size
        data = self.current[self.pos : end]
        self.pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        _wait_all(list(self.pending))
        self.pending.clear()
