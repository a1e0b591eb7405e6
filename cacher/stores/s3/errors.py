"""The S3 store's exception table, for every request path, and its table of HTTP statuses.

HEADs and ranged GETs report an HTTP status (`StoreRefused` carries it, or the HEAD's answer);
s3fs reports botocore's ``ClientError`` (often wrapped in an ``OSError`` by s3fs, the original
as ``__cause__``); transports raise timeouts and connection errors. `S3_ERRORS` (applied by
`S3Store._translate`) and `for_status` turn any of them into one error with the wording of
`cacher.stores.wording`; `CREDENTIAL_ERRORS` does the same for the AWS credential chain.
botocore and aiohttp classes are named by their dotted names: the read path never imports them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cacher.errors import CacherError, ReadPreconditionFailed, StoreRefused
from cacher.stores import wording
from cacher.stores.errortable import ErrorTable, Rule, Seam, causes, is_a
from cacher.stores.fsspec_errors import access_denied, replaced, s3fs_precondition

REGION_CODES = frozenset(
    {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}
)
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})  # answers another attempt may fix
CLIENT_ERROR = "botocore.exceptions.ClientError"
#: How http.client and aiohttp report a proxy that refused a CONNECT tunnel.
_TUNNEL_REFUSED = re.compile(r"(?:Tunnel connection failed|(?<!\w)status)[:=]\s*(40[17])\b", re.IGNORECASE)

_Status = Callable[[Seam, str], CacherError]

#: Each status a request may be answered with, and what it says (``answered``: "HTTP 403 Code").
STATUSES: dict[int, _Status] = {
    301: lambda seam, answered: wording.wrong_region(seam.action, seam.where, answered, seam.region),
    400: lambda seam, answered: wording.wrong_region(seam.action, seam.where, answered, seam.region),
    403: lambda seam, answered: wording.access_denied(seam.action, seam.where, answered),
    404: lambda seam, answered: wording.not_found(seam.action, seam.where, answered),
    412: lambda seam, answered: wording.replaced(seam.action, seam.where),
    **{
        status: lambda seam, answered: wording.store_failed(seam.action, seam.where, answered)
        for status in RETRY_STATUS
    },
}


def for_status(seam: Seam, status: int, code: str = "", detail: str = "") -> CacherError:
    """The error for an HTTP answer that is not what the request wanted (``detail``: the
    request path's own words for the rest). Through a proxy, a 407 (or 401: S3 stores answer
    403) is the proxy's; a region error code is the region's whatever its status."""
    if seam.proxy and status in (401, 407):
        return wording.proxy_refused(seam.action, seam.where, seam.proxy, status)
    answered = f"HTTP {status}" + (f" {code}" if code and code != str(status) else "")
    if code in REGION_CODES:
        return wording.wrong_region(seam.action, seam.where, answered, seam.region)
    if status in STATUSES:
        return STATUSES[status](seam, answered)
    return wording.refused(seam.action, seam.where, detail or f"the store answered {answered}")


def _answer(exc: BaseException) -> tuple[int, str]:
    """(status, code) of a botocore ``ClientError``."""
    response = getattr(exc, "response", None) or {}
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status, str(response.get("Error", {}).get("Code") or "")


def _gone(seam: Seam, exc: BaseException) -> CacherError:
    """A ranged read that met a 404: the object was deleted while it was read."""
    return wording.gone(seam.action, seam.where)


def _no_such_bucket(seam: Seam, exc: BaseException) -> bool:
    """S3's ``NoSuchBucket``, which s3fs turns into a `FileNotFoundError` (elsewhere a missing
    key): a missing bucket must not read as an empty one."""
    return any(is_a(c, (CLIENT_ERROR,)) and _answer(c)[1] == "NoSuchBucket" for c in causes(exc))


def _missing_bucket(seam: Seam, exc: BaseException) -> CacherError:
    return wording.missing_bucket(seam.bucket)


def _refused_with_status(seam: Seam, exc: BaseException) -> CacherError:
    status, code = getattr(exc, "status", 0), getattr(exc, "code", "")
    return for_status(seam, status, code, detail=wording.reason(exc))


def _client_error(seam: Seam, exc: BaseException) -> CacherError:
    return for_status(seam, *_answer(exc))


def tunnel_refusal(exc: BaseException) -> int | None:
    """The status of a refused CONNECT in ``exc`` or its causes (the text is all they carry)."""
    for current in causes(exc):
        found = _TUNNEL_REFUSED.search(f"{current} {getattr(current, 'status', '')}")
        status = getattr(current, "status", None)
        if isinstance(status, int) and status in (401, 407) and "proxy" in type(current).__name__.lower():
            return status
        if found:
            return int(found[1])
    return None


def _proxy_refused(seam: Seam, exc: BaseException) -> CacherError:
    return wording.proxy_refused(seam.action, seam.where, seam.proxy or "", tunnel_refusal(exc) or 0)


def _refused(seam: Seam, exc: BaseException) -> CacherError:
    return wording.refused(seam.action, seam.where, wording.reason(exc))


def _unanswered(seam: Seam, exc: BaseException) -> CacherError:
    return wording.failed(seam.action, seam.where, exc, store_down=True)


#: No answer: timeouts, refused or reset connections, TLS failures (these name ``ca_bundle``).
UNANSWERED: tuple[str | type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    "ssl.SSLError",  # these two by name: a HEAD over plain HTTP imports neither (s3/head.py)
    "http.client.HTTPException",
    "botocore.exceptions.EndpointConnectionError",
    "botocore.exceptions.ConnectTimeoutError",
    "botocore.exceptions.ReadTimeoutError",
    "aiohttp.client_exceptions.ClientError",
    OSError,
    Exception,
)

S3_ERRORS = ErrorTable(
    "s3",
    (
        Rule((FileNotFoundError,), _missing_bucket, when=_no_such_bucket),
        Rule((FileNotFoundError,), _gone, when=lambda seam, exc: seam.action == "read"),
        Rule((FileNotFoundError, CacherError), None),
        Rule((ReadPreconditionFailed,), replaced),
        Rule((StoreRefused,), _refused_with_status, when=lambda seam, exc: bool(getattr(exc, "status", 0))),
        Rule((CLIENT_ERROR,), _client_error, when=lambda seam, exc: bool(_answer(exc)[0]), in_causes=True),
        Rule((Exception,), _proxy_refused, when=lambda seam, exc: bool(seam.proxy and tunnel_refusal(exc))),
        Rule((PermissionError,), access_denied),
        Rule((OSError,), replaced, when=s3fs_precondition),
        Rule((StoreRefused,), _refused),
        Rule(UNANSWERED, _unanswered),
    ),
)


def _chain_failed(seam: Seam, exc: BaseException) -> CacherError:
    return wording.no_credentials_from(seam.where, f"{type(exc).__name__}: {exc}", hint=wording.CHAIN_HINT)


def _chain_raised(seam: Seam, exc: BaseException) -> CacherError:
    return wording.no_credentials_from(seam.where, wording.reason(exc))


#: The AWS credential chain's (botocore's resolver; its STS client raises ClientError and kin).
CREDENTIAL_ERRORS = ErrorTable(
    "s3 credentials",
    (
        Rule(("botocore.exceptions.BotoCoreError",), _chain_failed),
        Rule((Exception,), _chain_raised),
    ),
)
