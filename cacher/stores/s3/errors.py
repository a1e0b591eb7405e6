"""The one table from S3 answers and foreign errors to cacher's errors, for every request path.

HEADs and ranged GETs report an HTTP status (`StoreRefused` carries it); s3fs reports botocore's
``ClientError`` (often wrapped in an ``OSError`` by s3fs, the original as ``__cause__``);
transports raise timeouts and connection errors. `translate` turns any of them into one
`StorageError` with one wording and one hint per case.
"""

from __future__ import annotations

import re

from cacher.errors import CacherError, ObjectChanged, ReadPreconditionFailed, StorageError, StoreRefused
from cacher.stores.base import ACCESS_HINT

REGION_CODES = frozenset(
    {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}
)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})  # answers another attempt may fix


class Failure(StorageError):
    """A `StorageError` that says whether the store itself failed (no answer, 5xx): only those
    are remembered for ``--soft-fail`` (`cacher.stores.s3.failures`)."""

    def __init__(self, message: str, *, hint: str | None = None, store_down: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.store_down = store_down


PROXY_HINT = (
    "check the proxy's credentials (user:password@ in HTTPS_PROXY or HTTP_PROXY) and that it "
    "lets this job reach the endpoint; NO_PROXY lists hosts reached directly"
)
#: How http.client and aiohttp report a proxy that refused a CONNECT tunnel.
_TUNNEL_REFUSED = re.compile(r"(?:Tunnel connection failed|(?<!\w)status)[:=]\s*(40[17])\b", re.IGNORECASE)


def proxy_refused(action: str, where: str, proxy: str, status: int, text: str = "") -> StorageError:
    """A proxy's own 407 (or 401, which some proxies send): the proxy's word, not the store's."""
    answered = f"HTTP {status}" + (f" {text}" if text else "")
    message = f"cannot {action} {where}: the proxy {proxy} refused the request ({answered})"
    return Failure(message, hint=PROXY_HINT)


def _tunnel_refusal(exc: BaseException) -> int | None:
    """The status of a refused CONNECT in ``exc`` or its causes (the text is all they carry)."""
    current: BaseException | None = exc
    for _ in range(5):
        if current is None:
            return None
        found = _TUNNEL_REFUSED.search(f"{current} {getattr(current, 'status', '')}")
        status = getattr(current, "status", None)
        if isinstance(status, int) and status in (401, 407) and "proxy" in type(current).__name__.lower():
            return status
        if found:
            return int(found[1])
        current = current.__cause__ or current.__context__
    return None


def status_error(
    action: str, where: str, status: int, code: str = "", *, region: str, detail: str = "",
    proxy: str | None = None,
) -> StorageError:
    """The error for an HTTP answer that is not what the request wanted (``detail``: the
    request path's own words for the rest). Through a ``proxy``, a 407 (or 401: S3 stores answer
    403) is the proxy's."""
    if proxy and status in (401, 407):
        return proxy_refused(action, where, proxy, status)
    answered = f"HTTP {status}" + (f" {code}" if code and code != str(status) else "")
    if status == 403 and code not in REGION_CODES:
        return Failure(f"cannot {action} {where}: access denied ({answered})", hint=ACCESS_HINT)
    if status in (301, 400) or code in REGION_CODES:
        return Failure(
            f"cannot {action} {where}: the store answered {answered}",
            hint=f"the region setting ({region!r}) is a likely cause: set the store's own "
            "(--region, CACHER_REGION, config 'region'; Garage: its s3_region)",
        )
    if status == 412:
        return changed(action, where)
    if status in RETRY_STATUS:
        return Failure(f"cannot {action} {where}: the store failed ({answered})", store_down=True)
    if status == 404:
        return Failure(f"cannot {action} {where}: not found ({answered})")
    return Failure(f"cannot {action} {where}: {detail or f'the store answered {answered}'}")


def missing_bucket(bucket: str) -> StorageError:
    """The one wording of a bucket that does not exist, whichever request met it."""
    hint = "create it, or fix 'bucket' in the configuration"
    return Failure(f"the bucket {bucket!r} does not exist", hint=hint)


def is_missing_bucket(exc: BaseException) -> bool:
    """Whether ``exc`` is S3's ``NoSuchBucket`` (s3fs turns it into a `FileNotFoundError`, which
    elsewhere means a missing key: a missing bucket must not read as an empty one)."""
    answer = _client_error(exc)
    return answer is not None and answer[1] == "NoSuchBucket"


def changed(action: str, where: str) -> ObjectChanged:
    return ObjectChanged(
        f"cannot {action} {where}: it was replaced while it was read (another job stored the same key)",
        hint="run the command again",
    )


def _client_error(exc: BaseException) -> tuple[int, str] | None:
    """(status, code) of a botocore ``ClientError`` in ``exc`` or its causes."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        response = getattr(current, "response", None)
        if isinstance(response, dict) and "Error" in response:
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            return status, str(response["Error"].get("Code") or "")
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def translate(
    exc: BaseException, action: str, where: str, *, region: str, proxy: str | None = None
) -> CacherError:
    """Any failure of a request path as the `StorageError` a user reads (``proxy``: the
    ``host:port`` of the proxy the request went through, if any)."""
    if isinstance(exc, CacherError):
        return exc
    if isinstance(exc, ReadPreconditionFailed):
        return changed(action, where)
    if isinstance(exc, StoreRefused) and exc.status:
        detail = reason(exc)
        return status_error(action, where, exc.status, exc.code, region=region, detail=detail, proxy=proxy)
    answer = _client_error(exc)
    if answer is not None and answer[0]:
        return status_error(action, where, answer[0], answer[1], region=region, proxy=proxy)
    if proxy and (tunnel := _tunnel_refusal(exc)):
        return proxy_refused(action, where, proxy, tunnel)
    if isinstance(exc, PermissionError):
        return Failure(f"cannot {action} {where}: access denied ({reason(exc)})", hint=ACCESS_HINT)
    if isinstance(exc, OSError) and "pre-condition" in str(exc):  # s3fs's own 412
        return changed(action, where)
    if isinstance(exc, StoreRefused):
        return Failure(f"cannot {action} {where}: {reason(exc)}")
    # No answer: timeouts, refused or reset connections, TLS failures, botocore's
    # EndpointConnectionError / ReadTimeoutError and aiohttp's errors.
    down = not _is_tls(exc)
    return Failure(f"cannot {action} {where}: {reason(exc)}", store_down=down, hint=_tls_hint(exc))


def _is_tls(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text or "SSLCertVerification" in text


def _tls_hint(exc: BaseException) -> str | None:
    if _is_tls(exc):
        return "set ca_bundle (--ca-bundle, CACHER_CA_BUNDLE, AWS_CA_BUNDLE) to the CA of the endpoint"
    return None


def reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
