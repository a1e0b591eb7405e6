"""Signed HEAD and GET requests to S3 without s3fs: SigV4 over http.client.

``cacher exists`` and the look-up before a transfer need one HEAD, and a download needs only
ranged GETs. Importing s3fs and building its client costs most of a second; signing a request
costs microseconds, and http.client reads a body straight into a buffer with the GIL released,
so several ranges download in parallel threads. The requests keep the Garage rules: path-style
URLs, Signature V4, no checksum headers. Listing pages are GETs signed here too (`listing`);
uploads and deletes still go through s3fs.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cacher.stores.s3.errors import RETRY_STATUS as RETRY_STATUS
from cacher.stores.s3.head import send_head
from cacher.stores.s3.transport import Transport

if TYPE_CHECKING:
    import http.client

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Head:
    """What a HEAD answered: the status and, for a 200, the object's headers."""

    status: int
    size: int = 0
    modified: datetime | None = None
    etag: str | None = None
    metadata: dict[str, str] | None = None


class S3Http:
    """Signs and sends HEAD and GET requests to one S3 endpoint, with bounded retries.

    Everything about reaching the endpoint (CA bundle, proxy, timeouts, credentials) comes
    from the `Transport`, the same one s3fs is built from.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        url = urllib.parse.urlsplit(transport.endpoint)
        self.scheme, self.netloc = url.scheme, url.netloc
        self.host = url.hostname or ""
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.base_path = url.path.rstrip("/")
        self.region = transport.region
        self.timeout = max(transport.connect_timeout, transport.read_timeout)
        self.request_timeout = transport.request_timeout
        self.attempts = transport.attempts

    def __repr__(self) -> str:  # the secret never shows, even in a traceback
        return f"S3Http({self.scheme}://{self.netloc})"

    def connect(self, timeout: float | None = None) -> http.client.HTTPConnection:
        """A new connection to the endpoint, through the proxy when one applies (not yet
        opened), with the socket timeout set. (A HEAD goes without http.client: `head`.)"""
        import http.client

        timeout = self.timeout if timeout is None else timeout
        proxy = self.transport.proxy
        if self.scheme == "https":
            context = self.transport.ssl_context()
            if proxy is None:
                return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)
            conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=timeout, context=context)
            tunnel_headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
            conn.set_tunnel(self.host, self.port, headers=tunnel_headers)
            return conn
        if proxy is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)

    def target(self, quoted_path: str) -> str:
        """The request target: the path, or the absolute URL when a plain-HTTP proxy relays it."""
        if self.transport.proxy is not None and self.scheme == "http":
            return f"http://{self.netloc}{quoted_path}"
        return quoted_path

    def object_path(self, bucket: str, key: str = "") -> str:
        """The quoted request path of a bucket or an object (path-style)."""
        path = f"{self.base_path}/{bucket}" + (f"/{key}" if key else "")
        return urllib.parse.quote(path, safe="/-_.~")

    def head(self, bucket: str, key: str = "") -> Head:
        """HEAD /bucket or /bucket/key, each attempt bounded by ``metadata_timeout``. Raises
        OSError on transport failure after retries."""
        path = self.object_path(bucket, key)
        last: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(0.1 * 2**attempt, 2.0) * (0.5 + random.random()))
            try:
                status, headers = send_head(self, path, self.sign("HEAD", path))
            except OSError as exc:
                last = exc
                continue
            if status in RETRY_STATUS and attempt < self.attempts - 1:
                continue
            return _parse(status, headers)
        if isinstance(last, TimeoutError) or "timed out" in str(last):
            raise TimeoutError(
                f"no answer within {self.transport.metadata_timeout:g} s "
                f"({self.attempts} attempt{'s' if self.attempts > 1 else ''}; metadata_timeout)"
            )
        raise OSError(f"{type(last).__name__}: {last}" if last else "no answer")

    def sign(
        self, method: str, quoted_path: str, *, now: time.struct_time | None = None, query: str = ""
    ) -> dict[str, str]:
        """The headers that authenticate a bodiless request; callers may add unsigned ones
        (and a proxy's ``Proxy-Authorization``, added here, is never signed). ``query``: the
        canonical query string the request is sent with (a listing's; see `canonical_query`)."""
        headers = sign_v4(
            method,
            quoted_path,
            host=self.transport.host_header,
            region=self.region,
            credentials=self.transport.credentials.current(),
            now=now,
            query=query,
        )
        proxy = self.transport.proxy
        if proxy is not None and proxy.authorization and self.scheme == "http":
            headers["Proxy-Authorization"] = proxy.authorization
        return headers


def canonical_query(params: dict[str, str]) -> str:
    """The query string in SigV4's canonical form (names and values percent-encoded but for
    ``-_.~``, sorted by name): a request sent with exactly this string is signed with it."""
    quote = urllib.parse.quote
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def canonical_request(method: str, quoted_path: str, headers: dict[str, str], query: str = "") -> str:
    """SigV4's canonical request of a bodiless request signing ``headers`` (``query``: its
    canonical query string, empty for most)."""
    signed = ";".join(sorted(headers))
    return "\n".join(
        [
            method,
            quoted_path,
            query,
            *(f"{k}:{headers[k]}" for k in sorted(headers)),
            "",
            signed,
            EMPTY_SHA256,
        ]
    )


def sign_v4(
    method: str,
    quoted_path: str,
    *,
    host: str,
    region: str,
    credentials: tuple[str, str, str | None],
    now: time.struct_time | None = None,
    query: str = "",
) -> dict[str, str]:
    """Signature V4 for S3, as botocore's ``S3SigV4Auth`` signs it (a test holds the two
    byte for byte): ``host`` (without a default port), the payload hash, the date and, for
    temporary credentials, ``x-amz-security-token``."""
    key_id, secret, token = credentials
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", now or time.gmtime())
    day = amz_date[:8]
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = canonical_request(method, quoted_path, headers, query)
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def _parse(status: int, headers: dict[str, str]) -> Head:
    if status != 200:
        return Head(status)
    modified = http_date(headers["last-modified"]) if "last-modified" in headers else None
    metadata = {k[len("x-amz-meta-") :]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}
    return Head(200, int(headers.get("content-length") or 0), modified, headers.get("etag"), metadata)


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}


def http_date(text: str) -> datetime | None:
    """An HTTP date (``Mon, 07 Dec 2026 17:22:22 GMT``, what S3 answers) as an aware datetime;
    the older forms through the email package (imported only then); None for no date."""
    try:
        _, day, month, year, clock, zone = text.split()
        hour, minute, second = (int(part) for part in clock.split(":"))
        if zone == "GMT" and month in _MONTHS:
            return datetime(int(year), _MONTHS[month], int(day), hour, minute, second, tzinfo=UTC)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
