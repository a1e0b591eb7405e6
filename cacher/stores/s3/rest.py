"""Signed HEAD and GET requests to S3 without s3fs: SigV4 over http.client.

``cacher exists`` and the look-up before a transfer need one HEAD, and a download needs only
ranged GETs. Importing s3fs and building its client costs most of a second; signing a request
costs microseconds, and http.client reads a body straight into a buffer with the GIL released,
so several ranges download in parallel threads. The requests keep the Garage rules: path-style
URLs, Signature V4, no checksum headers. Uploads, listings and deletes still go through s3fs.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import random
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RETRY_STATUS = {429, 500, 502, 503, 504}  # answers another attempt may fix


@dataclass(frozen=True)
class Head:
    """What a HEAD answered: the status and, for a 200, the object's headers."""

    status: int
    size: int = 0
    modified: datetime | None = None
    etag: str | None = None
    metadata: dict[str, str] | None = None


class S3Http:
    """Signs and sends HEAD and GET requests to one S3 endpoint, with bounded retries."""

    def __init__(
        self,
        endpoint: str | None,
        region: str,
        key_id: str,
        secret: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        attempts: int,
        request_timeout: float = 0.0,
    ) -> None:
        url = urllib.parse.urlsplit(endpoint or f"https://s3.{region}.amazonaws.com")
        self.scheme, self.netloc = url.scheme, url.netloc
        self.base_path = url.path.rstrip("/")
        self.region, self.key_id, self._secret = region, key_id, secret
        self.timeout = max(connect_timeout, read_timeout)
        self.request_timeout = request_timeout
        self.attempts = attempts

    def __repr__(self) -> str:  # the secret never shows, even in a traceback
        return f"S3Http({self.scheme}://{self.netloc})"

    def connect(self) -> http.client.HTTPConnection:
        """A new connection to the endpoint (not yet opened), with the socket timeout set."""
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.netloc, timeout=self.timeout)
        return http.client.HTTPConnection(self.netloc, timeout=self.timeout)

    def object_path(self, bucket: str, key: str = "") -> str:
        """The quoted request path of a bucket or an object (path-style)."""
        path = f"{self.base_path}/{bucket}" + (f"/{key}" if key else "")
        return urllib.parse.quote(path, safe="/-_.~")

    def head(self, bucket: str, key: str = "") -> Head:
        """HEAD /bucket or /bucket/key. Raises OSError on transport failure after retries."""
        path = self.object_path(bucket, key)
        last: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(0.1 * 2**attempt, 2.0) * (0.5 + random.random()))
            try:
                status, headers = self._send(path)
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                continue
            if status in RETRY_STATUS and attempt < self.attempts - 1:
                continue
            return _parse(status, headers)
        raise OSError(f"{type(last).__name__}: {last}" if last else "no answer")

    def _send(self, quoted: str) -> tuple[int, dict[str, str]]:
        headers = self.sign("HEAD", quoted)
        conn = self.connect()
        try:
            conn.request("HEAD", quoted, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()

    def sign(self, method: str, quoted_path: str) -> dict[str, str]:
        """The headers that authenticate a bodiless request; callers may add unsigned ones."""
        now = time.gmtime()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", now)
        day = amz_date[:8]
        headers = {
            "host": self.netloc,
            "x-amz-content-sha256": EMPTY_SHA256,
            "x-amz-date": amz_date,
        }
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [
                method,
                quoted_path,
                "",
                *(f"{k}:{headers[k]}" for k in sorted(headers)),
                "",
                signed,
                EMPTY_SHA256,
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = f"AWS4{self._secret}".encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        credential = f"{self.key_id}/{scope}"
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
        )
        return headers


def _parse(status: int, headers: dict[str, str]) -> Head:
    if status != 200:
        return Head(status)
    modified = None
    if "last-modified" in headers:
        try:
            modified = parsedate_to_datetime(headers["last-modified"])
        except (TypeError, ValueError):
            modified = None
    metadata = {k[len("x-amz-meta-") :]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}
    return Head(200, int(headers.get("content-length") or 0), modified, headers.get("etag"), metadata)
