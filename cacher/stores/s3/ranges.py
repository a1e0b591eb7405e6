"""Reading one S3 object with ranged GETs in worker threads, pinned to the ETag it had.

Each worker keeps its own connection and fills its range's buffer from the socket with the
GIL released, so several ranges arrive at once while the caller consumes them in order.
Memory is bounded by ``inflight`` ranges plus the one being read.
"""

from __future__ import annotations

import collections
import concurrent.futures
import http.client
import random
import socket
import threading
import time

from cacher.errors import ReadPreconditionFailed, StoreRefused
from cacher.stores.base import bare_etag
from cacher.stores.s3.rest import RETRY_STATUS, S3Http

_READ_STEP = 1 << 20


class _Retryable(Exception):
    """A failure another attempt may fix: a 5xx or 429 answer, a short body, a deadline."""


class _Closed(Exception):
    """The reader was closed while this range was still wanted."""


class RangeReader:
    """A read-only stream over one object; ranges are fetched ahead, ``inflight`` at a time."""

    def __init__(
        self,
        client: S3Http,
        bucket: str,
        key: str,
        *,
        size: int,
        etag: str | None,
        chunk: int,
        inflight: int,
    ) -> None:
        self.client, self.path = client, client.object_path(bucket, key)
        self.size, self.etag, self.chunk = size, etag, chunk
        self.inflight = max(1, inflight)
        self.next_offset = 0
        self.pending: collections.deque[concurrent.futures.Future[bytearray]] = collections.deque()
        self.current = memoryview(b"")
        self.pos = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(self.inflight, thread_name_prefix="cacher-get")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[http.client.HTTPConnection] = set()
        self._closed = threading.Event()

    # -- the consumer's side ---------------------------------------------------------------

    def _fill(self) -> None:
        while len(self.pending) < self.inflight and self.next_offset < self.size:
            end = min(self.next_offset + self.chunk, self.size)
            self.pending.append(self._pool.submit(self._get, self.next_offset, end))
            self.next_offset = end

    def read(self, size: int = -1) -> bytes:
        if self.pos >= len(self.current):
            self._fill()
            if not self.pending:
                return b""
            self.current, self.pos = memoryview(self.pending.popleft().result()), 0
            self._fill()
        end = len(self.current) if size < 0 else self.pos + size
        data = bytes(self.current[self.pos : end])
        self.pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Stop every range in flight at once: their sockets are shut, their threads end."""
        self._closed.set()
        for future in self.pending:
            future.cancel()
        with self._lock:
            for conn in self._connections:
                if conn.sock is not None:
                    try:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # -- the workers' side -----------------------------------------------------------------

    def _get(self, start: int, end: int) -> bytearray:
        """One range, with up to ``attempts`` tries; answers that cannot change are not retried."""
        buf = bytearray(end - start)
        last: Exception | None = None
        for attempt in range(self.client.attempts):
            if attempt:
                time.sleep(min(0.2 * 2**attempt, 5.0) * random.uniform(0.5, 1.5))
            if self._closed.is_set():
                raise _Closed("the download was stopped")
            try:
                self._get_once(start, end, memoryview(buf))
                return buf
            except (ReadPreconditionFailed, FileNotFoundError, StoreRefused, _Closed):
                self._drop_connection()
                raise
            except (_Retryable, OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                if self._closed.is_set():
                    raise _Closed("the download was stopped") from None
                last = exc
        raise OSError(f"{type(last).__name__}: {last}" if last else "no answer")

    def _get_once(self, start: int, end: int, view: memoryview) -> None:
        conn = self._connection()
        headers = self.client.sign("GET", self.path)
        headers["Range"] = f"bytes={start}-{end - 1}"
        if self.etag:
            headers["If-Match"] = self.etag
        deadline = time.monotonic() + self.client.request_timeout if self.client.request_timeout else None
        conn.request("GET", self.client.target(self.path), headers=headers)
        response = conn.getresponse()
        whole = response.status == 200 and start == 0 and end == self.size
        if response.status != 206 and not whole:
            self._refuse(response)
        self._check_pinned(response, whole)
        want, got = end - start, 0
        if response.length is not None and response.length != want:
            raise _Retryable(f"the store sent {response.length} bytes for a range of {want}")
        # readinto1 on the response's buffered socket file: at most one recv per call, so the
        # deadline is checked while bytes trickle in, and no bytes object is made per call.
        body = response.fp
        while got < want:
            n = body.readinto1(view[got : min(want, got + _READ_STEP)])
            if not n:
                raise _Retryable(f"short read: {got} of {want} bytes")
            got += n
            if deadline is not None and time.monotonic() > deadline:
                raise _Retryable(f"the range took longer than {self.client.request_timeout:g} s")
        response.length = 0  # the body was read past http.client's own count
        response.read()  # releases the connection for the next range

    def _check_pinned(self, response: http.client.HTTPResponse, whole: bool) -> None:
        """The answer is a range of the object the HEAD saw, even where the store ignores
        ``If-Match`` (Garage before 1.1, s3rver): same ETag, same total size. Otherwise the
        read restarts, as on a 412."""
        etag = response.getheader("ETag")
        if self.etag and etag and bare_etag(etag) != bare_etag(self.etag):
            raise ReadPreconditionFailed(f"the object's ETag changed from {self.etag} to {etag}")
        if whole:
            return
        total = (response.getheader("Content-Range") or "").rpartition("/")[2].strip()
        if total.isdigit() and int(total) != self.size:
            raise ReadPreconditionFailed(f"the object's size changed from {self.size} to {total} bytes")

    def _refuse(self, response: http.client.HTTPResponse) -> None:
        status = response.status
        detail = response.read(2048).decode("utf-8", "replace")
        code = detail.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in detail else ""
        reason = f"HTTP {status}" + (f" {code}" if code else "")
        if status == 412:
            raise ReadPreconditionFailed(f"{reason}: the object no longer has ETag {self.etag}")
        if status == 404:
            raise FileNotFoundError(f"{reason}: the object is gone")
        if status in RETRY_STATUS:
            raise _Retryable(reason)
        raise StoreRefused(f"the store refused a ranged read: {reason}", status=status, code=code)

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.client.connect()
            with self._lock:
                if self._closed.is_set():
                    raise _Closed("the download was stopped")
                self._connections.add(conn)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._lock:
                self._connections.discard(conn)
            conn.close()


class PackRanges(RangeReader):
    """Ranged reads of any object of a bucket at any offsets, one at a time on one kept-alive
    connection: the packs of the content-addressed format (`cacher.stores.base.Store.read_range`).
    Retried like a download's ranges; not pinned to an ETag, as a pack never changes once
    written (its name is the sha256 of its bytes, and every blob read is checked against it)."""

    def __init__(self, client: S3Http, bucket: str) -> None:
        super().__init__(client, bucket, "", size=0, etag=None, chunk=1, inflight=1)
        self.bucket = bucket
        self._one = threading.Lock()

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of ``key``; `FileNotFoundError` when it is not stored."""
        with self._one:
            self.path = self.client.object_path(self.bucket, key)
            return bytes(self._get(start, end))

    def _check_pinned(self, response: http.client.HTTPResponse, whole: bool) -> None:
        """Nothing to pin: see the class's text."""
