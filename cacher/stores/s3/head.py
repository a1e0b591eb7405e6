"""One HEAD request over a socket of its own, without http.client.

``cacher exists`` and the look-up before every transfer send one HEAD and read a status line
and a few headers. Importing http.client costs about 7 ms (it brings the email package to
parse headers), a twentieth of the whole command, and an answer to a HEAD has no body, so
reading it needs no more than this module. TLS is the ssl module's (the transport's context,
the host name checked); a proxy is reached as http.client reaches it: a CONNECT tunnel for
https, the absolute URL for http, and a refused tunnel reads as http.client words it. Ranged
GETs and listing pages, whose bodies need http.client, keep it (`ranges`, `listing`).
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cacher.stores.s3.rest import S3Http

#: The most an answer's status line and headers may hold (S3 allows 2 KB of metadata).
LIMIT = 64 << 10


class BadAnswer(ConnectionError):
    """An answer that is not HTTP/1.x, or that ended or grew past `LIMIT` before its headers did."""


def send_head(http: S3Http, quoted: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Send ``HEAD quoted`` with ``headers`` and read the answer: its status and its headers
    (names in lower case). Connecting (and the TLS handshake) is bounded by the smaller of the
    transport's timeouts, the whole request by ``metadata_timeout``. Raises OSError."""
    transport = http.transport
    deadline = time.monotonic() + transport.metadata_timeout
    timeout = min(transport.metadata_timeout, http.timeout)
    proxy = transport.proxy
    host, port = (proxy.host, proxy.port) if proxy is not None else (http.host, http.port)
    # An ASCII name as bytes: a str goes through the idna codec (two more modules to import).
    name: Any = host.encode() if host.isascii() else host  # getaddrinfo takes bytes (typeshed: str)
    sock = socket.create_connection((name, port), timeout)
    try:
        if http.scheme == "https":
            if proxy is not None:
                _tunnel(sock, http.host, http.port, proxy.authorization)
            sock = transport.ssl_context().wrap_socket(sock, server_hostname=http.host)
        lines = [f"HEAD {http.target(quoted)} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        sock.settimeout(max(0.1, deadline - time.monotonic()))  # what is left of the bound
        status, _, answer = _read_answer(sock)
        return status, answer
    finally:
        sock.close()


def _tunnel(sock: socket.socket, host: str, port: int, authorization: str | None) -> None:
    """Ask the proxy for a tunnel to ``host:port``; a refusal is http.client's OSError."""
    name = f"[{host}]" if ":" in host else host
    lines = [f"CONNECT {name}:{port} HTTP/1.1", f"Host: {name}:{port}"]
    if authorization:
        lines.append(f"Proxy-Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    status, reason, _ = _read_answer(sock)
    if status != 200:
        raise OSError(f"Tunnel connection failed: {status} {reason}")


def _read_answer(sock: socket.socket) -> tuple[int, str, dict[str, str]]:
    """Read one status line and its headers. Nothing follows them that matters: an answer to a
    HEAD has no body, and after a proxy's 200 to a CONNECT the endpoint waits for our TLS hello."""
    block = bytearray()
    while (end := block.find(b"\r\n\r\n")) < 0:
        if len(block) > LIMIT:
            raise BadAnswer(f"an answer's headers past {LIMIT} bytes")
        piece = sock.recv(4096)
        if not piece:
            middle = "in the middle of an answer" if block else "without an answer"
            raise BadAnswer(f"the store closed the connection {middle}")
        block += piece
    first, *rest = block[:end].decode("latin-1").split("\r\n")
    version, _, tail = first.partition(" ")
    code, _, reason = tail.partition(" ")
    if not version.startswith("HTTP/1.") or not (code.isdigit() and len(code) == 3):
        raise BadAnswer(f"not an HTTP answer: {first[:80]!r}")
    headers: dict[str, str] = {}
    for line in rest:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(code), reason.strip(), headers
