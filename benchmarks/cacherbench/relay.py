"""A recording TCP relay: listens on loopback, forwards bytes both ways to the S3 server, and
notes when each new client connection sent its first bytes.

A command pointed at the relay instead of the server shows when its first request left: the
relay reads ``time.perf_counter()`` (the clock `proc.measure` starts before it spawns a
command) as soon as a connection's first bytes arrive, before it even connects upstream. The
relay runs as threads of the benchmark process, so what it adds to a transfer (a copy through
Python) does not count: only the first request's departure is measured through it.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

CHUNK = 1 << 16


class Relay:
    """``with Relay(endpoint) as relay:`` then point a client at ``relay.endpoint``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.scheme = parts.scheme or "http"
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._firsts: list[float] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{self.scheme}://{host}:{port}"

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()

    def reset(self) -> None:
        """Forget the connections seen so far (before spawning the next command)."""
        with self._lock:
            self._firsts.clear()

    def first(self) -> float | None:
        """When the earliest connection since `reset` sent its first bytes (perf_counter)."""
        with self._lock:
            return min(self._firsts, default=None)

    def connections(self) -> int:
        with self._lock:
            return len(self._firsts)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="relay-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            data = client.recv(CHUNK)
            at = time.perf_counter()
            if not data:
                return
            with self._lock:
                self._firsts.append(at)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server = socket.create_connection(self.upstream)
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server.sendall(data)
            back = threading.Thread(target=_pump, args=(server, client), name="relay-back", daemon=True)
            back.start()
            _pump(client, server)
            back.join()
            server.close()
        except OSError:
            pass
        finally:
            client.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until src's end, then end dst's writing side."""
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
