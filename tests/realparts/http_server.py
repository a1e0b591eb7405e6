"""A threaded loopback HTTP/1.1 file server that counts requests per path.

Usage::

    with FileServer(tmp_path) as srv:
        url = srv.url("dir/file.bin")
        ...
        assert srv.count("dir/file.bin") == 1

GET and HEAD; 404 for anything that is not a file under the root; single ``Range: bytes=``
ranges answer 206 (``Content-Range``), unsatisfiable ones 416. Keep-alive works (every answer
has a ``Content-Length``). ``set_status(path, code)`` makes a path answer ``code`` instead
(for fault tests), optionally only for the next ``times`` requests.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cacher.testing.parts import Part

from .ports import LOOPBACK

__all__ = ["FileServer", "ServedRequest"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ServedRequest:
    """One request the server answered."""

    method: str
    path: str  # URL path, percent-decoded, without the query, leading "/" kept
    headers: dict[str, str]
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FileServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "realparts-fileserver"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        owner = self.server.owner
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        override = owner._take_override(path)
        if override is not None:
            status, target, start, end, size = override, None, 0, -1, 0
        else:
            status, target, start, end, size = self._plan(owner.root, path)
        # Count before answering, so a client that has its answer sees the count.
        owner._record(ServedRequest(self.command, path, dict(self.headers.items()), status))
        if target is None:
            extra = {"Content-Range": f"bytes */{size}"} if status == 416 else None
            self._send_simple(status, body, extra)
        else:
            self._send_range(status, target, start, end, size, body)

    def _plan(self, root: Path, path: str) -> tuple[int, Path | None, int, int, int]:
        """(status, file or None, first byte, last byte, file size) for a request."""
        rel = path.lstrip("/")
        target = (root / rel).resolve()
        if not rel or not target.is_relative_to(root) or not target.is_file():
            return 404, None, 0, -1, 0
        size = target.stat().st_size
        header = self.headers.get("Range")
        m = _RANGE_RE.match(header.strip()) if header else None
        if not (m and (m.group(1) or m.group(2))):
            return 200, target, 0, size - 1, size
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        else:  # suffix range: the last N bytes
            start, end = max(0, size - int(m.group(2))), size - 1
        if start >= size or start > end:
            return 416, None, 0, -1, size
        return 206, target, start, end, size

    def _send_simple(self, status: int, body: bool, extra: dict[str, str] | None = None) -> None:
        payload = f"{status} {HTTPStatus(status).phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def _send_range(self, status: int, target: Path, start: int, end: int, size: int, body: bool) -> None:
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not (body and length):
            return
        with open(target, "rb") as f:
            f.seek(start)
            remaining = length
            while remaining:
                chunk = f.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)


class FileServer(Part):
    """Serves files under ``root`` (default: a new temp dir) on 127.0.0.1:``port``."""

    def __init__(self, root: str | os.PathLike[str] | None = None, port: int = 0) -> None:
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="cacher-http-")).resolve()
        self._port = port
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self.requests: list[ServedRequest] = []
        self._overrides: dict[str, tuple[int, int | None]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FileServer:
        if self._server is not None:
            raise RuntimeError("FileServer is already running")
        server = _Server((LOOPBACK, self._port), _Handler)
        server.owner = self
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name=f"FileServer:{self._port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- API ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self._port}"

    def url(self, path: str) -> str:
        """The URL of ``path`` (relative to the root; percent-encoded as needed)."""
        return f"{self.base_url}/{urllib.parse.quote(path.lstrip('/'))}"

    def put(self, path: str, data: bytes) -> str:
        """Write ``data`` to ``root/path`` (making dirs) and return its URL."""
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return self.url(path)

    def count(self, path: str, method: str | None = None) -> int:
        """How many requests (of ``method``, or any) were made for ``path``."""
        key = "/" + path.lstrip("/")
        with self._lock:
            if method is None:
                return self._counts[key]
            return sum(1 for r in self.requests if r.path == key and r.method == method)

    @property
    def counts(self) -> dict[str, int]:
        """Requests per URL path (leading "/"), a copy."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self.requests.clear()

    def set_status(self, path: str, status: int, times: int | None = None) -> None:
        """Answer ``status`` for ``path`` (for the next ``times`` requests, or until cleared)."""
        with self._lock:
            self._overrides["/" + path.lstrip("/")] = (status, times)

    def clear_status(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._overrides.clear()
            else:
                self._overrides.pop("/" + path.lstrip("/"), None)

    # -- called by the handler ----------------------------------------------------------------

    def _take_override(self, path: str) -> int | None:
        with self._lock:
            entry = self._overrides.get(path)
            if entry is None:
                return None
            status, times = entry
            if times is not None:
                if times <= 1:
                    del self._overrides[path]
                else:
                    self._overrides[path] = (status, times - 1)
            return status

    def _record(self, req: ServedRequest) -> None:
        with self._lock:
            self._counts[req.path] += 1
            self.requests.append(req)
