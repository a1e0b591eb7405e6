"""Fetching a URL (any fsspec URL: https://, file://, s3://...) as a verified byte stream."""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

from cacher.errors import ArtifactError, CacherError, IntegrityError, UsageError
from cacher.streams import Progress, Writable

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")
CHUNK = 1 << 20
#: HTTP(S) fetches: seconds to connect, and seconds without a byte before a stalled transfer
#: is abandoned. There is no cap on the whole transfer: aiohttp's default (300 s in all)
#: would cut every download that takes longer than five minutes.
HTTP_CONNECT_TIMEOUT = 30.0
HTTP_READ_TIMEOUT = 60.0


#: Openers for ``s3://BUCKET/...`` URLs of the buckets that configured stores live in, set by
#: `cacher.stores.open_store`: an object in the cache's own bucket is read with the store's
#: endpoint, credentials, CA bundle and proxy, not by an unconfigured s3fs pointed at AWS.
#: Other buckets keep fsspec's default (the standard AWS environment), so public AWS buckets
#: still work.
S3_OPENERS: dict[str, Callable[[str], AbstractContextManager[Any]]] = {}


#: Where `stream_url` reports the bytes it fetches. A fallback's fetch (``download --url``)
#: runs inside a kind's ``produce``, which takes no progress argument: the engine sets this
#: around it (`reporting`), so the transfer's progress line counts the bytes as they come.
_PROGRESS: ContextVar[Progress | None] = ContextVar("cacher_fetch_progress", default=None)


@contextmanager
def reporting(progress: Progress | None) -> Iterator[None]:
    """Report the bytes every `stream_url` fetches inside this block to ``progress``."""
    token = _PROGRESS.set(progress)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def check_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    if not _HEX64.match(value):
        raise UsageError(f"--sha256 must be 64 hexadecimal digits, not {value!r}")
    return value.lower()


def redact(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages."""
    return _USERINFO.sub(r"\1***@", url)


@contextmanager
def _open(url: str) -> Iterator[Any]:
    import fsspec

    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol in ("s3", "s3a"):
        bucket, _, path = url.split("://", 1)[1].partition("/")
        opener = S3_OPENERS.get(bucket)
        if opener is not None:
            try:
                with opener(path) as f:
                    yield f
            except CacherError as exc:
                raise ArtifactError(f"cannot fetch {redact(url)}: {exc.message}", hint=exc.hint) from None
            return
    kwargs: dict[str, Any] = {}
    if protocol in ("http", "https"):
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=HTTP_CONNECT_TIMEOUT, sock_read=HTTP_READ_TIMEOUT
        )
        kwargs = {"block_size": 0, "client_kwargs": {"timeout": timeout}}
    try:
        with fsspec.open(url, "rb", **kwargs) as f:
            yield f
    except CacherError:
        raise
    except FileNotFoundError as exc:
        raise ArtifactError(f"cannot fetch {redact(url)}: {_not_found(exc, protocol)}") from None
    except Exception as exc:  # noqa: BLE001 - the fetch seam: any fsspec backend
        raise ArtifactError(f"cannot fetch {redact(url)}: {_reason(exc)}") from None


def _not_found(exc: FileNotFoundError, protocol: str) -> str:
    """What happened: fsspec's HTTP filesystem turns every failed status, and every failed
    connection, into FileNotFoundError; its cause says which."""
    cause = exc.__cause__
    if cause is None:
        return "not found (404)" if protocol in ("http", "https") else "not found"
    status = getattr(cause, "status", None)
    if status is not None:
        return "not found (404)" if status == 404 else f"the server answered HTTP {status}"
    host, port = getattr(cause, "host", None), getattr(cause, "port", None)
    os_error = getattr(cause, "os_error", None)
    if isinstance(os_error, socket.gaierror):
        return f"unknown host {host!r} ({os_error.strerror or os_error})"
    if isinstance(os_error, ConnectionRefusedError):
        return f"connection refused by {host}:{port} (nothing listens there)"
    if isinstance(os_error, OSError):
        return f"cannot connect to {host}:{port} ({os_error.strerror or os_error})"
    return _reason(cause)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc).strip():
        return f"timed out (no answer for {HTTP_READ_TIMEOUT:g} s)"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def stream_url(url: str, sink: Writable, sha256: str | None) -> int:
    """Copy the URL's bytes to ``sink``; raise `IntegrityError` at the end on a sha mismatch.

    The sink is still uncommitted when the mismatch is raised, so nothing bad is published
    or put in place.
    """
    digest = hashlib.sha256()
    total = 0
    progress = _PROGRESS.get()
    with _open(url) as f:
        size = getattr(f, "size", None)
        length = size if isinstance(size, int) and size > 0 else None  # Content-Length, when sent
        while True:
            try:
                chunk = f.read(CHUNK)
            except Exception as exc:  # noqa: BLE001 - mid-stream errors of any backend
                raise ArtifactError(f"cannot fetch {redact(url)}: {_reason(exc)}") from None
            if not chunk:
                break
            digest.update(chunk)
            sink.write(chunk)
            total += len(chunk)
            if progress is not None:
                progress(total, length)
    if sha256 and digest.hexdigest() != sha256:
        raise IntegrityError(
            f"sha256 mismatch for {redact(url)}: expected {sha256}, got {digest.hexdigest()}"
        )
    return total
