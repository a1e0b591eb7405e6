"""A loopback HTTP/1.1 reverse proxy that records requests and injects faults.

Usage::

    with RecordingProxy(s3.endpoint) as proxy:
        client = s3.client(endpoint=proxy.endpoint)
        client.put_object(Bucket="b", Key="k", Body=b"x")
        req = proxy.requests[-1]
        assert req.method == "PUT" and req.path == "/b/k"
        assert req.header("Authorization").startswith("AWS4-HMAC-SHA256 ")

Requests are forwarded byte for byte: the request head exactly as received (so the ``Host``
header the client signed reaches the upstream unchanged), bodies with ``Content-Length`` or
``chunked`` framing relayed as they arrive, responses streamed back as they come. One upstream
connection per client connection; keep-alive and ``Expect: 100-continue`` work. When the
upstream closes its side, the client connection is closed too (as it would be without the
proxy).

Fault modes (``proxy.mode``, or :meth:`RecordingProxy.set_fault`):

- ``"pass"``: forward.
- ``"reset_after_bytes:N"``: forward, relay the response head and the first N body bytes, then
  reset the client connection (TCP RST). A body of N bytes or fewer is relayed whole.
- ``"stall"``: read the request, never answer (until the client or the proxy closes).
- ``"status:NNN"``: answer NNN with an S3-style XML error body, without forwarding.

``drop_request_headers`` (lower-case names) are removed from every request before it is
forwarded: a store that ignores them (``If-Match`` on Garage before 1.1, s3rver).
``on_request`` is called with each request before it is forwarded (the test's own moves, such
as replacing the object between a HEAD and its GETs).

``faults_remaining`` (int) limits a fault to the next K matching requests, after which the
proxy passes again; ``None`` means every matching request. ``fault_match`` (a predicate on the
:class:`RecordedRequest`) limits which requests count as matching.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cacher.testing.parts import Part

from .ports import LOOPBACK

__all__ = ["RecordedRequest", "RecordingProxy", "parse_mode"]

_MAX_HEAD = 1 << 20
_CHUNK = 1 << 16
_S3_CODES = {
    400: "BadRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    429: "SlowDown",
    500: "InternalError",
    502: "BadGateway",
    503: "SlowDown",
    504: "GatewayTimeout",
}


@dataclass
class RecordedRequest:
    """One request as the proxy received it (``headers`` keep order and case)."""

    method: str
    target: str  # path + query, exactly as in the request line
    version: str
    headers: list[tuple[str, str]]
    fault: str | None = None  # the fault applied to this request, if any
    body_size: int = 0  # request body bytes read from the client (framing excluded)
    status: int | None = None  # final response status sent (None: no answer)
    error: str | None = None  # transport trouble, e.g. "reset after 100 body bytes"
    index: int = field(default=0)

    @property
    def path(self) -> str:
        """The path, still percent-encoded, without the query."""
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urllib.parse.urlsplit(self.target).query

    @property
    def query_params(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(self.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def header_names(self) -> set[str]:
        """All header names, lower-cased."""
        return {k.lower() for k, _ in self.headers}


def parse_mode(mode: str) -> tuple[str, int]:
    """Validate a fault mode: ("pass"|"stall"|"reset"|"status", argument)."""
    if mode in ("pass", "stall"):
        return mode, 0
    m = re.fullmatch(r"reset_after_bytes:(\d+)", mode)
    if m:
        return "reset", int(m.group(1))
    m = re.fullmatch(r"status:(\d{3})", mode)
    if m and 100 <= int(m.group(1)) <= 599:
        return "status", int(m.group(1))
    raise ValueError(f"bad proxy mode {mode!r}: use pass, stall, reset_after_bytes:N or status:NNN")


class _Closed(Exception):
    """The peer closed the connection where a message was expected."""


class _Abort(Exception):
    """Stop serving this client connection (after resetting it)."""


class _Stream:
    """A socket with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(_CHUNK)
        if not data:
            return False
        self.buf += data
        return True

    def read_head(self) -> bytes | None:
        """Bytes up to and including the blank line; None on a clean EOF before any byte."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                return head
            if len(self.buf) > _MAX_HEAD:
                raise _Closed("message head too large")
            if not self._fill():
                if self.buf.strip():
                    raise _Closed("connection closed inside a message head")
                return None

    def readline(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[: end + 2])
                del self.buf[: end + 2]
                return line
            if len(self.buf) > _MAX_HEAD:
                raise _Closed("line too long")
            if not self._fill():
                raise _Closed("connection closed inside a chunked body")

    def iter_exact(self, n: int) -> Iterator[bytes]:
        """Yield exactly ``n`` bytes in pieces."""
        while n > 0:
            if not self.buf and not self._fill():
                raise _Closed(f"connection closed with {n} body bytes missing")
            piece = bytes(self.buf[:n])
            del self.buf[: len(piece)]
            n -= len(piece)
            yield piece

    def iter_until_eof(self) -> Iterator[bytes]:
        while True:
            if self.buf:
                piece = bytes(self.buf)
                self.buf.clear()
                yield piece
            if not self._fill():
                return


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """(start line, headers) of a message head."""
    lines = head.decode("latin-1").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    for k, v in headers:
        if k.lower() == lname:
            return v
    return None


def _framing(headers: list[tuple[str, str]]) -> tuple[bool, int | None]:
    """(chunked, content length) of a message."""
    te = _get(headers, "Transfer-Encoding")
    if te and "chunked" in te.lower():
        return True, None
    cl = _get(headers, "Content-Length")
    return False, int(cl) if cl is not None and cl.strip().isdigit() else None


def _wants_close(version: str, headers: list[tuple[str, str]]) -> bool:
    conn = (_get(headers, "Connection") or "").lower()
    if "close" in conn:
        return True
    return version == "HTTP/1.0" and "keep-alive" not in conn


def _iter_body(
    stream: _Stream, chunked: bool, length: int | None, until_eof: bool = False
) -> Iterator[tuple[bytes, int]]:
    """Yield (raw bytes to relay, payload bytes inside them) of one message body."""
    if chunked:
        while True:
            size_line = stream.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            yield size_line, 0
            if size == 0:
                while True:  # trailers, then the blank line
                    line = stream.readline()
                    yield line, 0
                    if line == b"\r\n":
                        return
            for piece in stream.iter_exact(size):
                yield piece, len(piece)
            crlf = b"".join(stream.iter_exact(2))
            yield crlf, 0
    elif length is not None:
        for piece in stream.iter_exact(length):
            yield piece, len(piece)
    elif until_eof:
        for piece in stream.iter_until_eof():
            yield piece, len(piece)


def _drop_headers(head: bytes, names: set[str]) -> bytes:
    lines = head.split(b"\r\n")
    kept = [
        line
        for i, line in enumerate(lines)
        if i == 0 or b":" not in line or line.split(b":", 1)[0].strip().decode("latin-1").lower() not in names
    ]
    return b"\r\n".join(kept)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class RecordingProxy(Part):
    """Reverse proxy on 127.0.0.1:``port`` to ``upstream`` (``http://host:port``)."""

    def __init__(self, upstream: str, port: int = 0, upstream_timeout: float = 120.0) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.upstream_timeout = upstream_timeout
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._mode = "pass"
        self.faults_remaining: int | None = None
        self.fault_match: Callable[[RecordedRequest], bool] | None = None
        self.faults_applied = 0
        self.drop_request_headers: set[str] = set()
        self.on_request: Callable[[RecordedRequest], None] | None = None
        self.connections_accepted = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RecordingProxy:
        if self._listener is not None:
            raise RuntimeError("RecordingProxy is already running")
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((LOOPBACK, self._port))
        lsock.listen(128)
        self._port = int(lsock.getsockname()[1])
        self._listener = lsock
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"RecordingProxy:{self._port}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every open connection (stalled ones included)."""
        self._stopping.set()
        lsock, self._listener = self._listener, None
        if lsock is not None:
            with contextlib.suppress(OSError):
                lsock.shutdown(socket.SHUT_RDWR)
            lsock.close()
        with self._lock:
            open_socks = list(self._open)
        for s in open_socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- API ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self._port}"

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: point the S3 client's endpoint_url here."""
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        parse_mode(value)
        with self._lock:
            self._mode = value

    def set_fault(
        self,
        mode: str,
        count: int | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Apply ``mode`` to the next ``count`` requests matching ``match`` (None: all)."""
        parse_mode(mode)
        with self._lock:
            self._mode = mode
            self.faults_remaining = count
            self.fault_match = match

    def reset(self) -> None:
        """Back to pass-through, no recorded requests."""
        with self._lock:
            self._mode = "pass"
            self.faults_remaining = None
            self.fault_match = None
            self.faults_applied = 0
            self._requests.clear()

    # -- internals ---------------------------------------------------------------------------

    def _choose_fault(self, req: RecordedRequest) -> tuple[str, int]:
        with self._lock:
            mode = self._mode
            if mode == "pass":
                return "pass", 0
            if self.fault_match is not None and not self.fault_match(req):
                return "pass", 0
            if self.faults_remaining is not None:
                if self.faults_remaining <= 0:
                    return "pass", 0
                self.faults_remaining -= 1
            self.faults_applied += 1
            req.fault = mode
            return parse_mode(mode)

    def _accept_loop(self) -> None:
        lsock = self._listener
        assert lsock is not None
        while not self._stopping.is_set():
            try:
                csock, _ = lsock.accept()
            except OSError:
                return
            csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections_accepted += 1
                self._open.add(csock)
            threading.Thread(target=self._serve_client, args=(csock,), daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        usock = socket.create_connection(self.upstream, timeout=self.upstream_timeout)
        usock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open.add(usock)
        return usock

    def _forget(self, *socks: socket.socket | None) -> None:
        with self._lock:
            for s in socks:
                if s is not None:
                    self._open.discard(s)

    def _serve_client(self, csock: socket.socket) -> None:
        client = _Stream(csock)
        upstream: _Stream | None = None
        try:
            while not self._stopping.is_set():
                if not client.buf and not self._wait_next_request(csock, upstream):
                    break
                head = client.read_head()
                if head is None:
                    break
                keep_going, upstream = self._one_request(client, upstream, head)
                if not keep_going:
                    break
        except _Abort:
            _reset(csock)
        except (_Closed, OSError, ValueError):
            pass
        finally:
            self._forget(csock, upstream.sock if upstream else None)
            with contextlib.suppress(OSError):
                csock.close()
            if upstream is not None:
                with contextlib.suppress(OSError):
                    upstream.sock.close()

    def _wait_next_request(self, csock: socket.socket, upstream: _Stream | None) -> bool:
        """Wait for the client's next request; False if the upstream closed meanwhile."""
        while not self._stopping.is_set():
            watch = [csock] if upstream is None else [csock, upstream.sock]
            readable, _, _ = select.select(watch, [], [], 0.25)
            if csock in readable:
                return True
            if upstream is not None and upstream.sock in readable:
                return False  # upstream closed an idle keep-alive connection
        return False

    def _one_request(
        self, client: _Stream, upstream: _Stream | None, head: bytes
    ) -> tuple[bool, _Stream | None]:
        """Serve one request; (keep the client connection?, upstream stream)."""
        start_line, headers = _parse_head(head)
        parts = start_line.split(" ")
        if len(parts) != 3:
            raise _Closed(f"bad request line {start_line!r}")
        method, target, version = parts
        req = RecordedRequest(method, target, version, headers)
        with self._lock:
            req.index = len(self._requests)
            self._requests.append(req)
        chunked, length = _framing(headers)
        expect_continue = (_get(headers, "Expect") or "").lower() == "100-continue"
        close_after = _wants_close(version, headers)
        kind, arg = self._choose_fault(req)

        if kind == "stall":
            self._stall(client)
            return False, upstream
        if kind == "status":
            if expect_continue:  # never ask for the body: answer, then close
                self._send_error(client.sock, req, arg, close=True)
                return False, upstream
            for _raw, n in _iter_body(client, chunked, length):
                req.body_size += n
            self._send_error(client.sock, req, arg, close=close_after)
            return not close_after, upstream

        if upstream is None:
            try:
                upstream = _Stream(self._connect_upstream())
            except OSError as exc:
                req.error = f"upstream connect failed: {exc}"
                raise _Abort from exc
        reset_after = arg if kind == "reset" else None
        if self.on_request is not None:
            self.on_request(req)
        if self.drop_request_headers:
            head = _drop_headers(head, self.drop_request_headers)
        try:
            upstream.sock.sendall(head)
            if expect_continue:
                status, resp_head = self._read_response_head(upstream)
                if status == 100:
                    client.sock.sendall(resp_head)
                    self._relay_request_body(client, upstream, req, chunked, length)
                    status, resp_head = self._read_response_head(upstream)
                else:
                    close_after = True  # the body was never sent: the connection is spent
            else:
                self._relay_request_body(client, upstream, req, chunked, length)
                status, resp_head = self._read_response_head(upstream)
            while 100 <= status < 200 and status != 101:
                client.sock.sendall(resp_head)
                status, resp_head = self._read_response_head(upstream)
        except (_Closed, OSError) as exc:
            req.error = f"upstream failed: {exc}"
            raise _Abort from exc
        req.status = status
        resp_close = self._relay_response(client, upstream, req, method, status, resp_head, reset_after)
        return not (close_after or resp_close), upstream

    def _relay_request_body(
        self,
        client: _Stream,
        upstream: _Stream,
        req: RecordedRequest,
        chunked: bool,
        length: int | None,
    ) -> None:
        failed: OSError | None = None
        for raw, n in _iter_body(client, chunked, length):
            req.body_size += n
            if failed is None:
                try:
                    upstream.sock.sendall(raw)
                except OSError as exc:  # upstream answered early; read what it said
                    failed = exc

    def _read_response_head(self, upstream: _Stream) -> tuple[int, bytes]:
        resp_head = upstream.read_head()
        if resp_head is None:
            raise _Closed("upstream closed the connection before answering")
        status_line, _ = _parse_head(resp_head)
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not fields[1].isdigit():
            raise _Closed(f"bad status line {status_line!r}")
        return int(fields[1]), resp_head

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
        """Relay one response; True if the connection must close afterwards."""
        status_line, headers = _parse_head(resp_head)
        close = _wants_close(status_line.split(" ", 1)[0], headers)
        client.sock.sendall(resp_head)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return close
        chunked, length = _framing(headers)
        until_eof = not chunked and length is None
        sent = 0
        try:
            for raw, n in _iter_body(upstream, chunked, length, until_eof=until_eof):
                if reset_after is not None and sent + n > reset_after:
                    keep = reset_after - sent
                    if keep > 0:
                        client.sock.sendall(raw[:keep])
                    req.error = f"reset after {reset_after} body bytes"
                    raise _Abort
                client.sock.sendall(raw)
                sent += n
        except _Closed as exc:
            req.error = f"upstream closed mid-response: {exc}"
            raise _Abort from exc
        return close or until_eof

    def _send_error(self, sock: socket.socket, req: RecordedRequest, status: int, close: bool) -> None:
        code = _S3_CODES.get(status, "InjectedFault")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>realparts proxy injected HTTP {status}"
            f"</Message><Resource>{req.path}</Resource>"
            f"<RequestId>realparts-{req.index}</RequestId></Error>"
        ).encode()
        head = [
            f"HTTP/1.1 {status} {code}",
            "Content-Type: application/xml",
            f"Content-Length: {len(body)}",
            f"x-amz-request-id: realparts-{req.index}",
        ]
        if close:
            head.append("Connection: close")
        payload = ("\r\n".join(head) + "\r\n\r\n").encode()
        if req.method != "HEAD":
            payload += body
        req.status = status
        sock.sendall(payload)

    def _stall(self, client: _Stream) -> None:
        """Never answer: swallow what the client sends until it or the proxy closes."""
        client.buf.clear()
        while not self._stopping.is_set():
            readable, _, _ = select.select([client.sock], [], [], 0.25)
            if readable:
                try:
                    if not client.sock.recv(_CHUNK):
                        return
                except OSError:
                    return
