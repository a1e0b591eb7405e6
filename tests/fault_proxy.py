"""Fault modes the reliability tests need beyond tests/realparts/recording_proxy.py.

`FaultProxy` is a `RecordingProxy` (all of its modes keep working) with two more faults,
both limited by the proxy's own ``fault_match`` predicate and, like the others, counted in
``faults_applied`` and noted in ``RecordedRequest.fault``:

- ``trickle``: relay the response body at ``trickle_rate`` bytes per second, in small
  pieces, so that no single socket read ever waits long (a read timeout never fires).
- ``request_reset``: reset the client connection after ``request_reset_after`` bytes of the
  *request* body (an upload cut off mid-part; the upstream never sees the whole part).

Each is switched on with :meth:`FaultProxy.set_extra` and applies to the next ``count``
matching requests (None: all of them).

And a way to stop a client at a chosen point: :meth:`FaultProxy.hold` returns a `Hold` that
keeps the ``nth`` matching request (and, with ``count``, the ones after it) at the proxy before
a byte of it is forwarded, until the test calls `Hold.release`. The test then knows exactly
where the client is (`Hold.wait`), and may kill it or run another client meanwhile. Holds
count their own matches, apart from the fault modes above, which keep working.

Below the proxy: helpers the reliability tests share (S3 settings with short timeouts, request
predicates, and the checks of what a failure left behind).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.realparts.recording_proxy import RecordedRequest, RecordingProxy, _Abort, _iter_body, _Stream


class Hold:
    """Requests matching ``match`` held at the proxy from the ``nth`` one on (``count`` of them,
    None: every one from the ``nth``), each until `release`; ``held`` lists them as they come."""

    def __init__(self, match: Callable[[RecordedRequest], bool], nth: int = 1, count: int | None = 1) -> None:
        assert nth >= 1 and (count is None or count >= 1), (nth, count)
        self.match, self.nth, self.count = match, nth, count
        self.seen = 0
        self.held: list[RecordedRequest] = []
        self._arrived = threading.Condition()
        self._go = threading.Event()
        self._dropped = False

    def claims(self, req: RecordedRequest) -> bool:
        """Whether ``req`` is one to hold (called once per request, under the proxy's lock)."""
        if not self.match(req):
            return False
        self.seen += 1
        last = None if self.count is None else self.nth + self.count - 1
        return self.seen >= self.nth and (last is None or self.seen <= last)

    def arrive(self, req: RecordedRequest, stopping: threading.Event) -> bool:
        """Keep ``req`` (in its proxy thread) until released or the proxy stops; whether to
        forward it then (False: `drop`)."""
        req.fault = "hold"
        with self._arrived:
            self.held.append(req)
            self._arrived.notify_all()
        while not self._go.wait(0.1) and not stopping.is_set():
            pass
        return not self._dropped

    def wait(self, n: int = 1, timeout: float = 60) -> RecordedRequest:
        """Until ``n`` requests are held; the ``n``-th of them."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.held) >= n, timeout):
                raise AssertionError(f"no request held after {timeout} s (held: {len(self.held)} of {n})")
            return self.held[n - 1]

    def release(self) -> None:
        """Forward every held request, and those still to come, untouched."""
        self._go.set()

    def drop(self) -> None:
        """Reset the connections of the held requests (and of those still to come) without
        forwarding a byte: what a client killed while they were held never delivered, even
        when the whole request was already in the proxy's buffers."""
        self._dropped = True
        self._go.set()


class FaultProxy(RecordingProxy):
    def __init__(self, upstream: str, **kwargs: object) -> None:
        super().__init__(upstream, **kwargs)  # type: ignore[arg-type]
        self._holds: list[Hold] = []
        self._extra_lock = threading.Lock()
        self.extra: str | None = None
        self.extra_remaining: int | None = None
        self.extra_match: Callable[[RecordedRequest], bool] | None = None
        self.trickle_rate = 1024
        self.request_reset_after = 0

    def set_extra(
        self,
        mode: str | None,
        count: int | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
        *,
        rate: int = 1024,
        after: int = 0,
    ) -> None:
        """Switch on ``trickle`` or ``request_reset`` (None: off) for matching requests."""
        assert mode in (None, "trickle", "request_reset"), mode
        with self._extra_lock:
            self.extra, self.extra_remaining, self.extra_match = mode, count, match
            self.trickle_rate, self.request_reset_after = rate, after

    def hold(self, match: Callable[[RecordedRequest], bool], nth: int = 1, count: int | None = 1) -> Hold:
        """Hold the ``nth`` request matching ``match`` from now on (and ``count`` - 1 after it;
        None: all after it) before forwarding it, until `Hold.release`."""
        hold = Hold(match, nth, count)
        with self._extra_lock:
            self._holds.append(hold)
        return hold

    def reset(self) -> None:
        super().reset()
        self.set_extra(None)
        self.release_all()

    def release_all(self, *, drop: bool = False) -> None:
        """Release (or `Hold.drop`) every hold and forget them."""
        with self._extra_lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            if drop:
                hold.drop()
            else:
                hold.release()

    def stop(self) -> None:
        self.release_all(drop=True)  # nothing a stopped test held reaches the store afterwards
        super().stop()

    def _choose_fault(self, req: RecordedRequest) -> tuple[str, int]:
        with self._extra_lock:
            claimed = [hold for hold in self._holds if hold.claims(req)]
        for hold in claimed:
            if not hold.arrive(req, self._stopping):
                req.error = "dropped by a hold"
                raise _Abort
        return super()._choose_fault(req)

    def _take_extra(self, req: RecordedRequest, mode: str) -> bool:
        with self._extra_lock:
            if self.extra != mode or (self.extra_match is not None and not self.extra_match(req)):
                return False
            if self.extra_remaining is not None:
                if self.extra_remaining <= 0:
                    return False
                self.extra_remaining -= 1
        with self._lock:
            self.faults_applied += 1
        req.fault = mode
        return True

    def _relay_request_body(
        self,
        client: _Stream,
        upstream: _Stream,
        req: RecordedRequest,
        chunked: bool,
        length: int | None,
    ) -> None:
        if not self._take_extra(req, "request_reset"):
            super()._relay_request_body(client, upstream, req, chunked, length)
            return
        for raw, n in _iter_body(client, chunked, length):
            req.body_size += n
            if req.body_size > self.request_reset_after:
                req.error = f"request reset after {self.request_reset_after} body bytes"
                upstream.sock.close()  # the upstream sees a cut request, and answers nothing
                raise _Abort
            upstream.sock.sendall(raw)

    def _relay_response(
        self,
        client: _Stream,
        upstream: _Stream,
        req: RecordedRequest,
        method: str,
        status: int,
        resp_head: bytes,
        reset_after: int | None,
    ) -> bool:
        if method == "HEAD" or not self._take_extra(req, "trickle"):
            return super()._relay_response(client, upstream, req, method, status, resp_head, reset_after)
        real = client.sock

        class _Slow:
            """The client socket, sending the body a few bytes at a time."""

            def __init__(self, rate: int, stopping: threading.Event) -> None:
                self.rate, self.stopping = rate, stopping
                self.head_sent = False

            def sendall(self, data: bytes) -> None:
                if not self.head_sent:  # the response head goes at once
                    self.head_sent = True
                    real.sendall(data)
                    return
                piece = max(1, self.rate // 10)
                for i in range(0, len(data), piece):
                    if self.stopping.is_set():
                        raise _Abort
                    real.sendall(data[i : i + piece])
                    time.sleep(0.1)

        client.sock = _Slow(self.trickle_rate, self._stopping)  # type: ignore[assignment]
        try:
            return super()._relay_response(client, upstream, req, method, status, resp_head, reset_after)
        finally:
            client.sock = real


# -- shared by the reliability tests ---------------------------------------------------------


#: Short timeouts so that faults end quickly; each test sets what it measures.
FAST = {"CACHER_CONNECT_TIMEOUT": "2", "CACHER_READ_TIMEOUT": "2", "CACHER_PART_SIZE_MB": "5"}


def s3_env(server: Any, bucket: str, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    """CACHER_* variables for the S3 store (through ``endpoint``, e.g. a proxy, if given)."""
    env = {
        "CACHER_ENDPOINT": endpoint or server.endpoint,
        "CACHER_BUCKET": bucket,
        "CACHER_S3_KEY_ID": server.key_id,
        "CACHER_S3_SECRET": server.secret,
        **FAST,
    }
    env.update(extra)
    return env


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("cacher: error: ")]


def assert_clean_failure(run: Any, *needles: str) -> None:
    """Exit 2, exactly one error line naming the problem, no traceback."""
    assert run.code == 2, str(run)
    lines = error_lines(run.err)
    assert len(lines) == 1, str(run)
    assert "Traceback" not in run.err, str(run)
    for needle in needles:
        assert needle in lines[0], str(run)


def leftovers(directory: Path) -> list[str]:
    """Temporary or staging siblings cacher left in ``directory``."""
    return sorted(p.name for p in directory.iterdir() if ".cacher-" in p.name)


def assert_nothing_published(server: Any, bucket: str, key: str) -> None:
    """No object under ``key`` and no multipart upload left in the bucket."""
    assert key not in server.list_keys(bucket)
    assert server.multipart_uploads(bucket) == []


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def is_part(req: RecordedRequest) -> bool:
    """An UploadPart (or a single-request PutObject)."""
    return req.method == "PUT"


def is_get(req: RecordedRequest) -> bool:
    return req.method == "GET" and "uploads" not in req.query


def is_complete(req: RecordedRequest) -> bool:
    return req.method == "POST" and "uploadId" in req.query
