"""What a store's failure says: one message and one hint per condition, whichever backend and
request path met it.

The exception tables (`cacher.stores.fsspec_errors`, `cacher.stores.s3.errors`) decide which
condition a foreign error or an HTTP answer is; the words are written here once, so "access
denied" or "replaced while it was read" reads the same from the file store, a ranged GET or s3fs.
"""

from __future__ import annotations

from cacher.errors import ObjectChanged, StorageError

#: The hint of every "access denied", whichever store and request path met it.
ACCESS_HINT = "check the credentials and their permissions on the bucket"
#: What to do when the object was replaced while it was read.
RETRY_HINT = "run the command again"
MISSING_BUCKET_HINT = "create it, or fix 'bucket' in the configuration"
PROXY_HINT = (
    "check the proxy's credentials (user:password@ in HTTPS_PROXY or HTTP_PROXY) and that it "
    "lets this job reach the endpoint; NO_PROXY lists hosts reached directly"
)
CHAIN_HINT = "check AWS_PROFILE, AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE and the STS endpoint"
TLS_HINT = "set ca_bundle (--ca-bundle, CACHER_CA_BUNDLE, AWS_CA_BUNDLE) to the CA of the endpoint"


class Failure(StorageError):
    """A `StorageError` that says whether the store itself failed (no answer, 5xx): only those
    are remembered for ``--soft-fail`` (`cacher.stores.s3.failures`)."""

    def __init__(self, message: str, *, hint: str | None = None, store_down: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.store_down = store_down


def reason(exc: BaseException) -> str:
    """A foreign error in its own words: the first line of its text, else its class name."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def access_denied(action: str, where: str, why: str) -> Failure:
    """The store (or the filesystem) refused the credentials or the permission (``why``: the
    answer, e.g. ``HTTP 403 AccessDenied``)."""
    return Failure(f"cannot {action} {where}: access denied ({why})", hint=ACCESS_HINT)


def replaced(action: str, where: str) -> ObjectChanged:
    """A read pinned to an ETag met another object (HTTP 412, or a changed ETag or size)."""
    return ObjectChanged(
        f"cannot {action} {where}: it was replaced while it was read (another job stored the same key)",
        hint=RETRY_HINT,
    )


def missing_bucket(bucket: str) -> Failure:
    """The bucket does not exist (never read as an empty one)."""
    return Failure(f"the bucket {bucket!r} does not exist", hint=MISSING_BUCKET_HINT)


def wrong_region(action: str, where: str, answered: str, region: str) -> Failure:
    """An answer a wrong region setting causes (400, 301, AuthorizationHeaderMalformed…)."""
    return Failure(
        f"cannot {action} {where}: the store answered {answered}",
        hint=f"the region setting ({region!r}) is a likely cause: set the store's own "
        "(--region, CACHER_REGION, config 'region'; Garage: its s3_region)",
    )


def store_failed(action: str, where: str, answered: str) -> Failure:
    """The store answered that it failed (5xx, 429), after the retries."""
    return Failure(f"cannot {action} {where}: the store failed ({answered})", store_down=True)


def gone(action: str, where: str) -> Failure:
    """The object a read was asked for does not exist (never stored, or deleted before or while
    it was read: a prune racing a restore)."""
    return Failure(f"cannot {action} {where}: it does not exist")


def not_found(action: str, where: str, answered: str) -> Failure:
    """An object that must exist (one named by URL) does not."""
    return Failure(f"cannot {action} {where}: not found ({answered})")


def proxy_refused(action: str, where: str, proxy: str, status: int, text: str = "") -> Failure:
    """A proxy's own 407 (or 401, which some proxies send): the proxy's word, not the store's."""
    answered = f"HTTP {status}" + (f" {text}" if text else "")
    message = f"cannot {action} {where}: the proxy {proxy} refused the request ({answered})"
    return Failure(message, hint=PROXY_HINT)


def refused(action: str, where: str, detail: str) -> Failure:
    """Any other answer no retry changes, in the request path's own words (``detail``)."""
    return Failure(f"cannot {action} {where}: {detail}")


def failed(action: str, where: str, exc: BaseException, *, store_down: bool = False) -> Failure:
    """Any other failure, in the foreign error's words; ``store_down`` when it means the store
    did not answer (a timeout, a refused or reset connection). A TLS failure is never the store
    being down: its hint names ``ca_bundle``."""
    tls = is_tls(exc)
    message = f"cannot {action} {where}: {reason(exc)}"
    return Failure(message, hint=TLS_HINT if tls else None, store_down=store_down and not tls)


def no_credentials_from(where: str, why: str, *, hint: str | None = None) -> StorageError:
    """A credential source (the AWS chain) failed to give its credentials."""
    return StorageError(f"cannot load S3 credentials from {where}: {why}", hint=hint)


def remembered(action: str, where: str, why: str, seconds: float) -> StorageError:
    """With ``--soft-fail``, the store failed earlier in this CI job: not waited on again."""
    return StorageError(
        f"cannot {action} {where}: the store failed earlier in this job ({why}); "
        f"not waiting on it again for {seconds:g} s"
    )


def is_tls(exc: BaseException) -> bool:
    """Whether ``exc`` is a TLS verification failure (Python's, botocore's or aiohttp's)."""
    text = f"{type(exc).__name__} {exc}"
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text or "SSLCertVerification" in text
