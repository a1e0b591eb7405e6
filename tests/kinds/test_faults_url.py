"""Faults of the --url source (cacher/fetch.py), in-process against a misbehaving HTTP server.

- A server that stops sending ends the fetch after the read timeout, with a clear message.
- A slow but steady download is never cut by a cap on the whole transfer (aiohttp's default
  is 300 s in all, which would break any fetch longer than five minutes).
- A server error is reported as what it is, not as "not found".
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator

import aiohttp.client
import pytest

from cacher import fetch
from cacher.errors import ArtifactError


class SlowServer:
    """Answers every GET/HEAD with ``size`` bytes: ``piece`` bytes every ``interval`` seconds,
    or, with ``stall_after``, stops sending after that many body bytes (connection kept open)."""

    def __init__(self, size: int, piece: int, interval: float, stall_after: int | None = None) -> None:
        self.size, self.piece, self.interval, self.stall_after = size, piece, interval, stall_after
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/file.bin"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while not self.stop.is_set():
                    request = b""
                    while b"\r\n\r\n" not in request:
                        data = conn.recv(65536)
                        if not data:
                            return
                        request += data
                    head = f"HTTP/1.1 200 OK\r\nContent-Length: {self.size}\r\nContent-Type: application/octet-stream\r\n\r\n"
                    conn.sendall(head.encode())
                    if request.startswith(b"HEAD"):
                        continue
                    sent = 0
                    while sent < self.size and not self.stop.is_set():
                        if self.stall_after is not None and sent >= self.stall_after:
                            self.stop.wait(120)
                            return
                        n = min(self.piece, self.size - sent)
                        conn.sendall(b"x" * n)
                        sent += n
                        time.sleep(self.interval)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "HTTP_READ_TIMEOUT", 1.0)
    monkeypatch.setattr(fetch, "HTTP_CONNECT_TIMEOUT", 1.0)


@pytest.fixture
def server_factory() -> Iterator[type[SlowServer]]:
    made: list[SlowServer] = []

    def make(*args: object, **kwargs: object) -> SlowServer:
        s = SlowServer(*args, **kwargs)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield make  # type: ignore[misc]
    for s in made:
        s.close()


def test_a_stalled_url_ends_after_the_read_timeout(short_timeouts: None, server_factory) -> None:
    server = server_factory(100_000, 10_000, 0.0, stall_after=30_000)
    sink = io.BytesIO()
    started = time.monotonic()
    with pytest.raises(ArtifactError, match="timed out") as info:
        fetch.stream_url(server.url, sink, None)
    assert time.monotonic() - started < 10
    assert "127.0.0.1" in info.value.message


def test_a_slow_steady_url_is_not_cut_by_a_total_cap(
    short_timeouts: None, server_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand in for aiohttp's 300 s default with 1.5 s: a 3 s download must still complete."""
    from fsspec.implementations.http import HTTPFileSystem

    monkeypatch.setattr(aiohttp.client, "DEFAULT_TIMEOUT", aiohttp.ClientTimeout(total=1.5, sock_connect=30))
    HTTPFileSystem.clear_instance_cache()  # a cached filesystem would keep an older session
    server = server_factory(30_000, 1_000, 0.1)  # 3 s in all, a byte never 1 s apart
    sink = io.BytesIO()
    assert fetch.stream_url(server.url, sink, None) == 30_000
    assert sink.getvalue() == b"x" * 30_000


def test_a_server_error_is_not_called_not_found(http) -> None:
    url = http.put("x.bin", b"data")
    http.set_status("x.bin", 503)
    with pytest.raises(ArtifactError, match="HTTP 503"):
        fetch.stream_url(url, io.BytesIO(), None)
    http.set_status("x.bin", 404)
    with pytest.raises(ArtifactError, match=r"not found \(404\)"):
        fetch.stream_url(url, io.BytesIO(), None)
