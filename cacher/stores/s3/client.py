"""The s3fs/aiobotocore client set-up: path-style SigV4 the way Garage needs, bounded requests.

Bodies are sent with ``x-amz-content-sha256: UNSIGNED-PAYLOAD`` (``payload_signing_enabled``
off): the signature still covers the method, path, headers and metadata, and the bytes are
covered by TLS where the endpoint is https and by what a restore verifies (the recorded
sha256, the codec's checksums); hashing each part once more for the signature cost about
0.3 CPU-s of a 311 MiB upload's 1.8 (docs/reliability.md, "No pass over the bytes that buys
nothing", says what it protected over plain HTTP and why that is no loss).

Endpoint, region, credentials, CA bundle, proxy, timeouts and attempts come from the same
`Transport` as the hand-signed HEADs and GETs.
"""

from __future__ import annotations

from typing import Any

from cacher.config import Settings
from cacher.stores.s3.transport import Transport


def s3_filesystem(settings: Settings, transport: Transport) -> Any:
    """An S3FileSystem configured the way Garage needs, with bounded timeouts and retries."""
    import s3fs

    key_id, secret, token = transport.credentials.current()
    fs = s3fs.S3FileSystem(
        endpoint_url=transport.endpoint,
        key=key_id,
        secret=secret,
        token=token,
        client_kwargs={"region_name": transport.region, "verify": transport.verify()},
        config_kwargs={
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path", "payload_signing_enabled": False},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "connect_timeout": transport.connect_timeout,
            "read_timeout": transport.read_timeout,
            "retries": {"total_max_attempts": transport.attempts, "mode": "standard"},
            "proxies": transport.botocore_proxies(),
            "http_session_cls": bounded_session_class(transport.request_timeout, transport.metadata_timeout),
        },
        use_listings_cache=False,
        skip_instance_cache=True,
        default_block_size=settings.part_size_mb << 20,
        max_concurrency=4,
        **settings.options,
    )
    fs.retries = 1  # botocore retries already; s3fs would multiply the attempts
    _keep_bodies_as_bytes(fs)
    return fs


def _keep_bodies_as_bytes(fs: Any) -> None:
    """Let botocore send a part's bytes as they are instead of through a BytesIO copy.

    botocore wraps every PutObject/UploadPart body in a BytesIO, which (were the payload
    signed) it would SHA-256 1 MiB ``read()`` at a time on s3fs's event loop, and which
    aiohttp then copies once more; ``bytes`` go to the socket as they are.
    """
    from botocore.handlers import convert_body_to_file_like_object

    fs.connect()
    for operation in ("UploadPart", "PutObject"):
        fs.s3.meta.events.unregister(
            f"before-parameter-build.s3.{operation}", convert_body_to_file_like_object
        )


#: Requests without a body worth waiting for: bounded by ``metadata_timeout`` in all.
METADATA_METHODS = frozenset({"GET", "HEAD", "DELETE"})


def bounded_session_class(total: float, metadata: float | None = None) -> type:
    """aiobotocore's HTTP session with a deadline on every request, and no ``100 Continue`` wait.

    botocore's connect and read timeouts bound silence only, so a store that trickles bytes or
    stops reading a part would hold a request (and the CI job) forever; aiohttp's ``total``
    bounds the whole request, which botocore then retries like a read timeout. aiohttp also
    waits for ``100 Continue`` with no timeout at all: the ``Expect`` header that botocore adds
    to uploads is dropped (it is never signed), so an unanswered part ends with the read timeout.
    A LIST, HEAD or DELETE (s3fs never GETs an object for cacher) gets ``metadata`` seconds in
    all, so a silent store fails them in seconds, not minutes.
    """
    import aiohttp
    from aiobotocore.httpsession import AIOHTTPSession

    def with_total(timeout: Any, method: str = "") -> aiohttp.ClientTimeout:
        if metadata and method.upper() in METADATA_METHODS:
            read = min(timeout.sock_read or metadata, metadata)
            return aiohttp.ClientTimeout(total=metadata, sock_connect=timeout.sock_connect, sock_read=read)
        return aiohttp.ClientTimeout(
            total=total, sock_connect=timeout.sock_connect, sock_read=timeout.sock_read
        )

    class BoundedSession(AIOHTTPSession):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._timeout = with_total(getattr(self, "_timeout"))  # noqa: B009 - typed Any

        def _get_request_timeout(self, request: Any) -> Any:
            timeout = super()._get_request_timeout(request)
            return with_total(timeout or self._timeout, str(getattr(request, "method", "")))

        async def send(self, request: Any) -> Any:
            if "Expect" in request.headers:
                del request.headers["Expect"]
            return await super().send(request)

    return BoundedSession
