"""S3 credentials: ``CACHER_S3_KEY_ID`` / ``CACHER_S3_SECRET`` first, then the key files.

Secrets never appear in a message: errors name the source, `describe` gives lengths only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cacher.config import Settings
from cacher.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str
    source: str

    def __repr__(self) -> str:  # never show the secret, even in a debugger or traceback
        return f"Credentials(key_id=<{len(self.key_id)} chars>, secret=<{len(self.secret)} chars>)"

    def describe(self) -> str:
        return (
            f"key id: {len(self.key_id)} characters, secret: {len(self.secret)} characters "
            f"(from {self.source})"
        )


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
    """Find both halves of the credentials, or raise `ConfigError` saying what is missing."""
    env_key, env_secret = environ.get("CACHER_S3_KEY_ID"), environ.get("CACHER_S3_SECRET")
    if env_key and env_secret:
        return Credentials(env_key, env_secret, "CACHER_S3_KEY_ID/CACHER_S3_SECRET")
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
        return Credentials(key, secret, f"{key_file} and {secret_file}")
    raise ConfigError(
        "no S3 credentials: set CACHER_S3_KEY_ID and CACHER_S3_SECRET, "
        "or key_file and secret_file (cacher init --key-file ... --secret-file ...)"
    )
