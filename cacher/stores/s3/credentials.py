"""S3 credentials: cacher's own first, then the standard AWS chain.

1. ``CACHER_S3_KEY_ID`` / ``CACHER_S3_SECRET``, else ``key_file`` / ``secret_file``; with
   either, ``session_token`` (flag, ``CACHER_SESSION_TOKEN``, config) for temporary credentials;
2. when none of those is given, botocore's own resolver: ``AWS_ACCESS_KEY_ID`` and friends,
   the shared credentials/config files and ``AWS_PROFILE``, a web identity token file
   (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``: GitHub Actions OIDC, EKS IRSA), the
   container and instance metadata services. botocore is imported only then.

Secrets never appear in a message: errors name the source, `describe` gives lengths only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cacher.config import Settings, origin
from cacher.errors import ConfigError, NoCredentials
from cacher.stores.errortable import Seam
from cacher.stores.s3.errors import CREDENTIAL_ERRORS


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str
    source: str
    token: str | None = None
    #: botocore's refreshable credentials when they came from the AWS chain (STS, metadata).
    live: Any = field(default=None, compare=False)

    def __repr__(self) -> str:  # never show the secret, even in a debugger or traceback
        token = f", token=<{len(self.token)} chars>" if self.token else ""
        return f"Credentials(key_id=<{len(self.key_id)} chars>, secret=<{len(self.secret)} chars>{token})"

    def describe(self) -> str:
        token = f", session token: {len(self.token)} characters" if self.token else ""
        return (
            f"key id: {len(self.key_id)} characters, secret: {len(self.secret)} characters"
            f"{token} (from {self.source})"
        )

    def current(self) -> tuple[str, str, str | None]:
        """(key id, secret, token) now: temporary credentials of the AWS chain are refreshed
        by botocore before they expire; cacher's own are fixed."""
        if self.live is None:
            return self.key_id, self.secret, self.token
        frozen = self.live.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token or None


def _read(path_text: str, what: str, origin: str) -> str:
    path = Path(path_text).expanduser()
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"the {what} file {path} ({origin}) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"cannot read the {what} file {path} ({origin}): {reason}") from None
    if not value:
        raise ConfigError(f"the {what} file {path} ({origin}) is empty")
    return value


def resolve(settings: Settings, environ: Mapping[str, str]) -> Credentials:
    """Find the credentials, or raise `ConfigError` saying what is missing."""
    token = settings.session_token or None
    env_key, env_secret = environ.get("CACHER_S3_KEY_ID"), environ.get("CACHER_S3_SECRET")
    if env_key and env_secret:
        return Credentials(env_key, env_secret, "CACHER_S3_KEY_ID/CACHER_S3_SECRET", token)
    if env_key or env_secret:  # half a pair is a mistake, never a reason to use other credentials
        missing = "CACHER_S3_SECRET" if env_key else "CACHER_S3_KEY_ID"
        raise ConfigError(f"S3 credentials are incomplete: {missing} is not set")
    key_file, secret_file = settings.key_file, settings.secret_file
    if bool(key_file) != bool(secret_file):
        missing = "secret_file" if key_file else "key_file"
        raise ConfigError(f"S3 credentials are incomplete: {missing} is not set")
    if key_file and secret_file:
        key = _read(key_file, "key id", settings.sources["key_file"])
        secret = _read(secret_file, "secret", settings.sources["secret_file"])
        return Credentials(key, secret, f"{key_file} and {secret_file}", token)
    if token:
        raise ConfigError(
            f"a session token ({origin(settings, 'session_token')}) needs its key id and secret: "
            "set CACHER_S3_KEY_ID and CACHER_S3_SECRET, or key_file and secret_file"
        )
    found = aws_chain()
    if found is None:
        raise NoCredentials(
            "no S3 credentials: set CACHER_S3_KEY_ID and CACHER_S3_SECRET, "
            "or key_file and secret_file (cacher init --key-file ... --secret-file ...); "
            "the standard AWS sources (AWS_* variables, profile, web identity, metadata) had none"
        )
    return found


def aws_chain() -> Credentials | None:
    """The standard AWS credential chain, through botocore's own resolver (imported here only)."""
    import botocore.session

    with CREDENTIAL_ERRORS.applied(Seam("load S3 credentials from", "the AWS chain")):
        found = botocore.session.Session().get_credentials()
        if found is None:
            return None
        frozen = found.get_frozen_credentials()
    method = getattr(found, "method", "") or "aws"
    return Credentials(
        frozen.access_key,
        frozen.secret_key,
        f"the AWS chain ({method})",
        frozen.token or None,
        live=found if getattr(found, "refresh_needed", None) else None,
    )
